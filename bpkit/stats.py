"""Statistics for honest comparisons: success intervals and the cost of a success with restarts.

A study runs each method from ``n`` seeds.  Two numbers answer "how well does
it learn": how often a run succeeds, and what a success costs.

* **Success rate** ``k/n`` with the Wilson score interval (Wilson 1927;
  method 3 of Newcombe 1998), which keeps its coverage at ``k = 0`` and
  ``k = n`` where the normal approximation collapses to a point::

      centre = (k + z^2/2) / (n + z^2)
      half   = z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4)

* **Expected cost to a first success with restarts** (Fahlman's convention):
  a failed run is restarted from fresh weights until one succeeds, and every
  failed run counts its full cost.  With ``k`` successes among ``n`` runs
  whose costs are ``c_i`` (the cost to the criterion for a success, the whole
  run for a failure), the expected number of failures before a success is
  ``(1 - p) / p`` with ``p = k/n``, so::

      E[cost] = mean(failed costs) (1 - p)/p + mean(successful costs) = sum_i c_i / k

  (infinite when ``k = 0``).  Averaging over the successful runs only, as
  ``mean(successful costs)``, hides every failure.

* **Bootstrap intervals** for that cost and for the ratio of two methods'
  costs, resampling seeds with replacement (percentile intervals).  Two
  methods that start from the same initial weights for the same seed are
  resampled *paired*: the same seeds in every resample.

Randomness is explicit: every resampling function takes ``seed``.

Example:
    >>> wilson(81, 263)                                   # Newcombe (1998), Table I
    (0.2553..., 0.3662...)
    >>> restart_cost([10, 10, 40], [True, False, True])    # (10 + 10 + 40) / 2
    30.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal
BOOTSTRAP = 2000  # resamples


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes in ``n`` trials (95% for the default z).

    Raises:
        ValueError: ``n < 1`` or ``k`` outside ``0..n``, or not integers.
    """
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (k, n)):
        raise ValueError(f"wilson needs integer counts, got k={k!r}, n={n!r}")
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def restart_cost(costs: Sequence[float] | np.ndarray, success: Sequence[bool] | np.ndarray) -> float:
    """Expected cost to a first success when failed runs are restarted: ``sum(costs) / successes``.

    ``costs[i]`` is run i's cost to the criterion if it succeeded, its whole
    cost if it failed.  Infinite when nothing succeeded.
    """
    c, s = _pair(costs, success)
    k = int(s.sum())
    return math.inf if k == 0 else float(c.sum() / k)


class Estimate(NamedTuple):
    """A point estimate with its 95% interval (``lo``, ``hi``; ``inf`` where unbounded)."""

    value: float
    lo: float
    hi: float


def bootstrap_restart_cost(costs: Sequence[float], success: Sequence[bool], *, seed: int = 0,
                           resamples: int = BOOTSTRAP) -> Estimate:
    """:func:`restart_cost` with a percentile bootstrap interval over the runs.

    A resample with no success has infinite cost, so few successes give an
    interval open upwards (``hi = inf``), as they should.
    """
    c, s = _pair(costs, success)
    idx = np.random.default_rng(seed).integers(0, len(c), (resamples, len(c)))
    boot = _ratio_of_sums(c[idx], s[idx])
    return Estimate(restart_cost(c, s), *_percentiles(boot))


def bootstrap_cost_ratio(costs_a: Sequence[float], success_a: Sequence[bool], costs_b: Sequence[float],
                         success_b: Sequence[bool], *, paired: bool, seed: int = 0,
                         resamples: int = BOOTSTRAP) -> Estimate:
    """The ratio of two methods' restart costs, ``E[cost A] / E[cost B]``, with a bootstrap interval.

    ``paired``: run i of A and run i of B share their seed (and so their
    initial weights); each resample draws the same seeds for both.  Unpaired,
    A and B are resampled independently.  ``nan`` when neither succeeded,
    ``inf`` when only A never succeeded.
    """
    ca, sa = _pair(costs_a, success_a)
    cb, sb = _pair(costs_b, success_b)
    if paired and len(ca) != len(cb):
        raise ValueError(f"a paired ratio needs runs of the same seeds, got {len(ca)} and {len(cb)} runs")
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(ca), (resamples, len(ca)))
    ib = ia if paired else rng.integers(0, len(cb), (resamples, len(cb)))
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = _ratio_of_sums(ca[ia], sa[ia]) / _ratio_of_sums(cb[ib], sb[ib])
        point = restart_cost(ca, sa) / restart_cost(cb, sb) if sb.any() else (math.inf if sa.any() else math.nan)
    return Estimate(float(point), *_percentiles(boot))


def _pair(costs, success) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(costs, dtype=np.float64)
    s = np.asarray(success, dtype=bool)
    if c.ndim != 1 or c.shape != s.shape or c.size == 0:
        raise ValueError(f"costs and success must be two non-empty lists of one length, got {c.shape} and {s.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("costs must be finite and non-negative")
    return c, s


def _ratio_of_sums(c: np.ndarray, s: np.ndarray) -> np.ndarray:
    k = s.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(k > 0, c.sum(axis=-1) / np.maximum(k, 1), np.inf)


def _percentiles(boot: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of ``boot``; NaN resamples (0/0) are dropped, inf is kept."""
    boot = boot[~np.isnan(boot)]
    if boot.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(lo), float(hi)
