"""Runtime distributions over a ladder of targets: a comparison that does not hinge on one goal.

COCO's view of an optimizer (Hansen et al., "COCO: performance assessment", 2016): the
*runtime* of a run to a target is the cost, in cu, at which it first reached it.  A ladder
of loss targets, spaced log-uniformly from where the runs start down to the problem's goal
(:func:`ladder`), and 40-20-40 where the problem has it, asks the question at every
difficulty at once.  For a method on a problem:

* the **average runtime** to a target, ``aRT = (cu of every run while the target was unmet) /
  (runs that met it)``, the expected cost with restarts at that target (:func:`art`);
* the **empirical distribution** of runtimes over runs and targets, the fraction of (run,
  target) pairs met within a budget ``b``, as ``b`` grows (:func:`ecdf`), aggregated over
  targets and problems as COCO does;
* across problems, the **performance profile** (Dolan & More 2002): the fraction of problems
  on which a method's cost is within a factor ``tau`` of the best method's (:func:`profile`).

Example:
    >>> ladder(0.25, 0.001, 3)
    (0.0158..., 0.0039..., 0.001)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from bpkit import compare, stats

CRITERION = "40-20-40"


def ladder(top: float, goal: float, n: int = 8) -> tuple[float, ...]:
    """``n`` loss targets spaced log-uniformly below ``top`` (excluded) down to ``goal`` (included)."""
    if not (top > goal > 0) or n < 1:
        raise ValueError(f"a ladder needs top > goal > 0 and n >= 1, got {top!r}, {goal!r}, {n!r}")
    return tuple(float(t) for t in np.geomspace(top, goal, n + 1)[1:])


def start_loss(runs: Sequence[dict[str, Any]]) -> float:
    """Where a problem's runs start: the median over runs of their first recorded loss (the store keeps
    no loss before the first epoch)."""
    first = [next((v for v in r["curves"].get("loss", []) if v is not None), None) for r in runs]
    found = [v for v in first if v is not None and math.isfinite(v)]
    if not found:
        raise ValueError("no run recorded a finite loss")
    return float(np.median(found))


class Runtimes(NamedTuple):
    """One method's runs on one problem, against every target of the ladder."""

    problem: str
    method: str
    activation: str
    targets: tuple[str, ...]  # "loss <= t", and "40-20-40"
    met: np.ndarray  # bool (runs, targets)
    spent: np.ndarray  # (runs, targets): cu at which the target was first met, else all the run spent


def runtimes(answer: compare.Answer, runs: dict[str, dict[str, Any]], losses: Sequence[float],
             criterion: bool | str | None = None) -> Runtimes:
    """The runtimes of ``answer``'s chosen runs (``runs``: run id -> stored run, with its curves) to each
    loss in ``losses`` and, with ``criterion``, to that output criterion (True: 40-20-40)."""
    chosen = [runs[i] for i in answer.chosen.run_ids]
    judged = [[compare.attempt(r, "goal", target=t) for t in losses] for r in chosen]
    crit = CRITERION if criterion is True else (criterion or None)
    if crit:
        judged = [row + [compare.attempt(r, crit)] for row, r in zip(judged, chosen, strict=True)]
    names = tuple(f"loss <= {t:.3g}" for t in losses) + ((crit,) if crit else ())
    return Runtimes(answer.problem, answer.method, answer.activation, names,
                    np.array([[a.success for a in row] for row in judged], bool).reshape(len(chosen), len(names)),
                    np.array([[a.cu for a in row] for row in judged], float).reshape(len(chosen), len(names)))


def art(rt: Runtimes, *, seed: int = 0) -> list[stats.Estimate]:
    """The average runtime to each target, with a bootstrap 95% interval over the runs (``inf`` where
    no run met it)."""
    return [stats.bootstrap_restart_cost(rt.spent[:, j], rt.met[:, j], seed=seed) for j in range(len(rt.targets))]


def ecdf(rts: Iterable[Runtimes], budgets: Sequence[float] | np.ndarray) -> np.ndarray:
    """The fraction of all (run, target) pairs of ``rts`` met within each budget (cu), in order."""
    met = np.concatenate([np.where(rt.met, rt.spent, np.inf).ravel() for rt in rts])
    if met.size == 0:
        raise ValueError("no runtimes to distribute")
    b = np.asarray(budgets, float)
    return (met[None, :] <= b[:, None]).mean(axis=1)


def profile(costs: dict[str, dict[str, float]], taus: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
    """The performance profile: ``costs[problem][method]`` (inf: never succeeded) -> per method, the
    fraction of problems where its cost is within ``tau`` times the best method's there, for each
    ``tau``.  A problem where no method succeeded counts against every method.

    Example:
        >>> profile({"p": {"a": 10.0, "b": 20.0}, "q": {"a": 30.0, "b": 15.0}}, [1, 2])["a"]
        array([0.5, 1. ])
    """
    methods = list(dict.fromkeys(m for row in costs.values() for m in row))
    t = np.asarray(taus, float)
    hits = {m: np.zeros(len(t)) for m in methods}
    for row in costs.values():
        best = min(row.values(), default=math.inf)
        if not math.isfinite(best):
            continue
        for m in methods:
            ratio = row.get(m, math.inf) / best
            hits[m] += ratio <= t
    return {m: v / len(costs) for m, v in hits.items()}


def problem_runtimes(answers: Sequence[compare.Answer], runs: dict[str, dict[str, Any]],
                     n: int = 8) -> list[Runtimes]:
    """Every answer's runtimes on one problem's ladder: ``n`` loss targets from where the chosen runs
    start down to the problem's tightest loss goal (or three decades below the start where no run had
    a goal), and 40-20-40 where a run had it on.  ``answers``: one per (method, activation) of the
    problem; ``runs``: run id -> stored run with its curves."""
    chosen = [runs[i] for a in answers for i in a.chosen.run_ids]
    goals = [r["config"]["training.goal"] for r in chosen if r["config"].get("training.goal", -1) >= 0]
    top = start_loss(chosen)
    bottom = min(goals) if goals else top / 1000
    losses = ladder(top, bottom, n) if top > bottom else (bottom,)
    criterion = next((c for r in chosen if (c := compare.output_criterion(r["config"])) is not None), None)
    return [runtimes(a, runs, losses, criterion) for a in answers]


def budgets(rts: Iterable[Runtimes], n: int = 200) -> np.ndarray:
    """``n`` budgets spaced log-uniformly over every runtime of ``rts`` (the ECDF's x axis)."""
    spent = np.concatenate([rt.spent[rt.met] for rt in rts])
    spent = spent[spent > 0]
    if spent.size == 0:
        return np.array([1.0])
    return np.geomspace(spent.min() / 1.5, spent.max() * 1.5, n)
