"""bpkit.config: TOML files, grids, axes and overrides, each bad key or value one line."""

import hashlib

import pytest
from grids import AXES, toml_value
from hypothesis import given, settings
from hypothesis import strategies as st

from bpkit import config as cfg
from bpkit.store import Store, run_id
from bpkit.sweep import run_sweep


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


def test_wolfe_constants_must_be_ordered(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[optimizer]\nname = "cg"\nc1 = 0.5\nc2 = [0.4, 0.9]\n')
    with pytest.raises(ValueError, match=r"optimizer.c1 = 0.5 must be below optimizer.c2 = 0.4"):
        cfg.expand(cfg.load(p))


def test_the_compare_table_names_tuning_seeds_and_the_sweep_records_them(tmp_path, config_file):
    flat = cfg.load(config_file, ["compare.tune_seeds=[0]"])
    assert flat["compare.tune_seeds"] == [0]
    runs = cfg.expand(flat)
    assert len(runs) == 12 and all("compare.tune_seeds" not in r.as_dict() for r in runs)  # not a run's
    assert {run_id(r.as_dict()) for r in runs} == {run_id(r.as_dict()) for r in cfg.expand(cfg.load(config_file))}
    store = Store(tmp_path / "s.sqlite")
    run_sweep(flat, store, progress=False)
    assert store.compare_settings() == {"tune_seeds": [0]}
    with pytest.raises(ValueError, match=r"compare.tune_seeds must be some of the seeds, not all"):
        cfg.load(config_file, ["compare.tune_seeds=[0, 1, 2]"])
    with pytest.raises(ValueError, match=r"compare.tune_seeds must be a list of integers"):
        cfg.load(config_file, ["compare.tune_seeds=[-1]"])
    p = tmp_path / "axis.toml"
    p.write_text('seeds = [0, 1]\n[[axis.a]]\ncompare.tune_seeds = [0]\n')
    with pytest.raises(ValueError, match="axes cannot nest or set seeds or \\[compare\\]"):
        cfg.load(p)


# -- a run's data is identified by the file's content, not its path --------------------------------------


XOR_CSV = "a,b,y\n" + "0,0,0\n0,1,1\n1,0,1\n1,1,0\n" * 5


def _ids(path: str) -> list[str]:
    from bpkit.store import run_id

    return [run_id(r.as_dict()) for r in cfg.expand(cfg.validate({"data.path": path, "seeds": [0, 1]}))]


def test_the_same_bytes_by_another_path_are_the_same_runs_and_an_edit_makes_new_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text(XOR_CSV)
    (tmp_path / "copy.csv").write_text(XOR_CSV)
    same = _ids("data/x.csv")
    assert _ids("./data/x.csv") == same and _ids(str(tmp_path / "data" / "x.csv")) == same
    assert _ids("copy.csv") == same  # the same bytes under another name
    (tmp_path / "data" / "x.csv").write_text(XOR_CSV + "1,1,0\n")
    assert not set(_ids("data/x.csv")) & set(same)  # an edited file: new runs
    run = cfg.expand(cfg.validate({"data.path": "data/x.csv"}))[0]
    assert run.data.sha256 == hashlib.sha256((tmp_path / "data" / "x.csv").read_bytes()).hexdigest()


def test_the_data_hash_is_bpkits_to_set(tmp_path):
    with pytest.raises(ValueError, match="data.sha256 is computed by bpkit from the data file; leave it out"):
        cfg.validate({"data.sha256": "abc"})


# -- misuse: axes through --set, repeated values, overlapping axes, labels, numbers the dtype cannot hold ----


def _refused(tmp_path, body, *overrides):
    p = tmp_path / "c.toml"
    p.write_text(body)
    with pytest.raises(ValueError) as e:
        flat = cfg.load(p, overrides)
        cfg.unique_ids(cfg.expand(flat))
    return str(e.value)


@pytest.mark.parametrize("value", ["3", "{a = 1}", "[1, 2]", "'x'"])
def test_an_axis_cannot_be_set_from_the_command_line(tmp_path, value):
    for key in ("axis", "axis.method"):
        assert _refused(tmp_path, "", f"{key}={value}").startswith(f"--set cannot change an axis ({key})")


@pytest.mark.parametrize(("grid", "say"), [
    ("learning_rate = [0.5, 0.5]", "optimizer.learning_rate lists 0.5 twice"),
    ("learning_rate = [1, 1.0]", "optimizer.learning_rate lists 1.0 twice (as 1 and 1.0)"),
])
def test_a_grid_value_listed_twice_is_refused(tmp_path, grid, say):
    assert _refused(tmp_path, f"[optimizer]\n{grid}\n").startswith(say)


def test_two_axis_entries_making_one_run_are_refused(tmp_path):
    body = "[[axis.a]]\noptimizer.learning_rate = 0.5\n[[axis.a]]\noptimizer.learning_rate = 0.5\nlabel = 'again'\n"
    assert _refused(tmp_path, body).startswith("the config makes one run twice (seed 0, labels 'a1' and 'again')")


def test_a_field_set_by_two_axes_is_refused(tmp_path):
    body = "[[axis.a]]\noptimizer.name = 'sgd'\n[[axis.b]]\noptimizer.name = 'cg'\n"
    assert _refused(tmp_path, body).startswith("optimizer.name is set by axis.a and axis.b")


@pytest.mark.parametrize("label", ['"two\\nlines"', '"a|b/c"', "3", '""', '"tab\\there"'])
def test_a_label_that_would_break_a_report_line_is_refused(tmp_path, label):
    body = f"[[axis.a]]\noptimizer.learning_rate = 0.5\nlabel = {label}\n"
    assert _refused(tmp_path, body).startswith("axis.a entry 1: label must be printable text")


@pytest.mark.parametrize(("setting", "say"), [
    ("optimizer.learning_rate=1e39", "optimizer.learning_rate = 1e+39 is inf in float32, the run's dtype"),
    ("training.goal=1e39", "training.goal = 1e+39 is inf in float32"),
    ("optimizer.momentum=0.99999999", "optimizer.momentum = 0.99999999 is 1.0 in float32, the run's dtype, so "
                                      "optimizer.momentum = 1.0 is out of range"),
    ("network.init_scale=1e-50", "network.init_scale = 1e-50 is 0.0 in float32"),
])
def test_a_number_the_runs_dtype_cannot_hold_is_refused(tmp_path, setting, say):
    assert _refused(tmp_path, "", setting).startswith(say)
    p = tmp_path / "c.toml"  # the same number in float64 is fine
    cfg.expand(cfg.load(p, [setting, "dtype=float64"]))


@settings(max_examples=60)
@given(axes=st.dictionaries(st.sampled_from(["a", "b"]), st.lists(st.dictionaries(
           st.sampled_from(["optimizer.learning_rate", "optimizer.momentum", "label", "network.activation",
                            "training.goal", "dtype"]),
           st.one_of(st.floats(allow_nan=False), st.text(max_size=6), st.integers(-2, 2),
                     st.sampled_from(["tanh", "float32", "float64"])), max_size=3), min_size=1, max_size=3),
           max_size=2),
       overrides=st.lists(st.tuples(st.sampled_from(["axis", "axis.a", "seeds", "optimizer.learning_rate",
                                                     "network.hidden", "label", "data.sha256"]),
                                    st.sampled_from(["3", "[1, 1]", "{a = 1}", "[0.5, 0.5]", "'x'", "[[2], [2]]",
                                                     "1e39", "[1, 1.0]"])), max_size=2))
def test_fuzz_axes_and_overrides_are_planned_or_refused_in_one_line_and_touch_no_file(tmp_path_factory, axes,
                                                                                      overrides):
    import contextlib
    import io

    from bpkit.cli import main

    t = tmp_path_factory.mktemp("fuzz")
    (t / "results").mkdir()
    (t / "results" / "experiment.sqlite").write_bytes(b"someone else's file")
    lines = ["[training]", "max_epochs = 5"]
    for name, entries in axes.items():
        for entry in entries:
            lines += [f"[[axis.{name}]]"] + [f'{k} = {toml_value(v)}' for k, v in entry.items()]
    (t / "c.toml").write_text("\n".join(lines) + "\n")
    before = {p: p.read_bytes() for p in t.rglob("*") if p.is_file()}
    err = io.StringIO()
    argv = ["sweep", str(t / "c.toml"), "--plan", *(a for k, v in overrides for a in ("--set", f"{k}={v}"))]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    text = err.getvalue().strip()
    assert code in (0, 2), (argv, text)
    assert code == 0 or (len(text.splitlines()) == 1 and text.startswith("bpkit: error: ")), text
    assert {p: p.read_bytes() for p in t.rglob("*") if p.is_file()} == before
