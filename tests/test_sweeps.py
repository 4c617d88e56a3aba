"""Datasets, configs, the results store and vmapped sweeps (issue 4, in progress)."""

import json
import os
import sqlite3
import subprocess
import sys
import re
import textwrap

import jax
import numpy as np
import pytest

from bpkit import config as cfg
from bpkit import datasets
from bpkit.store import Store, run_id
from bpkit.sweep import run_sweep

CONFIG = textwrap.dedent("""
    name = "t"
    seeds = [0, 1, 2]
    [data]
    name = "xor"
    [network]
    hidden = [2]
    activation = ["tanh", "sigmoid"]
    [optimizer]
    name = "sgd"
    learning_rate = [0.5, 1.0]
    [training]
    batch_size = 2
    max_epochs = 40
""")


@pytest.fixture
def config_file(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(CONFIG)
    return p


# -- datasets -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape_x, shape_y", [
    ("xor", (4, 2), (4, 1)), ("parity3", (8, 3), (8, 1)), ("parity4", (16, 4), (16, 1)),
    ("encoder8", (8, 8), (8, 8)), ("two_spirals", (194, 2), (194, 1)), ("iris", (90, 4), (90, 3)),
])
def test_dataset_shapes(name, shape_x, shape_y):
    d = datasets.load(name)
    assert d.x_train.shape == shape_x and d.y_train.shape == shape_y


def test_classic_definitions():
    p = datasets.load("parity3")
    assert np.array_equal(p.y_train[:, 0], p.x_train.sum(1) % 2)
    s = datasets.two_spirals()
    np.testing.assert_allclose(s.x_train[0], [0.0, 6.5])  # i = 0: angle 0, radius 6.5
    np.testing.assert_allclose(s.x_train[97], -s.x_train[0])  # the negation is class 0
    assert s.y_train[:97].all() and not s.y_train[97:].any()


def test_split_is_seeded_and_standardised_on_train():
    a, b, c = datasets.load("digits", seed=1), datasets.load("digits", seed=1), datasets.load("digits", seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    np.testing.assert_allclose(a.x_train.mean(0), 0, atol=1e-12)
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797


def test_digits_are_scikit_learns_read_without_importing_it(monkeypatch):
    from sklearn.datasets import load_digits

    read = datasets.load("digits", seed=3)
    monkeypatch.setattr(datasets, "_digits_file", lambda: None)  # through scikit-learn's own loader
    loaded = datasets.load("digits", seed=3)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(read, field), getattr(loaded, field))
    x, y = load_digits(return_X_y=True)
    assert x.shape == (1797, 64) and read.y_train.shape[1] == 10 == len(set(y))
    code = 'import sys; from bpkit import datasets; datasets.load("digits"); print("sklearn" in sys.modules)'
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_csv_and_fann_files(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n0,1,1\n1,1,0\n2,0,1\n3,1,0\n4,0,1\n")
    d = datasets.load_csv(tmp_path / "d.csv")
    assert d.inputs == 2 and d.outputs == 1
    (tmp_path / "x.data").write_text("2 2 1\n0 1\n1\n1 1\n0\n")
    f = datasets.load_fann(tmp_path / "x.data")
    np.testing.assert_array_equal(f.x_train, [[0, 1], [1, 1]])
    np.testing.assert_array_equal(f.y_train, [[1], [0]])


@pytest.mark.parametrize("loader, text, message", [
    (datasets.load_csv, "a,b,label\n0,1,1\n1,1\n", r"line 3 has 2 fields, the header has 3"),
    (datasets.load_csv, "a,b,label\n0,x,1\n", r"line 2 has a field that is not a number"),
    (datasets.load_csv, "a,b,label\n0,nan,1\n", r"non-finite value in its inputs, row 1"),
    (datasets.load_csv, "", r"empty file"),
    (datasets.load_fann, "2 2 1\n0 1\n1\n1 1 1\n0\n", r"line 4 has 3 values, an input line needs 2"),
    (datasets.load_fann, "3 2 1\n0 1\n1\n", r"promises 3 pairs \(6 lines\), the file has 2"),
])
def test_bad_data_files_name_the_line(tmp_path, loader, text, message):
    p = tmp_path / ("f.csv" if loader is datasets.load_csv else "f.data")
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        loader(p)


def test_unknown_dataset_lists_valid():
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'; valid: xor, two_spirals"):
        datasets.load("mnist")


# -- configs --------------------------------------------------------------------------------


def test_config_grid_expands(config_file):
    runs = cfg.expand(cfg.load(config_file))
    assert len(runs) == 2 * 2 * 3
    assert len({r.static_key() for r in runs}) == 2  # learning rate and seed are vmapped data


def test_set_overrides(config_file):
    flat = cfg.load(config_file, ["optimizer.learning_rate=0.25", "training.max_epochs=7", "network.activation=relu"])
    assert flat["optimizer.learning_rate"] == 0.25 and flat["training.max_epochs"] == 7
    assert flat["network.activation"] == "relu"


@pytest.mark.parametrize("text, message", [
    ("[network]\nsizes = [2]\n", r"unknown config key 'network.sizes'; valid keys:"),
    ("[model]\nx = 1\n", r"unknown table \[model\]"),
    ("[optimizer]\nlearning_rate = 'fast'\n", r"optimizer.learning_rate must be a number, got 'fast'"),
    ("[optimizer]\nlearning_rate = -0.1\n", r"optimizer.learning_rate = -0.1 is out of range"),
    ("[training]\nmax_epochs = 0\n", r"training.max_epochs = 0 is out of range"),
    ("[training]\nbatch_size = 0\n", r"training.batch_size must be a positive integer or 'full', got 0"),
    ("[network]\nactivation = 'sigmoidd'\n", r"network.activation = 'sigmoidd' is not valid; valid: identity"),
    ("[optimizer]\nname = 'newton'\n", r"optimizer.name = 'newton' is not valid; valid: sgd"),
    ("loss = 'hinge'\n", r"loss = 'hinge' is not valid; valid: mse, bce, softmax_ce"),
    ("seeds = []\n", r"seeds must be a non-empty list"),
    ("[network]\nhidden = [0]\n", r"network.hidden must be a list of positive integers"),
    ("[training\n", r"malformed TOML"),
])
def test_bad_configs_name_the_key(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        cfg.load(p)


def test_binary_and_missing_config(tmp_path):
    (tmp_path / "b.toml").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(ValueError, match="a binary file, not a TOML config"):
        cfg.load(tmp_path / "b.toml")
    with pytest.raises(ValueError, match="no such config file"):
        cfg.load(tmp_path / "nope.toml")


# -- store ----------------------------------------------------------------------------------


def test_store_rejects_foreign_files(tmp_path):
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a bpkit results store"):
        Store(tmp_path / "t.txt")
    db = sqlite3.connect(tmp_path / "other.sqlite")
    db.execute("CREATE TABLE x (a)")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="an SQLite file, but not a bpkit results store"):
        Store(tmp_path / "other.sqlite")
    with pytest.raises(ValueError, match="folder .* does not exist"):
        Store(tmp_path / "missing" / "r.sqlite")


def test_store_version_check(tmp_path):
    s = Store(tmp_path / "r.sqlite")
    s._db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    s._db.commit()
    s.close()
    with pytest.raises(ValueError, match="store schema version 99, this bpkit reads version 1"):
        Store(tmp_path / "r.sqlite")


def test_curves_are_stored_as_the_element_by_element_walk_stores_them(tmp_path):
    # The sweep hands the store curves whose NaN and infinities are already None (sweep.listed), so
    # the store skips its walk over every number; another caller's NaN still gets walked.  Either
    # way the stored text must be what the walk alone gives (null for every non-finite float).
    from bpkit.store import _json_safe
    from bpkit.sweep import listed

    rng = np.random.default_rng(0)
    loss = rng.normal(size=50).astype(np.float32)
    loss[[3, 17]] = np.nan
    loss[40] = np.inf
    within = rng.normal(size=(5, 3)).astype(np.float32)
    within[2, 1] = -np.inf
    curves = {"loss": loss, "val_loss": np.full(50, np.nan, np.float32), "grad_norm": rng.normal(size=50),
              "wrong": np.arange(50, dtype=np.int32), "within": {"loss": within}}
    as_lists = {k: ({f: a.tolist() for f, a in v.items()} if k == "within" else v.tolist()) for k, v in curves.items()}
    by_listed = {k: ({f: listed(a) for f, a in v.items()} if k == "within" else listed(v)) for k, v in curves.items()}
    expected = json.dumps(_json_safe(as_lists))
    assert by_listed["loss"][3] is None and by_listed["within"]["loss"][2][1] is None  # not vacuous
    assert isinstance(by_listed["loss"][0], float) and isinstance(by_listed["wrong"][1], int)
    s = Store(tmp_path / "r.sqlite")
    for i, c in enumerate((by_listed, as_lists)):  # prepared by the sweep; raw NaN from another caller
        s.add([{"config": {"seed": i, "x": 1}, "seed": i, "status": "finished", "curves": c}])
    stored = [row[0] for row in s._db.execute("SELECT curves FROM runs ORDER BY seed")]
    assert stored == [expected, expected]
    assert "NaN" not in expected and "Infinity" not in expected and expected.count("null") == 50 + 3 + 1


def test_corrupt_row_is_reported_by_id_and_hides_nothing_else(tmp_path, config_file):
    s = Store(tmp_path / "r.sqlite")
    run_sweep(cfg.load(config_file, ["seeds=[0]", "network.activation=tanh", "optimizer.learning_rate=0.5"]), s, progress=False)
    run_sweep(cfg.load(config_file, ["seeds=[1]", "network.activation=tanh", "optimizer.learning_rate=0.5"]), s, progress=False)
    (bad_id,) = [r for r in s.run_ids() if r.endswith("-0")]
    s._db.execute("UPDATE runs SET config = '{not json' WHERE run_id = ?", (bad_id,))
    s._db.commit()
    runs, errors = s.runs()
    assert len(runs) == 1 and errors == [errors[0]] and bad_id in errors[0]


# -- sweeps ---------------------------------------------------------------------------------


def _table(store):
    runs, errors = store.runs()
    assert not errors
    return {r["run_id"]: (r["epochs"], r["train_loss"], r["curves"]["loss"]) for r in runs}


def test_each_finished_group_hands_its_freed_memory_back(tmp_path, config_file, monkeypatch):
    from bpkit import engine

    assert engine._malloc_trim() is not None or not sys.platform.startswith("linux")  # glibc has it
    trims = []
    monkeypatch.setattr(engine, "_malloc_trim", lambda: trims.append)
    chunks = 0
    for chunk in engine.run_grid(cfg.expand(cfg.load(config_file)), chunk_size=4):
        chunks += 1
        assert len(trims) == (chunks - 1) // 2  # 6 runs a group, in chunks of 4 and 2: trimmed after its last
    assert chunks == 4 and trims == [0, 0]  # two groups, each trimmed once it is done


def test_vmapped_sweep_equals_runs_one_by_one(tmp_path, config_file):
    flat = cfg.load(config_file)
    together = Store(tmp_path / "a.sqlite")
    stats = run_sweep(flat, together, chunk_size=64, progress=False)
    assert stats == {"runs": 12, "skipped": 0, "written": 12, "meanwhile": 0, "groups": 2}
    alone = Store(tmp_path / "b.sqlite")
    for r in cfg.expand(flat):
        d = r.as_dict()
        one = {**flat, **{k: d[k] for k in ("network.activation", "optimizer.learning_rate")}, "seeds": [d["seed"]]}
        run_sweep(one, alone, chunk_size=64, progress=False)  # alone, padded to the same program shape
    # Bitwise on CPU: a run's numbers do not depend on which runs share its chunk
    # (what makes a resumed sweep, which regroups runs, reproduce the uninterrupted one).
    assert _table(together) == _table(alone)


class Killed(Exception):
    pass


def _killed_after_first_chunk(flat, store, **kw):
    """Run a sweep that dies right after its first chunk is committed."""

    def kill(written):
        raise Killed

    with pytest.raises(Killed):
        run_sweep(flat, store, progress=False, after_chunk=kill, **kw)


def test_resumed_sweep_equals_uninterrupted(tmp_path, config_file):
    flat = cfg.load(config_file)
    full = Store(tmp_path / "full.sqlite")
    run_sweep(flat, full, chunk_size=4, progress=False)
    part = Store(tmp_path / "part.sqlite")
    _killed_after_first_chunk(flat, part, chunk_size=4)
    assert 0 < len(part.run_ids()) < 12
    stats = run_sweep(flat, part, chunk_size=4, progress=False)
    assert stats["skipped"] == 4 and stats["written"] == 8
    assert _table(part) == _table(full)
    assert part.integrity_ok()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="compares this process's sweep with CPU devices forced "
                    f"in a subprocess, and this process runs on {jax.default_backend()}: other last bits")
def test_sharded_over_four_cpu_devices_equals_unsharded(tmp_path, config_file):
    flat = cfg.load(config_file)
    run_sweep(flat, Store(tmp_path / "one.sqlite"), chunk_size=8, progress=False)
    code = textwrap.dedent(f"""
        import jax
        assert len(jax.devices()) == 4, jax.devices()
        from bpkit import config as cfg
        from bpkit.store import Store
        from bpkit.sweep import run_sweep
        run_sweep(cfg.load({str(config_file)!r}), Store({str(tmp_path / 'four.sqlite')!r}), chunk_size=8, progress=False)
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _table(Store(tmp_path / "four.sqlite")) == _table(Store(tmp_path / "one.sqlite"))


def test_export_csv(tmp_path, config_file):
    s = Store(tmp_path / "r.sqlite")
    run_sweep(cfg.load(config_file, ["seeds=[0]"]), s, progress=False)
    assert s.export_csv(tmp_path / "r.csv") == 4
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("run_id,config_hash,seed,config,status")
    assert json.loads(next(iter(__import__("csv").reader([lines[1]])))[3])["data.name"] == "xor"


# -- axes and reports ---------------------------------------------------------------------------

AXES = textwrap.dedent("""
    name = "axes"
    seeds = [0, 1]
    [network]
    hidden = [2]
    activation = ["tanh", "sigmoid"]
    [training]
    max_epochs = 30
    criterion_40_20_40 = true
    [[axis.method]]
    label = "online"
    optimizer.name = "sgd"
    optimizer.learning_rate = 2.0
    training.batch_size = 1
    [[axis.method]]
    label = "CG"
    optimizer.name = "cg"
    training.batch_size = "full"
""")


def test_axes_zip_their_fields(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text(AXES)
    runs = cfg.expand(cfg.load(p))
    assert len(runs) == 2 * 2 * 2
    combos = {(r.label, r.optimizer.name, r.training.batch_size) for r in runs}
    assert combos == {("online", "sgd", 1), ("CG", "cg", "full")}  # never cg with batch size 1


def test_bad_axis_entry_names_the_key(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text(AXES + '[[axis.method]]\noptimizer.nme = "sgd"\n')
    with pytest.raises(ValueError, match=r"unknown config key 'optimizer.nme' in axis.method entry 3"):
        cfg.load(p)


def test_report_from_a_small_store(tmp_path):
    from bpkit import report

    p = tmp_path / "a.toml"
    p.write_text(AXES)
    store = Store(tmp_path / "r.sqlite")
    run_sweep(cfg.load(p), store, progress=False)
    runs, _ = store.runs()
    store.close()
    path, figs, errors = report.write(tmp_path / "r.sqlite")
    text = path.read_text()
    assert not errors and len(figs) == 6 and all(f.stat().st_size > 1000 for f in figs)
    appendix = text.split("## Appendix")[1]
    rows = [ln for ln in appendix.splitlines() if ln.startswith("| xor")]
    assert len(rows) == 4  # 2 methods x 2 activations
    # Each row's 40-20-40 count is recomputed here from the stored runs, independently: a run met
    # the criterion if its stored count of wrong outputs was 0 at some epoch.
    for row in rows:
        problem, method, act, setting, n, _, _, _, met = (c.strip() for c in row.strip("|").split("|")[:9])
        mine = [r for r in runs if r["config"]["label"] == method and r["config"]["network.activation"] == act]
        ok = sum(0 in r["curves"]["wrong"] for r in mine)
        assert (n, met) == (str(len(mine)), f"{ok}/{len(mine)}")


def test_report_of_a_missing_or_empty_store(tmp_path):
    from bpkit import report

    with pytest.raises(ValueError, match="no such results store"):
        report.write(tmp_path / "none.sqlite")
    Store(tmp_path / "empty.sqlite").close()
    with pytest.raises(ValueError, match="holds no readable runs"):
        report.write(tmp_path / "empty.sqlite")


def test_memory_budget_sets_the_chunk(tmp_path, config_file):
    from bpkit.experiment import load_data
    from bpkit.plan import chunk_for_budget, run_bytes

    run = cfg.expand(cfg.load(config_file))[0]
    data = load_data(run)
    per_run = run_bytes(run, data)
    assert chunk_for_budget(run, data, 10 * per_run / 2**20) == 10
    with pytest.raises(ValueError, match=r"needs an estimated 0 MB, more than the memory budget of 0 MB"):
        chunk_for_budget(run, data, 1e-9)  # not even one run fits: refused before compiling
    with pytest.raises(ValueError, match="memory budget must be positive"):
        chunk_for_budget(run, data, 0)
    # Budgeted chunks give the same runs, bitwise, as one big chunk.
    a, b = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    run_sweep(cfg.load(config_file), a, chunk_size=None, memory_budget_mb=2 * per_run / 2**20, progress=False)
    run_sweep(cfg.load(config_file), b, chunk_size=2, progress=False)
    assert _table(a) == _table(b)


@pytest.mark.parametrize("ahead", [0, 2])
def test_one_compile_per_static_group(tmp_path, config_file, monkeypatch, ahead):
    from bpkit import engine

    compiled, keep, calls = {}, [], []
    real_compile, real_chunk = engine.compile_group, engine.run_chunk

    def compiling(program, part, chunk, columns):  # may run in a worker thread, in any order
        keep.append(real_compile(program, part, chunk, columns))
        compiled[id(keep[-1])] = part[0].static_key()
        return keep[-1]

    def chunk_recording(program, part, chunk, columns):
        calls.append((compiled[id(program)], part[0].static_key()))
        return real_chunk(program, part, chunk, columns)

    monkeypatch.setattr(engine, "compile_group", compiling)
    monkeypatch.setattr(engine, "run_chunk", chunk_recording)
    flat = cfg.load(config_file)
    runs = cfg.expand(flat)
    out = [o for chunk in engine.run_grid(runs, chunk_size=2, compile_ahead=ahead) for _, o in chunk]
    assert len(compiled) == 2 and len(set(compiled.values())) == 2  # one program per group, compiled once...
    assert len(calls) == 6 and all(program == group for program, group in calls)  # ...run on its own chunks
    assert [g for g, _ in calls] == [calls[0][0]] * 3 + [calls[3][0]] * 3  # 3 chunks each, group by group
    reference = [o for chunk in engine.run_grid(runs, chunk_size=2, compile_ahead=1 - min(ahead, 1))
                 for _, o in chunk]  # compiled ahead in a thread or not: the same numbers, bitwise
    for a, b in zip(out, reference):
        np.testing.assert_array_equal(a.curves["loss"], b.curves["loss"])


def test_budgeted_sweep_killed_and_resumed_is_bitwise_the_same(tmp_path, config_file):
    # Without an explicit chunk size the chunk comes from the budget and the group's size
    # in the whole sweep, never from the runs still to do: the resumed sweep compiles the
    # same shapes. A budget of ~4 runs makes 2 chunks per group (4 + 2 padded).
    from bpkit.experiment import load_data
    from bpkit.plan import run_bytes

    flat = cfg.load(config_file)
    first = cfg.expand(flat)[0]
    budget = 4.5 * run_bytes(first, load_data(first)) / 2**20
    full = Store(tmp_path / "full.sqlite")
    run_sweep(flat, full, chunk_size=None, memory_budget_mb=budget, progress=False)
    part = Store(tmp_path / "part.sqlite")
    _killed_after_first_chunk(flat, part, chunk_size=None, memory_budget_mb=budget)
    assert len(part.run_ids()) == 4
    run_sweep(flat, part, chunk_size=None, memory_budget_mb=budget, progress=False)
    assert _table(part) == _table(full)


def test_parquet_and_dataframe(tmp_path, config_file):
    pd = pytest.importorskip("pandas", reason="pandas is optional (Store.to_dataframe, export_parquet)")
    pytest.importorskip("pyarrow", reason="pyarrow is optional (export_parquet)")
    s = Store(tmp_path / "r.sqlite")
    run_sweep(cfg.load(config_file, ["seeds=[0]"]), s, progress=False)
    df = s.to_dataframe()
    assert len(df) == 4 and set(df["stop_reason"]) <= {"max_epochs", "40-20-40", "stalled", "goal"}
    assert s.export_parquet(tmp_path / "r.parquet") == 4
    back = pd.read_parquet(tmp_path / "r.parquet")
    assert sorted(back["run_id"]) == sorted(df["run_id"])
    assert json.loads(back["config"][0])["data.name"] == "xor"


def test_cg_and_scg_settings_are_one_program_each(tmp_path):
    # Every method gets a tuning grid: CG's Wolfe c2 and SCG's lambda_1 are vmapped like a learning rate.
    p = tmp_path / "tune.toml"
    p.write_text(textwrap.dedent("""
        name = "tune"
        seeds = [0, 1]
        [data]
        name = "xor"
        [network]
        hidden = [2]
        activation = "tanh"
        [training]
        batch_size = "full"
        max_epochs = 40
        [[axis.method]]
        optimizer.name = "cg"
        optimizer.c2 = [0.1, 0.9]
        [[axis.method]]
        optimizer.name = "scg"
        optimizer.lambda_init = [1e-8, 1e-2]
    """))
    store = Store(tmp_path / "tune.sqlite")
    assert run_sweep(cfg.load(p), store, progress=False)["groups"] == 2
    runs, _ = store.runs()
    by_setting = {(r["config"]["optimizer.name"], r["config"]["optimizer.c2"], r["config"]["optimizer.lambda_init"],
                   r["config"]["seed"]): r["train_loss"] for r in runs}
    assert len(by_setting) == 8
    assert by_setting[("cg", 0.1, 5e-7, 0)] != by_setting[("cg", 0.9, 5e-7, 0)]
    assert by_setting[("scg", 0.4, 1e-8, 0)] != by_setting[("scg", 0.4, 1e-2, 0)]


CG_VARIANTS = """
name = "variants"
seeds = [0, 1, 2]
[data]
name = "xor"
[network]
hidden = [2]
activation = "tanh"
[optimizer]
name = "cg"
beta = %s
powell_beale = %s
[training]
batch_size = "full"
max_epochs = 60
"""


@pytest.mark.parametrize("lanes", [2, None])
def test_cg_variants_share_one_program_and_each_run_equals_its_variant_alone(tmp_path, lanes):
    # beta and Powell-Beale are data (an int32 code per run), so the six variants of a study are one program;
    # a run's numbers must not depend on which variants share its chunk.
    grid = tmp_path / "grid.toml"
    grid.write_text(CG_VARIANTS % ('["fr", "pr+", "hs", "dy"]', "[false, true]"))
    store = Store(tmp_path / "grid.sqlite")
    assert run_sweep(cfg.load(grid), store, chunk_size=8, lanes=lanes, progress=False)["groups"] == 1
    together = _table(store)
    assert len(together) == 24
    alone = {}
    for beta, pb in (("pr+", "true"), ("hs", "true"), ("dy", "false")):
        one = tmp_path / f"{beta}{pb}.toml"
        one.write_text(CG_VARIANTS % (f'"{beta}"', pb))
        s = Store(tmp_path / f"{beta}{pb}.sqlite")
        run_sweep(cfg.load(one), s, chunk_size=8, lanes=lanes, progress=False)
        alone.update(_table(s))
    shared = alone.keys() & together.keys()
    assert len(shared) == 9
    for k in shared:
        assert together[k] == alone[k], k  # bitwise, on CPU
    runs, _ = store.runs()
    curve = {(r["config"]["optimizer.beta"], r["config"]["optimizer.powell_beale"], r["config"]["seed"]):
             r["curves"]["loss"] for r in runs}
    betas = ("fr", "pr+", "hs", "dy")  # the codes reach the program: each beta, and Powell-Beale, trains its own way
    assert any(len({str(curve[b, False, s]) for b in betas}) == 4 for s in range(3))
    assert any(curve[b, False, s] != curve[b, True, s] for b in betas for s in range(3))


def test_reports_read_runs_in_grid_order_though_groups_store_them_otherwise(tmp_path):
    # CG FR and CG PR share one compiled group, so the store holds them before BP, which sits between
    # them in the grid; the store records the grid's order, which reports and the studies' answer rows follow.
    grid = tmp_path / "grid.toml"
    grid.write_text(textwrap.dedent("""
        seeds = [0, 1]
        [data]
        name = "xor"
        [network]
        hidden = [2]
        [training]
        batch_size = "full"
        max_epochs = 5
        [[axis.method]]
        optimizer.name = "cg"
        optimizer.beta = "fr"
        [[axis.method]]
        optimizer.name = "sgd"
        [[axis.method]]
        optimizer.name = "cg"
        optimizer.beta = "pr"
    """))
    flat = cfg.load(grid)
    store = Store(tmp_path / "grid.sqlite")
    assert run_sweep(flat, store, progress=False)["groups"] == 2
    expected = [run_id(r.as_dict()) for r in cfg.expand(flat)]
    written, _ = store.runs(order="written")
    assert [r["run_id"] for r in written] != expected  # the groups' order: FR, PR, then BP
    # The sweep recorded its grid in the store, so `bpkit report STORE`, which has no config, reads that order too.
    assert list(store.grid_order()) == expected
    from bpkit import report

    assert [r["run_id"] for r in report.load_runs(tmp_path / "grid.sqlite")[0]] == expected
    # A second grid into the same store: its new runs follow the first grid's; a resumed sweep adds nothing.
    flat2 = cfg.load(grid, ["seeds=[2, 0]"])
    run_sweep(flat2, store, progress=False)
    run_sweep(flat, store, progress=False)
    second = [i for i in (run_id(r.as_dict()) for r in cfg.expand(flat2)) if i not in expected]
    assert list(store.grid_order()) == expected + second
    assert [r["run_id"] for r in report.load_runs(tmp_path / "grid.sqlite")[0]] == expected + second
    # A store written before grids were recorded: the written order, as before.
    store._db.execute("DELETE FROM meta WHERE key LIKE 'grid:%'")
    store._db.commit()
    assert store.grid_order() == {}
    assert [r["run_id"] for r in report.load_runs(tmp_path / "grid.sqlite")[0]] == \
        [r["run_id"] for r in store.runs(order="written")[0]]


def test_wolfe_constants_must_be_ordered(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[optimizer]\nname = "cg"\nc1 = 0.5\nc2 = [0.4, 0.9]\n')
    with pytest.raises(ValueError, match=r"optimizer.c1 = 0.5 must be below optimizer.c2 = 0.4"):
        cfg.expand(cfg.load(p))


def test_keys_added_later_keep_stored_run_ids():
    from bpkit.spec import LATER_KEYS
    from bpkit.store import config_hash

    run = cfg.expand(cfg.validate({}))[0].as_dict()
    before = {k: v for k, v in run.items() if k not in LATER_KEYS}  # a run stored before those keys existed
    assert config_hash(run) == config_hash(before)
    for key, default in LATER_KEYS.items():
        other = "all" if isinstance(default, str) else (not default) if isinstance(default, bool) else default * 2 + 1
        assert config_hash({**run, key: other}) != config_hash(before), key


def test_float64_without_64_bit_mode_is_refused_before_any_work(config_file, tmp_path):
    # JAX would truncate float64 to float32 with only a warning, and the store would label the
    # float32 numbers float64.  The CLI runs without 64-bit mode (this process has it on).
    store = Store(tmp_path / "s.sqlite")
    with jax.enable_x64(False), pytest.raises(ValueError, match='dtype "float64" needs .* JAX_ENABLE_X64=1'):
        run_sweep(cfg.load(config_file, ["dtype=float64"]), store, progress=False)
    assert not store.run_ids()  # nothing written
    done = subprocess.run([sys.executable, "-m", "bpkit", "sweep", str(config_file), "--set", "dtype=float64",
                           "--store", str(tmp_path / "cli.sqlite"), "--no-progress"],
                          env={k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "JAX_ENABLE_X64=1" in done.stderr
    assert run_sweep(cfg.load(config_file, ["dtype=float64"]), Store(tmp_path / "x64.sqlite"),
                     progress=False)["written"] == 12  # with the mode on (as here), it runs


# -- measurements per epoch and every k epochs, from a config ---------------------------------

MEASURED = textwrap.dedent("""
    name = "m"
    seeds = [0, 1, 2, 3]
    dtype = "float64"
    [network]
    hidden = [3]
    activation = "tanh"
    [optimizer]
    learning_rate = [1.0, 3.0]
    [training]
    batch_size = 1
    max_epochs = 300
    goal = 0.02
    stall_epochs = 0
""")


def _alone(run, **measurement):
    """The run through ``train()`` itself: the sweep's init and training keys, from the seed."""
    import jax.numpy as jnp
    import optax

    from bpkit import MLP
    from bpkit.experiment import stop_rules
    from bpkit.training import train

    kinit, ktrain = jax.random.split(jax.random.key(run.seed))
    net = MLP((2, *run.network.hidden, 1), hidden=run.network.activation)
    x, y = datasets.load("xor").x_train, datasets.load("xor").y_train
    return train(net, optax.sgd(run.optimizer.learning_rate), net.init(kinit, dtype=jnp.float64), x, y, key=ktrain,
                 batch_size=run.training.batch_size, rules=stop_rules(run), **measurement)


@pytest.mark.parametrize("lanes", [None, 3])  # a lane per run, and a queue whose lanes take new runs
def test_a_sweep_stores_measures_within_epochs_and_they_are_the_single_runs(tmp_path, lanes):
    p = tmp_path / "m.toml"
    p.write_text(MEASURED + "measures_per_epoch = 4\n")  # after each of XOR's 4 examples
    flat = cfg.load(p)
    store = Store(tmp_path / "m.sqlite")
    run_sweep(flat, store, progress=False, lanes=lanes)
    stored = {r["run_id"]: r for r in store.runs()[0]}
    epochs = set()
    for run in cfg.expand(flat):
        got, want = stored[run_id(run.as_dict())], _alone(run, measures_per_epoch=4)
        e = int(want.epochs)
        epochs.add(e)
        assert got["epochs"] == e and got["stop_reason"] == want.reason
        within = got["curves"]["within"]
        assert set(within) == set(want.within._fields)
        for field in want.within._fields:
            rows = np.array(within[field], dtype=float)
            assert rows.shape == (e, 4), field  # the records of the run's epochs, none past its stop
            np.testing.assert_allclose(rows, np.asarray(getattr(want.within, field))[:e], rtol=1e-10, err_msg=field)
        np.testing.assert_array_equal(np.array(within["wrong"]), np.asarray(want.within.wrong)[:e])
        assert np.array_equal(np.array(within["loss"])[:, -1], np.array(got["curves"]["loss"]))  # the epoch-end record
        # 4 examples a measurement apart: j+1 of them seen in the record j of epoch 1 (one gradient each)
        assert [round(4 * g) for g in within["grad_evals"][0]] == [1, 2, 3, 4]
    assert len(epochs) > 2 and min(epochs) < 300  # runs stop at different epochs (the queue hands lanes over)


def test_keys_at_their_default_keep_the_curves_as_they_were(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text(MEASURED)
    store = Store(tmp_path / "m.sqlite")
    run_sweep(cfg.load(p), store, progress=False)
    assert all(set(r["curves"]) == {"loss", "grad_norm", "val_loss", "wrong", "loss_evals", "grad_evals"}
               for r in store.runs()[0])


def test_a_sweep_measures_every_k_epochs_and_judges_the_goal_there(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text(MEASURED.replace("max_epochs = 300", "max_epochs = 301") + "measure_every = 7\n")
    flat = cfg.load(p)
    store = Store(tmp_path / "m.sqlite")
    run_sweep(flat, store, progress=False)
    stored = {r["run_id"]: r for r in store.runs()[0]}
    stopped = 0
    for run in cfg.expand(flat):
        got, dense = stored[run_id(run.as_dict())], _alone(run)  # dense: measured every epoch
        e, loss = got["epochs"], got["curves"]["loss"]
        on = [i for i, v in enumerate(loss) if v is not None]  # 0-based: epoch i + 1 was measured
        assert on == [i for i in range(e) if (i + 1) % 7 == 0 or i + 1 == 301], (e, on)
        # the same training: the loss where measured is the dense run's (which may stop earlier)
        d = np.asarray(dense.history.loss)
        both = [i for i in on if i < int(dense.epochs)]
        np.testing.assert_allclose([loss[i] for i in both], d[both], rtol=1e-10)
        if got["stop_reason"] == "goal":
            stopped += 1
            first = next(i for i in on if loss[i] <= 0.02)  # the goal's first measured epoch, found by brute force
            assert e == first + 1 and e % 7 == 0 and e >= int(dense.epochs)  # not before the goal held
        # the evaluations are counted every epoch, measured or not: one gradient per example
        assert got["curves"]["grad_evals"] == pytest.approx(list(range(1, e + 1)))
    assert stopped >= 2


@pytest.mark.parametrize("body, message", [
    ("measure_every = 2\nmeasures_per_epoch = 2\n", "give one of them"),
    ("measures_per_epoch = 2\nbatch_size = 'full'\n", "needs online or mini-batch training"),
    ("measures_per_epoch = 3\nbatch_size = 2\n", "is more than the 2 batch(es) of an epoch of xor at training.batch_size = 2; use 1..2"),
    ("measures_per_epoch = 0\n", "training.measures_per_epoch = 0 is out of range"),
    ("measure_every = -1\n", "training.measure_every = -1 is out of range"),
])
def test_bad_measurement_settings_are_one_line_before_any_work(tmp_path, body, message):
    from bpkit.plan import plan

    p = tmp_path / "bad.toml"
    p.write_text("[training]\n" + body)
    with pytest.raises(ValueError, match=re.escape(message)):
        plan(cfg.expand(cfg.load(p)))


def test_the_median_learning_curve_goes_through_the_measured_epochs_only():
    import statistics

    from bpkit.figures import median_curve

    rng = np.random.default_rng(0)
    every = 3  # measured every 3 epochs and at the last, as a sweep stores it; runs stop at other epochs
    losses = []
    for e in (10, 13, 7, 13):
        losses.append([float(rng.uniform(0.01, 1)) if (i + 1) % every == 0 or i + 1 == e else None for i in range(e)])
    losses[2][5] = 0.0  # a loss of 0 has no place on a log axis
    epochs, med = median_curve(losses)
    want = {}
    for i in range(13):  # brute force: each run's value at epoch i + 1 (its last after it stopped)
        vals = [c[min(i, len(c) - 1)] for c in losses]
        vals = [v for v in vals if v is not None and v > 0]
        if vals:
            want[i + 1] = statistics.median(vals)
    assert epochs.tolist() == list(want) and np.isfinite(med).all()
    np.testing.assert_allclose(med, list(want.values()), rtol=1e-15)
    assert median_curve([])[0].size == 0


def test_a_run_with_records_within_epochs_is_judged_and_costed_at_each_record(tmp_path):
    from bpkit import compare

    p = tmp_path / "m.toml"
    p.write_text(MEASURED + "measures_per_epoch = 4\ncriterion_40_20_40 = true\nstop_on = 'all'\n")
    store = Store(tmp_path / "m.sqlite")
    run_sweep(cfg.load(p), store, progress=False)
    finer = 0
    for run in store.runs()[0]:
        w = run["curves"]["within"]
        coarse = {**run, "curves": {k: v for k, v in run["curves"].items() if k != "within"}}
        for crit, holds in (("goal", lambda e, j: w["loss"][e][j] <= 0.02), ("40-20-40", lambda e, j: w["wrong"][e][j] == 0)):
            got, epoch_end = compare.attempt(run, crit), compare.attempt(coarse, crit)
            hit = next(((e, j) for e in range(run["epochs"]) for j in range(4) if holds(e, j)), None)  # brute force
            if hit is None:
                assert got == (False, run["epochs"], run["cu"])
                continue
            e, j = hit
            assert got.success and got.epochs == e + 1
            assert got.cu == w["loss_evals"][e][j] + 3 * w["grad_evals"][e][j]
            assert got.cu == pytest.approx(3 * (e + (j + 1) / 4))  # one gradient per example seen, 4 examples
            assert compare.attempt(compare.slim(run), crit) == got  # what the report reads keeps it
            assert not epoch_end.success or (got.epochs <= epoch_end.epochs and got.cu <= epoch_end.cu)
            finer += got.cu < epoch_end.cu
    assert finer > 0  # some successes fell within an epoch


def test_a_report_says_when_its_runs_were_measured_unequally(tmp_path):
    from bpkit import report

    p = tmp_path / "m.toml"
    p.write_text(MEASURED.replace("seeds = [0, 1, 2, 3]", "seeds = [0, 1]").replace("max_epochs = 300", "max_epochs = 60"))
    alike = tmp_path / "alike.sqlite"
    run_sweep(cfg.load(p), Store(alike), progress=False)
    run_sweep(cfg.load(p, ["training.batch_size=full", "training.measure_every=5"]), Store(alike), progress=False)
    assert "Measured unequally" not in report.write(alike)[0].read_text()  # a full batch is measured every epoch
    mixed = tmp_path / "mixed.sqlite"
    run_sweep(cfg.load(p), Store(mixed), progress=False)
    run_sweep(cfg.load(p, ["training.measures_per_epoch=4"]), Store(mixed), progress=False)
    text = report.write(mixed)[0].read_text()
    assert "judged every epoch (4 runs), 4 times an epoch (4 runs)" in text
