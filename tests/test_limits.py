"""Reliability, round 2: every class of input nobody listed, refused in one line before any work.

One test per failure class (store creation, memory and integer limits, seed aliasing, names as
paths, degenerate networks, raw OS errors, test hooks in shipped code), and a fuzz test of the
CLI's validation with random configs.
"""

import math
import pathlib
import re
import sqlite3
import textwrap
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from grids import toml_value as _toml_value
from hypothesis import given, settings
from hypothesis import strategies as st

from bpkit import config as cfg
from bpkit import engine, experiment, plan, spec
from bpkit.cli import main, one_line
from bpkit.network import MLP
from bpkit.spec import Run
from bpkit.stopping import StopRules
from bpkit.store import Store

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_cli(argv, capsys):
    """(exit code, stderr) of ``bpkit ARGV`` in this process; never a raised exception."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip()


def refused(tmp_path, capsys, body, *extra):
    """The one-line error of ``bpkit sweep --plan`` on a config ``body`` (asserting exit 2)."""
    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent(body))
    code, err = run_cli(["sweep", str(path), "--plan", *extra], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (code, err)
    return err


# -- 1. store creation -----------------------------------------------------------------------


def test_an_sqlite_file_without_tables_is_not_taken_for_a_store(tmp_path):
    # Another program's new database, or what a kill between "PRAGMA journal_mode=WAL" and the CREATE
    # TABLEs of an older bpkit left: not recognisable as a store, so never written.
    p = tmp_path / "r.sqlite"
    db = sqlite3.connect(p)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    before = p.read_bytes()
    with pytest.raises(ValueError, match="an SQLite file, but not a bpkit results store"):
        Store(p)
    assert p.read_bytes() == before


def test_another_programs_sqlite_file_is_refused_and_left_byte_for_byte(tmp_path):
    p = tmp_path / "theirs.sqlite"
    db = sqlite3.connect(p)
    db.execute("CREATE TABLE notes (t TEXT)")
    db.execute("INSERT INTO notes VALUES ('keep me')")
    db.commit()
    db.close()
    before = p.read_bytes()
    with pytest.raises(ValueError, match="an SQLite file, but not a bpkit results store"):
        Store(p)
    assert p.read_bytes() == before  # not even switched to WAL


def test_two_stores_opened_on_one_new_file_make_one_complete_store(tmp_path):
    p = tmp_path / "r.sqlite"
    a, b = Store(p), Store(p)
    a.add([{"config": Run(seed=1).as_dict(), "seed": 1, "status": "finished"}])
    assert b.run_ids() == a.run_ids() and len(a.run_ids()) == 1
    a.close(), b.close()


# -- 2. memory and integer limits ------------------------------------------------------------


def test_epochs_beyond_int32_are_refused(tmp_path, capsys):
    err = refused(tmp_path, capsys, "[training]\nmax_epochs = 9000000000\n")
    assert "training.max_epochs = 9000000000 is too large; the limit is 2147483647" in err
    with pytest.raises(ValueError, match=r"max_epochs must be an integer in 1\.\.2147483647"):
        StopRules(max_epochs=2**31)


@pytest.mark.parametrize("body, what", [
    ("[training]\nmax_epochs = 2000000000\n", "max_epochs 2000000000 needs an estimated 91,553 MB"),
    ("[network]\nhidden = [100000000]\n", "hidden [100000000] and max_epochs 1000 needs an estimated"),
])
def test_a_run_larger_than_the_memory_budget_is_refused_before_compiling(tmp_path, capsys, monkeypatch, body, what):
    monkeypatch.setattr(engine, "group_program", lambda *a: pytest.fail("compiled a program"))
    err = refused(tmp_path, capsys, body)
    assert what in err and "more than the memory budget of 1,024 MB" in err


def test_a_run_larger_than_the_machine_is_refused_whatever_the_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plan, "available_mb", lambda: 100.0)
    err = refused(tmp_path, capsys, "[training]\nmax_epochs = 5000000\n", "--memory-budget", "1e9")
    assert "more than the 100 MB this machine has available" in err


def test_the_chunk_shrinks_to_the_memory_available(monkeypatch):
    monkeypatch.setattr(plan, "available_mb", lambda: 1.0)
    run = cfg.expand(cfg.validate({"training.max_epochs": 10_000}))[0]
    data = experiment.load_data(run)
    one = plan.run_bytes(run, data) / 2**20
    assert plan.chunk_for_budget(run, data, 1024.0) == math.floor(1.0 / one) >= 1


def test_a_grid_too_large_to_hold_is_refused_without_expanding_it(tmp_path, capsys):
    hidden = [[n] for n in range(1, 101)]
    lrs = [0.01 * k for k in range(1, 101)]
    tracemalloc.start()
    err = refused(tmp_path, capsys, f"seeds = {list(range(100))}\n[network]\nhidden = {hidden}\n"
                                    f"[optimizer]\nlearning_rate = {lrs}\n")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "the config asks for 1000000 runs, more than 200000 per config" in err
    assert peak < 50 * 2**20


def test_an_out_of_memory_on_the_device_is_one_line_saying_what_to_reduce():
    huge = jax.jit(lambda count, *columns: jax.vmap(lambda s, *h: jnp.full(2**37, s, jnp.float32))(*columns))  # 512 GB
    run = cfg.expand(cfg.validate({}))[0]
    with pytest.raises(MemoryError, match="ran out of memory running 1 runs at once; lower --chunk-size"):
        engine.run_chunk(huge, [run], 1, ("seed",))


# -- 3. seeds ------------------------------------------------------------------------------


def test_a_seed_that_would_alias_another_is_refused(tmp_path, capsys):
    err = refused(tmp_path, capsys, f"seeds = [0, {2**32}]\n")
    assert "seeds must be a non-empty list of integers in 0..4294967295" in err
    assert "seeds lists a seed twice" in refused(tmp_path, capsys, "seeds = [3, 3]\n")
    assert "data.split_seed = -1 is out of range" in refused(tmp_path, capsys, "[data]\nsplit_seed = -1\n")


def test_every_accepted_seed_gives_its_own_stream():
    """The sweep casts seeds to uint32: exact for every seed the config accepts."""
    seeds = np.array([0, 1, 2**31, spec.SEED_MAX])
    cast = seeds.astype(np.uint32)
    assert cast.tolist() == seeds.tolist()
    keys = {tuple(np.asarray(jax.random.key_data(jax.random.key(s))).tolist()) for s in cast}
    assert len(keys) == len(seeds)


# -- 4. names that become paths ------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "a/b", "/abs", ".hidden", "", "x" * 101, "na\u00efve", "a\\b", "c:d"])
def test_a_name_that_is_not_a_plain_file_name_is_refused(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(f"name = {name!r}\n".replace("'", '"') if "\\" not in name
                                     else "name = 'a\\b'\n")
    code, err = run_cli(["sweep", str(tmp_path / "c.toml"), "--no-progress"], capsys)
    assert code == 2 and "cannot name a file" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]  # nothing created anywhere


@pytest.mark.parametrize("name", ["xor", "flagship-2.v1", "_a", "A_b-9"])
def test_plain_file_names_are_accepted(name):
    assert cfg.validate({"name": name})["name"] == name


# -- 5. degenerate networks ------------------------------------------------------------------


def test_a_softmax_layer_of_one_unit_is_refused(tmp_path, capsys):
    assert "a softmax layer of 1 unit always outputs 1" in refused(tmp_path, capsys, "[network]\noutput = 'softmax'\n")
    with pytest.raises(ValueError, match="a softmax layer of 1 unit"):
        MLP((2, 1, 3), hidden="softmax")


@pytest.mark.parametrize("body, say", [
    ("[data]\ntarget_range = [-1, 1]\n",
     "output activation 'sigmoid' ranges over [0, 1], but the targets of xor span [-1, 1]"),
    ("[network]\noutput = 'relu'\n[data]\ntarget_range = [-1, 1]\n", "'relu' ranges over [0, "),
    ("[network]\noutput = 'tanh'\n[data]\ntarget_range = [0, 2]\n", "'tanh' ranges over [-1, 1]"),
])
def test_an_output_that_cannot_reach_the_targets_is_refused(tmp_path, capsys, body, say):
    assert say in refused(tmp_path, capsys, body)


def test_a_softmax_output_on_targets_that_are_not_distributions_is_refused(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("a,y1,y2\n0,0.3,0.9\n1,0.5,0.1\n2,0.2,0.2\n3,0.9,0.9\n")
    err = refused(tmp_path, capsys, f"[data]\npath = '{tmp_path / 'd.csv'}'\ntargets = 2\n"
                                    f"[network]\noutput = 'softmax'\n")
    assert "a softmax output sums to 1 over its 2 units, but the targets of d" in err


def test_reachable_targets_are_accepted(tmp_path, capsys):
    for body in ("[network]\noutput = 'tanh'\n[data]\ntarget_range = [-1, 1]\n",
                 "[data]\nname = 'iris'\n[network]\noutput = 'softmax'\nhidden = [4]\n",
                 "[network]\noutput = 'identity'\n[data]\ntarget_range = [-5, 7]\n"):
        (tmp_path / "c.toml").write_text(body)
        assert run_cli(["sweep", str(tmp_path / "c.toml"), "--plan"], capsys)[0] == 0, body


# -- 6. OS errors --------------------------------------------------------------------------


def test_a_data_path_that_is_a_folder_names_the_path(tmp_path, capsys):
    err = refused(tmp_path, capsys, f"[data]\npath = '{tmp_path}'\n")
    assert err == f"bpkit: error: {tmp_path}: is a folder or a device, not a data file"


def test_os_errors_from_anywhere_become_one_sentence_naming_the_path(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    store = tmp_path / "r.sqlite"
    Store(store).add([{"config": Run().as_dict(), "seed": 0, "status": "finished"}])
    code, err = run_cli(["report", str(store), "--out", str(tmp_path / "afile" / "sub")], capsys)
    assert code == 2 and err == f"bpkit: error: {tmp_path / 'afile' / 'sub'}: not a directory", err
    assert one_line(PermissionError(13, "Permission denied", "/x/y")) == "/x/y: permission denied"
    assert one_line(OSError(28, "No space left on device")) == "no space left on device (operating system error)"
    assert "Errno" not in one_line(IsADirectoryError(21, "Is a directory", "d"))


# -- 7. no test hooks in shipped code ---------------------------------------------------------


def test_shipped_code_reads_no_test_variables():
    for path in (ROOT / "bpkit").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"BPKIT_TEST|PYTEST|pytest", text), path
        for m in re.finditer(r"os\.environ(?:\.get)?[\[(]\s*['\"]([A-Z_]+)", text):
            assert "TEST" not in m.group(1), (path, m.group(0))


# -- fuzz: random configs through the CLI's validation ----------------------------------------

_KEYS = list(spec.FIELDS) + ["network.sizes", "optimizer.lr", "nested.deep.key", "\u00e9\u00e8", "seeds"]
_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=30),
    st.sampled_from(["sigmoid", "softmax", "full", "xor", "pr+", "sgd", "cg", "scg", "mse", "bce", "../x",
                     "digits", "two_spirals", "irprop-", "relu", "identity", "parity3", "encoder8"]),
)
_VALUES = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=6), st.lists(st.lists(st.integers(-3, 40), max_size=3),
                                                                       max_size=4),
                    st.lists(st.integers(0, 9), min_size=500, max_size=2000))


def _toml(config: dict) -> str:
    tables: dict[str, list[str]] = {}
    for key, v in config.items():
        table, _, leaf = key.rpartition(".")
        tables.setdefault(table, []).append(f'"{leaf}" = {_toml_value(v)}' if leaf else "")
    lines = tables.pop("", [])
    for table, items in tables.items():
        lines += [f"[{table}]", *items]
    return "\n".join(x for x in lines if x) + "\n"


@settings(max_examples=60)
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=6))
def test_fuzz_random_configs_are_run_or_refused_in_one_line(tmp_path_factory, config):
    import contextlib
    import io

    path = tmp_path_factory.mktemp("fuzz") / "c.toml"
    path.write_text(_toml(config), encoding="utf-8")
    err = io.StringIO()
    tracemalloc.start()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["sweep", str(path), "--plan"])
        except SystemExit as e:
            code = e.code
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    text = err.getvalue().strip()
    assert code in (0, 2), (config, code, text)
    assert peak < 200 * 2**20, (config, peak)
    if code == 2:
        assert len(text.splitlines()) == 1 and text.startswith("bpkit: error: ") and "Traceback" not in text, text
