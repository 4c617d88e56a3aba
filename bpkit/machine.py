"""What the machine and the environment allow, checked before any work starts: each problem one line.

JAX reads its environment variables when it is imported and starts its platform when first asked
for a device; a wrong value there ends in a traceback (``JAX_ENABLE_X64=junk``, a
``JAX_PLATFORMS`` naming a platform the machine lacks) or, below some address space (``ulimit
-v``), in an abort with no message at all.  :func:`check_environment` runs before JAX is imported
and :func:`check_platform` once it is, so that each becomes a one-line refusal naming the setting
and what would be valid.

Example:
    >>> from bpkit import machine
    >>> machine.check_environment({"JAX_ENABLE_X64": "1"})
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping

TRUTH = ("1", "0", "true", "false", "yes", "no", "on", "off", "y", "n", "t", "f")  # what JAX accepts
MIN_ADDRESS_SPACE = 2 << 30  # bytes: XLA's CPU client and its threads reserve about 1.5 GiB before any work
PER_CORE = 16 << 20  # and a thread stack and its local data per core
_PLATFORM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def check_environment(env: Mapping[str, str] | None = None) -> None:
    """Raise a one-line ValueError for a JAX setting JAX would refuse with a traceback, or an
    address-space limit too small for XLA to start."""
    env = os.environ if env is None else env
    x64 = env.get("JAX_ENABLE_X64")
    if x64 is not None and x64.strip().lower() not in TRUTH:
        raise ValueError(f"JAX_ENABLE_X64={x64[:20]!r} is not a truth value; valid: 1/0, true/false, yes/no, "
                         f"on/off (or leave it unset)")
    platforms = env.get("JAX_PLATFORMS")
    if platforms:
        for name in platforms.split(","):
            if not name.strip() or not set(name.strip().lower()) <= _PLATFORM:
                raise ValueError(f"JAX_PLATFORMS={platforms[:40]!r} is not a comma-separated list of platform "
                                 f"names such as cpu, cuda, tpu (or leave it unset to let JAX choose)")
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    need = MIN_ADDRESS_SPACE + PER_CORE * (os.cpu_count() or 1)
    if limit != resource.RLIM_INFINITY and limit < need:
        raise ValueError(f"the address-space limit (ulimit -v) is {limit >> 20} MiB; JAX and XLA need at least "
                         f"{need >> 20} MiB on this machine to start: raise it (ulimit -v {need >> 10})")


def check_platform() -> None:
    """Start JAX's platform now, so a platform the machine lacks is one line, not a traceback."""
    import jax

    try:
        jax.devices()
    except (RuntimeError, AssertionError) as e:
        why = str(e).split(" (set JAX_PLATFORMS")[0].strip().splitlines()[0][:160].rstrip(".") if str(e).strip() \
            else "no backend came up"
        raise ValueError(f"JAX could not start a platform from JAX_PLATFORMS="
                         f"{os.environ.get('JAX_PLATFORMS', '')!r}: {why}; unset "
                         f"JAX_PLATFORMS to let JAX choose, or name one this machine has (cpu everywhere)") from None


def cpu_devices(n: int) -> bool:
    """Split JAX's CPU platform into ``n`` devices (JAX's ``jax_num_cpu_devices``), so that runs laid
    out over the devices (:func:`bpkit.lanes.shard`, the sweep engine's chunks) step on ``n`` cores at
    once.  Only before the platform starts: returns False, and changes nothing, once it has (or where
    ``XLA_FLAGS`` sets a count of its own); True otherwise.  Accelerators are not affected.

    Example:
        >>> cpu_devices(2)  # doctest: +SKIP
        True
    """
    import jax

    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX's refusal: "should be updated before backends are initialized"
        return False
    return True
