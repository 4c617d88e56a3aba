"""bpkit.store: a foreign file is refused, a corrupt row is reported by id, curves round-trip, exports."""

import contextlib
import io
import json
import os
import pathlib
import sqlite3
import subprocess
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpkit import config as cfg
from bpkit.cli import main
from bpkit.spec import Run
from bpkit.store import NAMES, Store
from bpkit.sweep import run_sweep


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
    s.create()
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
        s.add([{"config": Run(seed=i).as_dict(), "seed": i, "status": "finished", "curves": c}])
    stored = [row[0] for row in s._db.execute("SELECT curves FROM runs ORDER BY seed")]
    assert stored == [expected, expected]
    assert "NaN" not in expected and "Infinity" not in expected and expected.count("null") == 50 + 3 + 1


def test_corrupt_row_is_reported_by_id_and_hides_nothing_else(tmp_path, config_file):
    s = Store(tmp_path / "r.sqlite")
    run_sweep(cfg.load(config_file, ["seeds=[0]", "network.activation=tanh", "optimizer.learning_rate=0.5"]), s,
              progress=False)
    run_sweep(cfg.load(config_file, ["seeds=[1]", "network.activation=tanh", "optimizer.learning_rate=0.5"]), s,
              progress=False)
    (bad_id,) = [r for r in s.run_ids() if r.endswith("-0")]
    s._db.execute("UPDATE runs SET config = '{not json' WHERE run_id = ?", (bad_id,))
    s._db.commit()
    runs, errors = s.runs()
    assert len(runs) == 1 and errors == [errors[0]] and bad_id in errors[0]


def test_export_csv(tmp_path, config_file):
    s = Store(tmp_path / "r.sqlite")
    run_sweep(cfg.load(config_file, ["seeds=[0]"]), s, progress=False)
    assert s.export_csv(tmp_path / "r.csv") == 4
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("run_id,config_hash,seed,config,status")
    assert json.loads(next(iter(__import__("csv").reader([lines[1]])))[3])["data.name"] == "xor"


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


def test_keys_added_later_keep_stored_run_ids():
    from bpkit.spec import LATER_KEYS
    from bpkit.store import config_hash

    run = cfg.expand(cfg.validate({}))[0].as_dict()
    before = {k: v for k, v in run.items() if k not in LATER_KEYS}  # a run stored before those keys existed
    assert config_hash(run) == config_hash(before)
    for key, default in LATER_KEYS.items():
        if isinstance(default, str):
            other = "all"
        elif isinstance(default, bool):
            other = not default
        else:
            other = abs(default) * 2 + 1
        assert config_hash({**run, key: other}) != config_hash(before), key


# -- a foreign or damaged file is never written; a store is one file at rest ----------------------------


def _foreign(path, tables):
    db = sqlite3.connect(path)
    for t in tables:
        db.execute(t)
    db.commit()
    db.close()
    return path.read_bytes()


@pytest.mark.parametrize("tables", [
    ["CREATE TABLE meta (key TEXT, value TEXT)", "CREATE TABLE runs (a)", "INSERT INTO meta VALUES ('format', 'x')"],
    ["CREATE TABLE meta (a, b, c)", "CREATE TABLE runs (a)"],  # no key/value columns: once a traceback
    ["CREATE TABLE meta (key TEXT, value TEXT)", "CREATE TABLE runs (a)"],
    ["CREATE TABLE notes (t TEXT)"],
])
def test_another_programs_sqlite_file_is_recognised_read_only_and_never_written(tmp_path, tables):
    p = tmp_path / "theirs.sqlite"
    before = _foreign(p, tables)
    for readonly in (False, True):
        with pytest.raises(ValueError, match="not a bpkit results store; nothing was changed"):
            Store(p, readonly=readonly)
    assert p.read_bytes() == before  # not even switched to WAL
    assert sorted(f.name for f in tmp_path.iterdir()) == ["theirs.sqlite"]


def test_a_store_path_that_is_a_symbolic_link_is_refused_and_nothing_is_made_through_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.sqlite").write_bytes(b"")  # an empty file a store could be made in
    results = tmp_path / "results"
    results.mkdir()
    (results / "a.sqlite").symlink_to(outside / "notes.sqlite")
    (results / "b.sqlite").symlink_to(outside / "missing.sqlite")  # dangling
    for name in ("a.sqlite", "b.sqlite"):
        with pytest.raises(ValueError, match="a symbolic link; give the store's own path"):
            Store(results / name)
    assert (outside / "notes.sqlite").read_bytes() == b"" and not (outside / "missing.sqlite").exists()


def _sweep_store(tmp_path, config_file, name="r.sqlite"):
    s = Store(tmp_path / name)
    run_sweep(cfg.load(config_file, ["seeds=[0]", "training.criterion_40_20_40=true"]), s, progress=False)
    return s


def test_a_store_is_created_on_its_first_run_whole_or_not_at_all(tmp_path):
    s = Store(tmp_path / "r.sqlite")
    s.add_grid(["x-0"])
    s.set_compare({"tune_seeds": [1]})
    assert list(tmp_path.iterdir()) == [] and s.grid_order() == {"x-0": 0}  # nothing until a run is stored
    s.add([{"config": Run().as_dict(), "seed": 0, "status": "finished"}])
    assert not list(tmp_path.glob(".*.new"))  # made under a temporary name, then linked into place
    s.close()
    with Store(tmp_path / "r.sqlite", readonly=True) as back:
        assert back.grid_order() == {"x-0": 0} and back.compare_settings() == {"tune_seeds": [1]}
        assert len(back.run_ids()) == 1


def test_at_rest_a_store_is_one_file_whose_copy_holds_every_run(tmp_path, config_file):
    s = _sweep_store(tmp_path, config_file)
    ids = s.run_ids()
    s.close()
    assert sorted(f.name for f in tmp_path.glob("r.sqlite*")) == ["r.sqlite"]  # no -wal, no -shm
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "c.sqlite").write_bytes((tmp_path / "r.sqlite").read_bytes())
    with Store(tmp_path / "copy" / "c.sqlite", readonly=True) as c:
        assert c.run_ids() == ids and c.integrity_ok()


def test_copy_takes_the_runs_still_in_the_write_ahead_log(tmp_path, config_file):
    s = _sweep_store(tmp_path, config_file)
    reader = sqlite3.connect(tmp_path / "r.sqlite")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM runs").fetchone()  # an old snapshot: no checkpoint can pass it
    s.add([{"config": Run(seed=7).as_dict(), "seed": 7, "status": "finished"}])
    ids = s.run_ids()
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "r.sqlite").write_bytes((tmp_path / "r.sqlite").read_bytes())
    with Store(tmp_path / "alone" / "r.sqlite", readonly=True) as alone:
        assert alone.run_ids() == ids - {i for i in ids if i.endswith("-7")}  # the file alone lacks it
    assert main(["copy", str(tmp_path / "r.sqlite"), str(tmp_path / "c.sqlite")]) == 0
    with Store(tmp_path / "c.sqlite", readonly=True) as c:
        assert c.run_ids() == ids
    with pytest.raises(ValueError, match="already exists; bpkit copies a store only to a new file"):
        Store(tmp_path / "r.sqlite", readonly=True).copy(tmp_path / "c.sqlite")
    reader.close()
    s.close()


def test_a_report_only_reads_the_store(tmp_path, config_file):
    from bpkit import report

    s = _sweep_store(tmp_path, config_file)
    s.close()
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    report.write(tmp_path / "r.sqlite", tmp_path.parent / f"{tmp_path.name}-out")
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before


# -- store fuzz: a damaged store never gives a traceback and is never written ------------------------------

_JSONISH = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                     st.text(max_size=12), st.lists(st.integers(-3, 3), max_size=3))
_VALUES = st.one_of(_JSONISH, st.floats(), st.binary(max_size=8),
                    st.sampled_from(["{}", "[]", "null", "{not json", '{"seed": 0}', '"x"', "[1, 2]"]))
DAMAGE = st.one_of(
    st.tuples(st.just("bytes"), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("truncate"), st.integers(1, 1 << 30)),
    st.tuples(st.just("drop column"), st.sampled_from(NAMES[1:])),
    st.tuples(st.just("drop table"), st.sampled_from(["meta", "runs"])),
    st.tuples(st.just("edit"), st.sampled_from(NAMES), _VALUES),
    st.tuples(st.just("edit config"), st.sampled_from(sorted(Run().as_dict())), _JSONISH),
    st.tuples(st.just("edit curves"), st.sampled_from(["loss", "grad_norm", "within"]), _JSONISH),
    st.tuples(st.just("edit meta"), st.sampled_from(["format", "schema_version", "compare"]), _VALUES),
)


class _Good:
    """A sweep's store and config (a short repr: hypothesis prints it with a failing example)."""

    def __init__(self, folder):
        from grids import CONFIG

        self.config = folder / "c.toml"
        self.config.write_text(CONFIG)
        with Store(folder / "r.sqlite") as s:
            run_sweep(cfg.load(self.config, SETTINGS), s, progress=False)
        self.bytes = (folder / "r.sqlite").read_bytes()

    def __repr__(self):
        return "<a good store>"


SETTINGS = ["seeds=[0]", "training.criterion_40_20_40=true"]


@pytest.fixture(scope="module")
def good_store(tmp_path_factory):
    return _Good(tmp_path_factory.mktemp("good"))


def _damage(path, damage):
    kind, *what = damage
    if kind in ("bytes", "truncate"):
        data = bytearray(path.read_bytes())
        at = what[0] % len(data)
        data = data[:at] + what[1] + data[at + len(what[1]):] if kind == "bytes" else data[:max(at, 1)]
        path.write_bytes(bytes(data))
        return
    db = sqlite3.connect(path)
    row = db.execute("SELECT run_id, config, curves FROM runs ORDER BY run_id LIMIT 1").fetchone()
    if kind == "drop column":
        db.execute(f"ALTER TABLE runs DROP COLUMN {what[0]}")
    elif kind == "drop table":
        db.execute(f"DROP TABLE {what[0]}")
    elif kind == "edit":
        db.execute(f"UPDATE runs SET {what[0]} = ? WHERE run_id = ?", (what[1], row[0]))
    elif kind in ("edit config", "edit curves"):
        column = 1 if kind == "edit config" else 2
        value = {**json.loads(row[column]), what[0]: what[1]}
        db.execute(f"UPDATE runs SET {('config', 'curves')[column - 1]} = ? WHERE run_id = ?",
                   (json.dumps(value), row[0]))
    else:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (what[1], what[0]))
    db.commit()
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()


def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _damaged(good, folder, damage):
    """The good store, damaged, at folder/r.sqlite; None where SQLite would not make this damage
    (dropping a column an index needs, say)."""
    path = pathlib.Path(folder) / "r.sqlite"
    path.write_bytes(good.bytes)
    try:
        _damage(path, damage)
    except sqlite3.Error:
        return None
    return path


@given(damage=DAMAGE)
def test_fuzz_a_sweep_on_a_damaged_store_refuses_in_one_line_and_writes_nothing(good_store, damage):
    with tempfile.TemporaryDirectory() as t:
        if (path := _damaged(good_store, t, damage)) is None:
            return
        damaged = path.read_bytes()
        code, err = _cli(["sweep", str(good_store.config), *(a for s in SETTINGS for a in ("--set", s)),
                          "--store", str(path), "--no-progress"])
        assert code in (0, 2) and "Traceback" not in err, (damage, err)
        if code == 2:
            assert len(err.strip().splitlines()) == 1, (damage, err)
            assert path.read_bytes() == damaged, damage  # refused: not a byte written


@settings(max_examples=min(20, int(os.environ.get("BPKIT_HYPOTHESIS_EXAMPLES", "20"))))  # ~2 s a report
@given(damage=DAMAGE)
def test_fuzz_a_report_of_a_damaged_store_is_one_line_or_warnings_and_writes_nothing(good_store, damage):
    with tempfile.TemporaryDirectory() as t:
        if (path := _damaged(good_store, t, damage)) is None:
            return
        damaged = path.read_bytes()
        code, err = _cli(["report", str(path), "--out", str(pathlib.Path(t) / "out")])
        assert code in (0, 2) and "Traceback" not in err, (damage, err)
        assert code == 0 or len(err.strip().splitlines()) == 1, (damage, err)
        assert path.read_bytes() == damaged, damage  # a report never writes


def test_a_store_in_a_folder_no_one_can_write_is_read(tmp_path, good_store):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "r.sqlite").write_bytes(good_store.bytes)
    db = sqlite3.connect(folder / "r.sqlite")
    db.execute("PRAGMA journal_mode=WAL")  # the hardest case: a write-ahead-log reader needs files beside it
    db.close()
    folder.chmod(0o555)
    frozen = False
    if os.access(folder, os.W_OK):  # root writes anywhere chmod allows nothing; an immutable folder stops it
        frozen = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        if not frozen or os.access(folder, os.W_OK):
            folder.chmod(0o755)
            pytest.skip("cannot make a folder this user cannot write (root without chattr +i here)")
    try:
        with Store(folder / "r.sqlite", readonly=True) as s:
            assert len(s.run_ids()) == 4
        assert _cli(["report", str(folder / "r.sqlite"), "--out", str(tmp_path / "out")])[0] == 0
    finally:
        if frozen:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)
