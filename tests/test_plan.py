"""bpkit.plan: a sweep's groups, chunks and memory, every check before any work."""

import os
import re
import subprocess
import sys

import jax
import pytest
from grids import stored_table

from bpkit import config as cfg
from bpkit.store import Store
from bpkit.sweep import run_sweep


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
    assert stored_table(a) == stored_table(b)


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


@pytest.mark.parametrize("body, message", [
    ("measure_every = 2\nmeasures_per_epoch = 2\n", "give one of them"),
    ("measures_per_epoch = 2\nbatch_size = 'full'\n", "needs online or mini-batch training"),
    ("measures_per_epoch = 3\nbatch_size = 2\n",
     "is more than the 2 batch(es) of an epoch of xor at training.batch_size = 2; use 1..2"),
    ("measures_per_epoch = 0\n", "training.measures_per_epoch = 0 is out of range"),
    ("measure_every = -1\n", "training.measure_every = -1 is out of range"),
    ("grad_norm = false\nmin_grad_norm = 0.001\n", "the rule needs the gradient norm measured"),
])
def test_bad_measurement_settings_are_one_line_before_any_work(tmp_path, body, message):
    from bpkit.plan import plan

    p = tmp_path / "bad.toml"
    p.write_text("[training]\n" + body)
    with pytest.raises(ValueError, match=re.escape(message)):
        plan(cfg.expand(cfg.load(p)))
