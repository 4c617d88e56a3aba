"""bpkit.machine: JAX settings and machine limits that JAX would meet with a traceback or an abort are
refused first, in one line, by the real command (exit 2), and nothing is left behind."""

import os
import resource
import shlex
import subprocess
import sys

import pytest

from bpkit import machine

XOR = 'name = "m"\n[training]\nmax_epochs = 5\n'


def _bpkit(tmp_path, env=None, limit_kib=None):
    (tmp_path / "c.toml").write_text(XOR)
    command = [sys.executable, "-m", "bpkit", "sweep", "c.toml", "--no-progress"]
    if limit_kib:  # the shell sets the limit: no fork from this (threaded, JAX-running) process
        command = ["bash", "-c", f"ulimit -v {limit_kib} && exec {shlex.join(command)}"]
    return subprocess.run(command, cwd=tmp_path, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("env", "say"), [
    ({"JAX_ENABLE_X64": "junk"}, "JAX_ENABLE_X64='junk' is not a truth value; valid: 1/0"),
    ({"JAX_PLATFORMS": "cpu;rm -rf"}, "is not a comma-separated list of platform names"),
    ({"JAX_PLATFORMS": "junk"}, "JAX could not start a platform from JAX_PLATFORMS='junk'"),
    ({"JAX_PLATFORMS": "cuda"}, "JAX could not start a platform from JAX_PLATFORMS='cuda'"),
])
def test_a_jax_setting_jax_would_refuse_with_a_traceback_is_one_line(tmp_path, env, say):
    if env.get("JAX_PLATFORMS") == "cuda" and os.path.exists("/dev/nvidia0"):
        pytest.skip("this machine has a CUDA device, so JAX_PLATFORMS=cuda is valid here")
    out = _bpkit(tmp_path, env)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and say in out.stderr, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]  # refused: no results folder, no store


def test_an_address_space_too_small_for_xla_is_refused_before_jax_starts(tmp_path):
    out = _bpkit(tmp_path, None, 1 << 20)  # 1 GiB: XLA aborts (SIGABRT, or a failed thread) without a word
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "the address-space limit (ulimit -v) is 1024 MiB; JAX and XLA need at least" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_valid_settings_pass():
    machine.check_environment({"JAX_ENABLE_X64": "True", "JAX_PLATFORMS": "cpu,cuda"})
    machine.check_environment({})
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    assert soft == resource.RLIM_INFINITY or soft >= machine.MIN_ADDRESS_SPACE  # this suite's own process
