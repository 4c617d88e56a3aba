"""bpkit.interrupt: Ctrl-C and SIGTERM, however many and whenever, end a sweep at once in one line.

Real ``bpkit`` processes get 1-3 signals at seeded random instants, from the first tenth of a
second (JAX still loading) to mid-sweep: each ends with exit 130 (143 for SIGTERM), one line
saying how to resume and no traceback or abort; the store stays intact, and a resume equals the
reference sweep.
"""

import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from test_reliability import _sweep_cmd, _table

# (delay before the first signal in seconds, signals, gap between them): drawn once, seeded.
_rng = random.Random(20261207)
TRIES = [(round(_rng.uniform(0.05, 6.0), 2), _rng.choice([[signal.SIGINT], [signal.SIGINT] * 2, [signal.SIGINT] * 3,
                                                            [signal.SIGTERM], [signal.SIGINT, signal.SIGTERM]]),
          round(_rng.uniform(0.0, 0.4), 2)) for _ in range(6)]


@pytest.mark.parametrize(("delay", "signals", "gap"), TRIES, ids=[f"{d}s-{len(s)}x" for d, s, _ in TRIES])
def test_signals_at_random_instants_end_the_sweep_in_one_line_and_a_resume_completes_it(
        tmp_path, reference, delay, signals, gap):
    config, want = reference
    store = str(tmp_path / "s.sqlite")
    proc = subprocess.Popen(_sweep_cmd(config, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    for sig in signals:
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        time.sleep(gap)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # it finished before the first signal: nothing to check but the result
        assert _table(store) == want
        return
    assert proc.returncode == 128 + signals[0], (proc.returncode, err)
    assert "Traceback" not in err and "Exception ignored" not in err and "Abort" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("bpkit: interrupted; "), err
    assert lines[0].endswith("Run the same command again to resume."), err
    if (tmp_path / "s.sqlite").exists():
        assert sqlite3.connect(store).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    subprocess.run(_sweep_cmd(config, store), check=True, capture_output=True, timeout=300)
    assert _table(store) == want


def test_a_signal_ignored_when_bpkit_started_stays_ignored(tmp_path, reference):
    config, want = reference
    store = str(tmp_path / "s.sqlite")
    ignore = "import signal, sys, runpy; signal.signal(signal.SIGINT, signal.SIG_IGN); sys.argv[0] = 'bpkit'; "
    proc = subprocess.Popen([sys.executable, "-c", ignore + "runpy.run_module('bpkit', run_name='__main__')",
                             *_sweep_cmd(config, store)[3:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)  # as a shell's background job ignores Ctrl-C at the terminal
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert _table(store) == want
