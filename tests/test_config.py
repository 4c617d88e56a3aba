"""bpkit.config: TOML files, grids, axes and overrides, each bad key or value one line."""

import hashlib

import pytest
from grids import AXES

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
