"""bpkit.store: a foreign file is refused, a corrupt row is reported by id, curves round-trip, exports."""

import json
import sqlite3

import numpy as np
import pytest

from bpkit import config as cfg
from bpkit.store import Store
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
