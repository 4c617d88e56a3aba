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
  resampled *paired*: the same seeds in every resample.  A rate pooled over runs
  that share starts resamples whole clusters (:func:`pooled_rate`).

* **The cost with a cutoff** (Luby, Sinclair & Zuckerman 1993): cut every run at
  ``t`` and restart; with runtimes ``T`` (a failed run's cost censored where it ended),
  ``E[cost] = E[min(T, t)] / P(T <= t)`` (:func:`cutoff_cost`); its minimum over ``t``
  (:func:`best_cutoff`) does not depend on the budget the runs were given, as long as
  the budget exceeds the best cutoff.

* **McNemar's exact test** for two methods run from the same starts
  (:func:`mcnemar`): only the discordant pairs count, and under "no difference"
  each falls either way with probability 1/2.

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


def separated(ka: int, na: int, kb: int, nb: int) -> bool:
    """Whether two success rates, ``ka`` of ``na`` and ``kb`` of ``nb`` independent runs, are told apart:
    their Wilson 95% intervals do not overlap.

    Example:
        >>> separated(19, 20, 4, 20), separated(12, 20, 9, 20)
        (True, False)
    """
    (la, ha), (lb, hb) = wilson(ka, na), wilson(kb, nb)
    return ha < lb or hb < la


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


def bootstrap_restart_cost(costs: Sequence[float] | np.ndarray, success: Sequence[bool] | np.ndarray, *, seed: int = 0,
                           resamples: int = BOOTSTRAP) -> Estimate:
    """:func:`restart_cost` with a percentile bootstrap interval over the runs.

    A resample with no success has infinite cost, so few successes give an
    interval open upwards (``hi = inf``), as they should.
    """
    c, s = _pair(costs, success)
    idx = np.random.default_rng(seed).integers(0, len(c), (resamples, len(c)))
    boot = _ratio_of_sums(c[idx], s[idx])
    return Estimate(restart_cost(c, s), *_percentiles(boot))


def bootstrap_mean(values: Sequence[float] | np.ndarray, *, seed: int = 0, resamples: int = BOOTSTRAP) -> Estimate:
    """The mean of ``values`` with a percentile bootstrap 95% interval over them.

    Example:
        >>> bootstrap_mean([1.0, 1.0, 1.0]).lo
        1.0
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"need a non-empty list of finite values, got {v.size} value(s)")
    idx = np.random.default_rng(seed).integers(0, len(v), (resamples, len(v)))
    return Estimate(float(v.mean()), *_percentiles(v[idx].mean(axis=1)))


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


def cutoff_cost(costs: Sequence[float] | np.ndarray, success: Sequence[bool] | np.ndarray, cutoff: float) -> float:
    """Expected cost to a first success when every run is cut at ``cutoff`` and restarted:
    ``sum_i min(c_i, t) / #{i: success_i and c_i <= t}`` (infinite when no run succeeds by ``t``).

    ``c_i`` is run i's cost to the criterion if it succeeded, its whole cost if not (a run that
    stopped itself before ``t`` costs what it spent).  At a cutoff above every cost it is
    :func:`restart_cost`.

    Example:
        >>> cutoff_cost([10, 100, 30], [True, False, True], 30)   # (10 + 30 + 30) / 2
        35.0
    """
    c, s = _pair(costs, success)
    k = int(np.sum(s & (c <= cutoff)))
    return math.inf if k == 0 else float(np.minimum(c, cutoff).sum() / k)


class Cutoff(NamedTuple):
    """The best cutoff and the expected cost with restarts at it."""

    cost: float
    cutoff: float


def best_cutoff(costs: Sequence[float] | np.ndarray, success: Sequence[bool] | np.ndarray) -> Cutoff:
    """The cutoff that minimises :func:`cutoff_cost`, and that cost (``(inf, nan)`` without a success).

    Between two successive success costs the numerator grows with the cutoff and the denominator
    does not, so the minimum lies at a success cost: those are the candidates.

    Example:
        >>> best_cutoff([10, 100, 12, 500], [True, False, True, True])   # cut at 12: (10 + 12 + 12 + 12) / 2
        Cutoff(cost=23.0, cutoff=12.0)
    """
    c, s = _pair(costs, success)
    candidates = np.unique(c[s])
    if candidates.size == 0:
        return Cutoff(math.inf, math.nan)
    found = [(cutoff_cost(c, s, t), float(t)) for t in candidates]
    cost, t = min(found)
    return Cutoff(cost, t)


class McNemar(NamedTuple):
    """Paired successes: runs only A solved, runs only B solved, and the exact two-sided p-value."""

    only_a: int
    only_b: int
    p: float


def mcnemar(success_a: Sequence[bool], success_b: Sequence[bool]) -> McNemar:
    """McNemar's exact test of two methods run from the same starts (run i of each from start i).

    With ``n`` discordant pairs of which ``m = min(only_a, only_b)``, under "no difference" the split
    is Binomial(n, 1/2): ``p = min(1, 2 P(X <= m))`` (1 when ``n = 0``).

    Example:
        >>> mcnemar([True] * 8 + [False] * 2, [False] * 8 + [True] * 2).p   # 8 against 2 of 10 discordant
        0.109375
    """
    a, b = np.asarray(success_a, bool), np.asarray(success_b, bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"McNemar's test pairs runs: two lists of one length, got {a.shape} and {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n, m = only_a + only_b, min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(m + 1)) / 2.0**n if n else 1.0
    return McNemar(only_a, only_b, min(1.0, 2.0 * tail) if n else 1.0)


def pooled_rate(success: Sequence[bool], clusters: Sequence[object], *, seed: int = 0,
                resamples: int = BOOTSTRAP) -> Estimate:
    """The success rate pooled over runs, with a percentile bootstrap interval that resamples whole
    clusters: runs that share a start (the same initial weights) succeed or fail together more often
    than independent runs, and resampling them singly would make the interval too narrow.

    Example:
        >>> pooled_rate([True, True, False, False], ["s0", "s0", "s1", "s1"]).value
        0.5
    """
    s = np.asarray(success, bool)
    keys = list(dict.fromkeys(clusters))
    if s.size == 0 or len(clusters) != s.size:
        raise ValueError(f"pooled_rate needs one cluster per run, got {len(clusters)} for {s.size} runs")
    index = {k: i for i, k in enumerate(keys)}
    of = np.array([index[c] for c in clusters])
    wins = np.bincount(of, weights=s, minlength=len(keys))
    runs = np.bincount(of, minlength=len(keys))
    draw = np.random.default_rng(seed).integers(0, len(keys), (resamples, len(keys)))
    boot = wins[draw].sum(axis=1) / runs[draw].sum(axis=1)
    return Estimate(float(s.mean()), *_percentiles(boot))


def ratio_bounds(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """Bounds on the ratio ``a / b`` of two positive estimates ``(value, lo, hi)`` from independent runs, when
    only their intervals are kept: ``[a.lo / b.hi, a.hi / b.lo]``, which holds the ratio whenever both intervals
    hold their values (at least 90% of the time for two 95% intervals, by the union bound).  Wider than a
    bootstrap of the ratio; use that where the runs are at hand (:func:`bootstrap_cost_ratio`).

    Example:
        >>> ratio_bounds((8.0, 6.0, 10.0), (2.0, 1.0, 3.0))
        Estimate(value=4.0, lo=2.0, hi=10.0)
    """
    (va, la, ha), (vb, lb, hb) = (tuple(float(v) for v in e) for e in (a, b))
    if min(la, lb) <= 0:
        raise ValueError(f"ratio_bounds needs positive intervals, got {tuple(a)} and {tuple(b)}")
    return Estimate(va / vb, la / hb, ha / lb)
