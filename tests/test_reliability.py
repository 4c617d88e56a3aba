"""Reliability: bad input, divergence, kill -9 and Ctrl-C mid-sweep, determinism across processes."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from bpkit.cli import main
from bpkit.store import Store

GOOD = textwrap.dedent("""
    name = "rel"
    seeds = [0, 1, 2, 3, 4, 5]
    [network]
    hidden = [2]
    activation = "tanh"
    [optimizer]
    learning_rate = [0.5, 1.0]
    [training]
    batch_size = 2
    max_epochs = 60
""")


def write(path, text, binary=False):
    path.write_bytes(text) if binary else path.write_text(text)
    return str(path)


def bad_cases(t):
    """(argv, expected message start) for every kind of bad input, files made under t."""
    cfg = lambda body: write(t / f"c{abs(hash(body))}.toml", body)  # noqa: E731
    csv = lambda body: write(t / f"d{abs(hash(body))}.csv", body)  # noqa: E731
    fann = write(t / "r.data", "2 2 1\n0 1\n1\n1 1 1\n0\n")

    def data_cfg(path):
        return cfg("[data]\npath = '" + path + "'\n")

    wrong_version = t / "old.sqlite"
    s = Store(wrong_version)
    s._db.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    s._db.commit()
    s.close()
    return [
        (["sweep", str(t / "missing.toml")], "no such config file"),
        (["sweep", cfg("[training\n")], "malformed TOML"),
        (["sweep", write(t / "bin.toml", b"\x00\x01PNG", binary=True)], "a binary file, not a TOML config"),
        (["sweep", cfg("[network]\nsizes = [2]\n")], "unknown config key 'network.sizes'; valid keys:"),
        (["sweep", cfg("[training]\nmax_epochs = 'many'\n")], "training.max_epochs must be an integer, got 'many'"),
        (["sweep", cfg("[optimizer]\nlearning_rate = 0\n")], "optimizer.learning_rate = 0 is out of range"),
        (["sweep", cfg("[optimizer]\nlearning_rate = -0.5\n")], "optimizer.learning_rate = -0.5 is out of range"),
        (["sweep", cfg("[training]\nmax_epochs = 0\n")], "training.max_epochs = 0 is out of range"),
        (["sweep", cfg("[training]\nbatch_size = 0\n")], "training.batch_size must be a positive integer or 'full', got 0"),
        (["sweep", cfg("[training]\nbatch_size = 5\n")], "training.batch_size = 5 is larger than the 4 training examples of xor"),
        (["sweep", cfg("[network]\nactivation = 'sigmoidd'\n")], "network.activation = 'sigmoidd' is not valid; valid: identity"),
        (["sweep", cfg("loss = 'hinge'\n")], "loss = 'hinge' is not valid; valid: mse, bce, softmax_ce"),
        (["sweep", cfg("[optimizer]\nname = 'newton'\n")], "optimizer.name = 'newton' is not valid; valid: sgd"),
        (["sweep", cfg("[data]\nname = 'mnist'\n")], "unknown data set 'mnist'; valid: xor"),
        (["sweep", data_cfg(csv("a,b,y\n0,1,2\n1,0,-1\n"))], "labels must lie in 0..2, got -1..2"),
        (["sweep", data_cfg(csv("a,b,y\n0,nan,1\n1,0,0\n"))], "data set 'd"),
        (["sweep", data_cfg(csv("a,b,y\n"))], "no data rows after the header"),
        (["sweep", data_cfg(csv("a,b,y\n0,1,1\n1,0\n"))], "line 3 has 2 fields, the header has 3"),
        (["sweep", data_cfg(fann)], "line 4 has 3 values, an input line needs 2"),
        (["sweep", cfg(GOOD), "--store", str(t / "no" / "such" / "dir" / "r.sqlite")], "cannot create the store, folder"),
        (["sweep", cfg(GOOD), "--store", write(t / "notes.txt", "not a store")], "not a bpkit results store"),
        (["sweep", cfg(GOOD), "--store", str(wrong_version)], "store schema version 0, this bpkit reads version 1"),
        (["report", write(t / "notes2.txt", "x")], "not a bpkit results store"),
        (["report", str(t / "none.sqlite")], "no such results store"),
        (["sweep", cfg(GOOD), "--memory-budget", "0"], "--memory-budget must be a positive number of megabytes"),
        (["frobnicate"], "argument VERB: invalid choice: 'frobnicate'"),
        ([], "missing verb; valid: check, report, datasets, run, sweep"),
    ]


def test_every_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for argv, message in bad_cases(tmp_path):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
        err = capsys.readouterr().err.strip()
        assert code == 2, (argv, code, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)
        assert err.split(": error: ", 1)[1].split(": ", 1)[-1].startswith(message) or message in err, (argv, err)


@pytest.mark.parametrize("content", [b"x", b"my notes\n", b"SQLite format 3\x00" + b"\x00" * 100])
def test_a_file_that_is_not_a_store_is_never_changed(tmp_path, content):
    p = tmp_path / "precious.txt"
    p.write_bytes(content)
    with pytest.raises(ValueError, match="not a bpkit results store"):
        Store(p)
    assert p.read_bytes() == content


def test_an_empty_file_left_by_a_killed_sweep_becomes_a_store(tmp_path):
    p = tmp_path / "r.sqlite"
    p.write_bytes(b"")
    with Store(p) as s:
        assert s.run_ids() == set()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="no such config file"):
        main(["--debug", "sweep", str(tmp_path / "missing.toml")])


def test_a_diverging_run_is_stored_as_diverged_and_the_sweep_goes_on(tmp_path, capsys):
    c = write(tmp_path / "d.toml", textwrap.dedent("""
        name = "div"
        seeds = [0]
        [network]
        hidden = [4]
        activation = "identity"
        output = "identity"
        [optimizer]
        learning_rate = [0.05, 500.0]
        [training]
        max_epochs = 200
    """))
    assert main(["sweep", c, "--store", str(tmp_path / "s.sqlite"), "--no-progress"]) == 0
    runs, _ = Store(tmp_path / "s.sqlite").runs()
    by_lr = {r["config"]["optimizer.learning_rate"]: r for r in runs}
    assert by_lr[500.0]["status"] == "diverged" and by_lr[500.0]["epochs"] < 200
    assert by_lr[0.05]["status"] == "finished" and by_lr[0.05]["train_loss"] < 1


# -- killed and interrupted sweeps, in real subprocesses ---------------------------------------


def _sweep_cmd(config, store):
    return [sys.executable, "-m", "bpkit", "sweep", config, "--store", store, "--chunk-size", "2", "--no-progress"]


def _table(path):
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return sorted(db.execute("SELECT run_id, epochs, train_loss, curves FROM runs"))


def _count(path):
    if not os.path.exists(path):
        return 0
    try:  # read-only: polling must not create or change the store
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    t = tmp_path_factory.mktemp("ref")
    config = write(t / "c.toml", GOOD)
    subprocess.run(_sweep_cmd(config, str(t / "ref.sqlite")), check=True, capture_output=True, timeout=300)
    return config, _table(t / "ref.sqlite")


@pytest.mark.parametrize("when", ["before any write", "after two chunks", "inside a store transaction"])
def test_kill_9_then_resume_gives_exactly_the_uninterrupted_runs(tmp_path, reference, when):
    config, want = reference
    store = str(tmp_path / "s.sqlite")
    env = dict(os.environ)
    flag = tmp_path / "in-commit"
    if when == "inside a store transaction":
        env.update(BPKIT_TEST_PAUSE_IN_COMMIT="60", BPKIT_TEST_PAUSE_IN_COMMIT_FLAG=str(flag))
    if when == "after two chunks":
        # Each commit waits 1 s inside its transaction, so the kill lands before a third
        # chunk is committed (the compiled chunks alone can finish within one poll).
        env.update(BPKIT_TEST_PAUSE_IN_COMMIT="1", BPKIT_TEST_PAUSE_IN_COMMIT_FLAG=str(flag))
    proc = subprocess.Popen(_sweep_cmd(config, store), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if when == "before any write" and os.path.exists(store):
            break
        if when == "after two chunks" and _count(store) >= 4:
            break
        if when == "inside a store transaction" and flag.exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_with = _count(store)
    if when == "inside a store transaction":
        assert killed_with == 0  # the first chunk's rows were never committed
    if when == "after two chunks":
        assert killed_with == 4  # two committed chunks of 2, the third rolled back
    assert killed_with < len(want)
    subprocess.run(_sweep_cmd(config, store), check=True, capture_output=True, timeout=300)
    assert _table(store) == want  # none lost, none twice, the same numbers


def test_ctrl_c_keeps_finished_runs_and_says_how_to_resume(tmp_path, reference):
    config, want = reference
    store = str(tmp_path / "s.sqlite")
    flag = tmp_path / "in-commit"
    env = {**os.environ, "BPKIT_TEST_PAUSE_IN_COMMIT": "60", "BPKIT_TEST_PAUSE_IN_COMMIT_FLAG": str(flag)}
    proc = subprocess.Popen(_sweep_cmd(config, store), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not flag.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Run the same command again to resume" in err and "Traceback" not in err
    subprocess.run(_sweep_cmd(config, store), check=True, capture_output=True, timeout=300)
    assert _table(store) == want


_PARAMS_SCRIPT = """
import hashlib, jax, numpy as np, optax
from bpkit import MLP, datasets
from bpkit.stopping import StopRules
from bpkit.training import train
d = datasets.load("iris")
net = MLP((4, 8, 3), hidden="tanh", output="sigmoid")
r = train(net, optax.sgd(0.3), net.init(jax.random.key(3)), d.x_train, d.y_train, key=jax.random.key(4),
          batch_size=5, rules=StopRules(max_epochs=30), x_val=d.x_val, y_val=d.y_val)
h = hashlib.sha256()
for leaf in jax.tree.leaves((r.params, r.history, r.epochs, r.stop_reason)):
    h.update(np.asarray(leaf).tobytes())
print(h.hexdigest())
"""


def test_same_config_and_seed_are_bitwise_identical_in_two_processes():
    digests = [
        subprocess.run([sys.executable, "-c", _PARAMS_SCRIPT], check=True, capture_output=True, text=True,
                       timeout=300).stdout.strip()
        for _ in range(2)
    ]
    assert digests[0] == digests[1] and len(digests[0]) == 64
