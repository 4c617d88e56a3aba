"""Reliability: bad input, divergence, kill -9 and Ctrl-C mid-sweep, determinism across processes."""

import os
import re
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
    cfg = lambda body: write(t / f"c{abs(hash(body))}.toml", body)
    csv = lambda body: write(t / f"d{abs(hash(body))}.csv", body)
    fann = write(t / "r.data", "2 2 1\n0 1\n1\n1 1 1\n0\n")

    def data_cfg(path):
        return cfg("[data]\npath = '" + path + "'\n")

    wrong_version = t / "old.sqlite"
    s = Store(wrong_version)
    s.create()
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
        (["sweep", cfg("[training]\nbatch_size = 0\n")],
         "training.batch_size must be a positive integer or 'full', got 0"),
        (["sweep", cfg("[training]\nbatch_size = 5\n")],
         "training.batch_size = 5 is larger than the 4 training examples of xor"),
        (["sweep", cfg("[network]\nactivation = 'sigmoidd'\n")],
         "network.activation = 'sigmoidd' is not valid; valid: identity"),
        (["sweep", cfg("loss = 'hinge'\n")], "loss = 'hinge' is not valid; valid: mse, bce, softmax_ce"),
        (["sweep", cfg("[optimizer]\nname = 'newton'\n")], "optimizer.name = 'newton' is not valid; valid: sgd"),
        (["sweep", cfg("[data]\nname = 'mnist'\n")], "unknown data set 'mnist'; valid: xor"),
        (["sweep", data_cfg(csv("a,b,y\n0,1,2\n1,0,-1\n"))], "labels must lie in 0..2, got -1..2"),
        (["sweep", data_cfg(csv("a,b,y\n0,nan,1\n1,0,0\n"))], "data set 'd"),
        (["sweep", data_cfg(csv("a,b,y\n"))], "no data rows after the header"),
        (["sweep", data_cfg(csv("a,b,y\n0,1,1\n1,0\n"))], "line 3 has 2 fields, the header has 3"),
        (["sweep", data_cfg(fann)], "line 4 has 3 values, an input line needs 2"),
        (["sweep", cfg(GOOD), "--store", str(t / "no" / "such" / "dir" / "r.sqlite")],
         "cannot create the store, folder"),
        (["sweep", cfg(GOOD), "--store", write(t / "notes.txt", "not a store")], "not a bpkit results store"),
        (["sweep", cfg(GOOD), "--store", str(wrong_version)], "store schema version 0, this bpkit reads version 1"),
        (["report", write(t / "notes2.txt", "x")], "not a bpkit results store"),
        (["report", str(t / "none.sqlite")], "no such results store"),
        (["sweep", cfg(GOOD), "--memory-budget", "0"], "--memory-budget must be a positive number of megabytes"),
        (["sweep", cfg(GOOD), "--compile-ahead", "-1"], "--compile-ahead must be an integer in 0..16"),
        (["sweep", cfg(GOOD), "--lanes", "0"], "--lanes must be 'auto', 'all' or an integer in 1.."),
        (["sweep", cfg(GOOD), "--lanes", "some"], "--lanes must be 'auto', 'all' or an integer in 1.."),
        (["frobnicate"], "argument VERB: invalid choice: 'frobnicate'"),
        ([], "missing verb; valid: check, report, datasets, run, sweep, copy"),
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


DRIVER = os.path.join(os.path.dirname(__file__), "sweep_driver.py")


def _sweep_cmd(config, store):
    return [sys.executable, "-m", "bpkit", "sweep", config, "--store", store, "--chunk-size", "2", "--no-progress"]


def _paused_cmd(config, store, stage, nth, flag, release=None, seconds=120):
    """The same sweep, paused by an injected store hook at the ``nth`` ``stage`` (see sweep_driver.py)."""
    extra = ["--release", str(release)] if release else []
    return [sys.executable, DRIVER, "--stage", stage, "--nth", str(nth), "--flag", str(flag),
            "--seconds", str(seconds), *extra, "--", *_sweep_cmd(config, store)[4:]]


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


def _wait_for(flag, proc, seconds=120):
    deadline = time.time() + seconds
    while not flag.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert flag.exists() and proc.poll() is None, "the sweep never reached the instant to stop it at"


# (hook stage, its nth call, runs committed when the kill lands): every instant is exact, not timed.
KILL_POINTS = {
    "while the store is being created": ("opened", 1, 0),  # connected, WAL on, no tables yet
    "inside the first store transaction": ("commit", 1, 0),
    "inside the third store transaction": ("commit", 3, 4),  # two chunks of 2 committed
}


@pytest.mark.parametrize("when", list(KILL_POINTS))
def test_kill_9_then_resume_gives_exactly_the_uninterrupted_runs(tmp_path, reference, when):
    config, want = reference
    store, flag = str(tmp_path / "s.sqlite"), tmp_path / "paused"
    stage, nth, committed = KILL_POINTS[when]
    proc = subprocess.Popen(_paused_cmd(config, store, stage, nth, flag),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(flag, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _count(store) == committed
    subprocess.run(_sweep_cmd(config, store), check=True, capture_output=True, timeout=300)
    assert _table(store) == want  # none lost, none twice, the same numbers


def test_ctrl_c_keeps_finished_runs_and_says_how_to_resume(tmp_path, reference):
    config, want = reference
    store, flag = str(tmp_path / "s.sqlite"), tmp_path / "paused"
    proc = subprocess.Popen(_paused_cmd(config, store, "commit", 2, flag),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(flag, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "2 finished runs are kept" in err and "Run the same command again to resume" in err
    assert "Traceback" not in err
    subprocess.run(_sweep_cmd(config, store), check=True, capture_output=True, timeout=300)
    assert _table(store) == want


def test_two_sweeps_and_a_report_on_one_store_keep_each_run_once(tmp_path, reference):
    """A pauses inside its first commit; B reads the store (nothing committed yet), so B computes
    every run too. Released, both finish: each run stored once, B says how many A stored first."""
    config, want = reference
    store = str(tmp_path / "s.sqlite")
    flag_a, flag_b, release = tmp_path / "a", tmp_path / "b", tmp_path / "go"
    a = subprocess.Popen(_paused_cmd(config, store, "commit", 1, flag_a, release),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(flag_a, a)
    b = subprocess.Popen(_paused_cmd(config, store, "run_ids", 1, flag_b, release),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(flag_b, b)
    release.touch()
    report = subprocess.run([sys.executable, "-m", "bpkit", "report", store, "--out", str(tmp_path / "rep")],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode in (0, 2), report.stderr  # 2: no runs committed yet, said in one line
    assert "Traceback" not in report.stderr
    outs = [p.communicate(timeout=300) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    counts = [re.search(r"(\d+) new, (\d+) already in .*?(?:, (\d+) stored meanwhile|$)", o.strip().splitlines()[-1])
              for o, _ in outs]
    new = [int(m.group(1)) for m in counts]
    meanwhile = [int(m.group(3) or 0) for m in counts]
    assert [int(m.group(2)) for m in counts] == [0, 0]
    assert sum(new) == len(want) and all(n + m == len(want) for n, m in zip(new, meanwhile, strict=True))
    assert meanwhile[1] >= 2  # B's first chunk was A's first commit
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
