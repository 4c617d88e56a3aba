"""A sweep across two processes on JAX's own runtime equals a one-process sweep, bitwise."""

import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest
from test_reliability import _count

from bpkit import distributed
from bpkit.store import Store

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "xor.toml"
CPU = {"JAX_PLATFORMS": "cpu"}  # two processes on this machine's CPU, as on any machine: one GPU is not two devices


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sweep(store, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "bpkit", "sweep", str(CONFIG), "--store", str(store),
                             "--no-progress",
                             *extra], cwd=ROOT, env={**os.environ, **CPU, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _rows(path):
    with Store(path, create=False) as s:
        runs, errors = s.runs()
    assert not errors
    return [{k: v for k, v in r.items() if k not in ("wall_time",)} for r in runs]


def test_two_processes_store_exactly_the_runs_of_one(tmp_path):
    one = _sweep(tmp_path / "one.sqlite")
    port = _free_port()
    # One process from the command line, the other from the environment: both ways are supported.
    procs = [_sweep(tmp_path / "two.sqlite", "--coordinator", f"localhost:{port}", "--num-processes", "2",
                    "--process-id", "0"),
             _sweep(tmp_path / "two.sqlite", env={"BPKIT_COORDINATOR": f"localhost:{port}",
                                                  "BPKIT_NUM_PROCESSES": "2", "BPKIT_PROCESS_ID": "1"})]
    outs = [p.communicate(timeout=600) for p in procs + [one]]
    for p, (_, err) in zip(procs + [one], outs, strict=True):
        assert p.returncode == 0, err
    assert "2 processes (2 devices)" in outs[0][0] and "32 new" in outs[0][0]  # process 0 wrote the store and says so
    assert "runs in" not in outs[1][0]  # the other computed its share and wrote nothing (gloo may say hello)
    two, single = _rows(tmp_path / "two.sqlite"), _rows(tmp_path / "one.sqlite")
    assert len(two) == len(single) == 32
    for a, b in zip(two, single, strict=True):
        assert {k: v for k, v in a.items() if k != "device"} == {k: v for k, v in b.items() if k != "device"}


def test_settings_are_all_or_nothing():
    assert distributed.settings() is None
    assert distributed.settings("localhost:1234", 2, 1) == ("localhost:1234", 2, 1)
    for args, match in [(("localhost:1", None, 0), "missing: num_processes"), (("nowhere", 2, 0), "host:port"),
                        (("localhost:1", 2, 2), "process id < 2"), (("localhost:1", "two", 0), "integers")]:
        with pytest.raises(ValueError, match=match):
            distributed.settings(*args)


def test_bad_multi_process_flags_are_one_line_and_exit_2(tmp_path):
    p = _sweep(tmp_path / "x.sqlite", "--coordinator", "localhost:1", "--num-processes", "2")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and len(err.strip().splitlines()) == 1 and "missing: process_id" in err


def test_a_port_out_of_range_is_refused():
    with pytest.raises(ValueError, match="a port in 1..65535"):
        distributed.settings("localhost:70000", 2, 0)


def _one_line_exit_2(p, say, within):
    out, err = p.communicate(timeout=within)
    assert p.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert say in err, err


def test_an_unreachable_coordinator_is_one_line_after_the_stated_timeout(tmp_path):
    # JAX's runtime would abort with a C++ stack after its own timeout; bpkit checks first.
    p = _sweep(tmp_path / "x.sqlite", "--coordinator", f"localhost:{_free_port()}", "--num-processes", "2",
               "--process-id", "1", "--peer-timeout", "2")
    _one_line_exit_2(p, "could not reach the coordinator at localhost:", within=60)
    assert not (tmp_path / "x.sqlite").exists()


def test_a_second_process_0_on_a_taken_port_is_one_line(tmp_path):
    with socket.create_server(("", 0)) as taken:  # as the first process 0's coordinator holds it
        port = taken.getsockname()[1]
        p = _sweep(tmp_path / "x.sqlite", "--coordinator", f"localhost:{port}", "--num-processes", "2",
                   "--process-id", "0")
        _one_line_exit_2(p, f"the coordinator's port {port} cannot be bound here", within=60)


def test_a_peer_killed_mid_sweep_ends_the_other_in_one_line_and_a_resume_completes_it(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('name = "mp"\nseeds = [' + ", ".join(map(str, range(24))) + ']\n[network]\nhidden = [4]\n'
                      'activation = "tanh"\n[optimizer]\nlearning_rate = 0.3\n[training]\nbatch_size = 1\n'
                      'max_epochs = 2000\n')
    store = tmp_path / "s.sqlite"

    def pair():
        port = _free_port()
        return [subprocess.Popen([sys.executable, "-m", "bpkit", "sweep", str(config), "--store", str(store),
                                  "--no-progress", "--chunk-size", "4", "--coordinator", f"localhost:{port}",
                                  "--num-processes", "2", "--process-id", str(i), "--peer-timeout", "10"],
                                 cwd=ROOT, env={**os.environ, **CPU}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for i in (0, 1)]

    first, peer = pair()
    deadline = time.time() + 240
    while _count(store) < 4 and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    assert first.poll() is None and _count(store) >= 4, "the sweep never stored a chunk"
    peer.kill()
    peer.communicate()
    out, err = first.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert first.returncode == 1 and "Traceback" not in err and not any(" @ " in line for line in lines), err
    assert len(lines) == 1 and lines[0].startswith("bpkit: error: ") and "start every process again" in lines[0]
    for p in pair():
        assert p.communicate(timeout=600)[0] is not None and p.returncode == 0
    assert _count(store) == 24

