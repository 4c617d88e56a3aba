"""Wall time of compiled calls, measured side by side so that a shared machine slows them alike.

On a shared, noisy machine two programs timed one after the other can land far apart because the
load changed in between; timed in alternation (A B C A B C ...) they see the same load, and their
*ratio* holds even when their absolute times move.  :func:`interleaved` does that: every call is
made once first (compiling it, and warming it up), then ``rounds`` samples of each in turn, each
sample ``inner`` calls with the last result waited for.

``settle=True`` makes one untimed call before each sample: whatever ran after a pause of about a
second (a slow peer such as FANN's batch epochs, or a plain sleep) ran 25-30% slower, which made
bpkit's batch loop 0.67x the minimal one when it came after FANN and 0.92x without FANN in the
round (``scripts/bench.py``, measured; the order of the others made no such difference).

Example:
    >>> t = interleaved({"a": lambda: f(x), "b": lambda: g(x)}, rounds=5)  # doctest: +SKIP
    >>> {k: median(v) for k, v in t.items()}  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int, inner: int = 1,
                settle: bool = False) -> dict[str, list[float]]:
    """Seconds per call of each of ``calls``: ``rounds`` samples each, taken in alternation.

    Each call is made once untimed first (its compile and warm-up).  A sample of ``k`` is ``inner``
    calls of ``calls[k]`` back to back, the last one's result waited for
    (``jax.block_until_ready``), over ``inner``; ``settle``: one untimed call just before each sample.

    Raises:
        ValueError: ``rounds`` or ``inner`` below 1.
    """
    if rounds < 1 or inner < 1:
        raise ValueError(f"rounds and inner must be at least 1, got {rounds!r} and {inner!r}")
    for f in calls.values():
        jax.block_until_ready(f())
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for k, f in calls.items():
            if settle:
                jax.block_until_ready(f())
            t = time.perf_counter()
            for _ in range(inner):
                out = f()
            jax.block_until_ready(out)
            times[k].append((time.perf_counter() - t) / inner)
    return times
