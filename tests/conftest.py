"""Strict JAX settings and a deterministic hypothesis profile for the whole suite."""

import os

import jax
import pytest
from grids import CONFIG
from hypothesis import HealthCheck, settings

import bpkit.cache

jax.config.update("jax_enable_x64", True)  # float64 checks; float32 arrays stay float32
jax.config.update("jax_numpy_rank_promotion", "raise")  # no silent broadcasting in bpkit

# The persistent compilation cache, as every bpkit entry point has it ($BPKIT_CACHE_DIR, default
# ~/.cache/bpkit/jax): on from the first test, not from whichever test first calls the CLI.
bpkit.cache.enable()

# Derandomised: the same examples every run, so a failure reproduces. CI can
# ask for more with BPKIT_HYPOTHESIS_EXAMPLES.
settings.register_profile(
    "bpkit",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("BPKIT_HYPOTHESIS_EXAMPLES", "40")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("bpkit")


@pytest.fixture
def config_file(tmp_path):
    """A small sweep config (tests/grids.py: CONFIG) written to a file."""
    p = tmp_path / "c.toml"
    p.write_text(CONFIG)
    return p


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """test_reliability's small sweep, run uninterrupted by the real command: (config, stored table), what
    every killed, interrupted or concurrent sweep must end with once resumed."""
    import subprocess

    from test_reliability import GOOD, _sweep_cmd, _table, write

    t = tmp_path_factory.mktemp("ref")
    config = write(t / "c.toml", GOOD)
    subprocess.run(_sweep_cmd(config, str(t / "ref.sqlite")), check=True, capture_output=True, timeout=300)
    return config, _table(t / "ref.sqlite")


def pytest_sessionfinish(session):
    """In a pytest-xdist worker, shrink the heap and stop listening for Ctrl-C once its tests are done.

    After a worker reports its session finished, the controller tears the workers down, and execnet
    sends a worker that has not returned within 5 s a SIGINT (execnet.gateway_base._terminate_execution).
    A worker is then still in pytest's unconfigure, which runs gc.collect() five times over every
    compiled program and array the session left, and under load that can pass 5 s: the
    KeyboardInterrupt then lands in JAX's gc callback, which Python reports as 'Exception ignored'
    and pytest as a PytestUnraisableExceptionWarning (seen once).  This hook runs before the worker
    reports: the garbage goes now, and a late SIGINT is ignored (execnet then simply waits for the
    worker's end; a real Ctrl-C reaches the controller, which stops the workers itself).
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import gc
        import signal

        jax.clear_caches()
        gc.collect()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
