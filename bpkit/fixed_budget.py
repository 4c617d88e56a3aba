"""Fixed-budget comparison: where each method ends at the runs' budget, with intervals over seeds.

The other standard view beside fixed-target (the cost to reach a target, :mod:`bpkit.compare`;
COCO names the two): every run of a sweep has the same budget (its epochs, with the cu it
spent beside), and a method is judged by where it ends,

* the final training loss, the test loss and the test error (``1 - test accuracy``), each as a mean
  over seeds with a percentile bootstrap 95% interval (:func:`bpkit.stats.bootstrap_mean`);
* each method at one setting: the lowest mean validation loss (the training loss where the sweep
  kept no validation set) on the tuning seeds, every number from the other seeds.  Without tuning
  seeds it is chosen on the seeds it reports, which favours a setting that met lucky seeds.

A run that diverged ends with no finite loss: it is counted in the table's ``diverged`` column and
its measures are left out of the means (which then describe the runs that did not diverge).

Example:
    >>> from bpkit import fixed_budget
    >>> rows = fixed_budget.rows(runs, tune_seeds=range(5))    # doctest: +SKIP
    >>> print(fixed_budget.table(rows, problem).markdown())    # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import numpy as np

from bpkit import compare, stats
from bpkit.tables import Table, slug

# measure -> (column title, how to read it from a stored run)
MEASURES: dict[str, tuple[str, Any]] = {
    "train_loss": ("training loss", lambda r: r.get("train_loss")),
    "test_loss": ("test loss", lambda r: r.get("test_loss")),
    "test_error": ("test error", lambda r: None if r.get("test_acc") is None else 1.0 - r["test_acc"]),
    "train_bit_fails": ("training bit fails", lambda r: _bit_fails(r, 0)),
    "test_bit_fails": ("test bit fails", lambda r: _bit_fails(r, 2)),
}


def _bit_fails(run: dict[str, Any], split: int) -> float | None:
    """A run's final bit fails on one split (0 train, 2 test; ``curves["bit_fails"]``), None where not counted."""
    counts = run.get("curves", {}).get("bit_fails")
    return None if not counts or counts[split] < 0 else float(counts[split])


class Row(NamedTuple):
    """One (problem, method, activation) at its chosen setting."""

    problem: str
    method: str
    activation: str
    loss: str  # the runs' loss: the training and test losses of rows with different losses do not compare
    setting: tuple[tuple[str, Any], ...]
    budget: int  # settings it was chosen from
    edge: tuple[str, ...]  # tuned keys whose chosen value is the smallest or largest of the grid
    chosen_by: str  # the measure the setting was chosen on
    held_out: bool
    seeds: tuple[int, ...]  # the reported seeds
    run_ids: tuple[str, ...]  # their runs
    diverged: int  # reported runs without a finite final loss
    epochs: float  # mean epochs run
    cu: float  # mean cu spent
    measures: dict[str, stats.Estimate | None]  # None: the sweep did not measure it

    @property
    def setting_text(self) -> str:
        if not self.setting:
            return "-"
        return ", ".join(f"{k.split('.')[-1]} {v:g}" for k, v in self.setting) + (" (edge)" if self.edge else "")


def _values(runs: Sequence[dict[str, Any]], measure: str) -> list[float] | None:
    """The finite values of ``measure`` over ``runs``; None when no run measured it."""
    read = MEASURES[measure][1] if measure in MEASURES else (lambda r: r.get(measure))
    raw = [read(r) for r in runs]
    if all(v is None for v in raw):
        return None
    return [float(v) for v in raw if v is not None and math.isfinite(v)]


def _score(runs: Sequence[dict[str, Any]], measure: str) -> float:
    """Mean of ``measure`` over ``runs``; a diverged run makes the setting worst (inf)."""
    values = _values(runs, measure)
    if not values or len(values) < len(runs):
        return math.inf
    return float(np.mean(values))


def rows(runs: list[dict[str, Any]], *, tune_seeds: Collection[int] = (), seed: int = 0) -> list[Row]:
    """One :class:`Row` per (problem, method, activation) of ``runs``, at its setting chosen on
    ``tune_seeds`` (empty: on every seed), every number from the other seeds."""
    groups: dict[tuple[str, str, str], list[compare.Setting]] = {}
    for s in compare.settings(runs):
        groups.setdefault((s.problem, s.method, s.activation), []).append(s)
    tuning = frozenset(tune_seeds)
    out = []
    for (problem, method, act), group in groups.items():
        by = "val_loss" if any(r.get("val_loss") is not None for s in group for r in s.runs) else "train_loss"
        on = (lambda s: [r for r in s.runs if r["seed"] in tuning]) if tuning else (lambda s: s.runs)
        chosen = min(group, key=lambda s: _score(on(s), by))  # ties: the first in the grid's order
        reported = [r for r in chosen.runs if r["seed"] not in tuning] if tuning else chosen.runs
        if not reported:
            raise ValueError(f"{problem}, {method}: every seed is a tuning seed; none is left to report")
        measures = {}
        for m in MEASURES:
            values = _values(reported, m)
            measures[m] = None if values is None else (stats.bootstrap_mean(values, seed=seed) if values
                                                       else stats.Estimate(math.nan, math.nan, math.nan))
        finite = _values(reported, "train_loss") or []
        out.append(Row(problem, method, act, str(chosen.runs[0]["config"].get("loss")), chosen.setting, len(group),
                       compare.edge_keys(chosen.setting, (s.setting for s in group)), by, bool(tuning),
                       tuple(int(r["seed"]) for r in reported), tuple(r["run_id"] for r in reported),
                       len(reported) - len(finite),
                       float(np.mean([r["epochs"] or 0 for r in reported])),
                       float(np.mean([r["cu"] or 0.0 for r in reported])), measures))
    return out


def _estimate(e: stats.Estimate | None) -> str:
    if e is None:
        return "not measured"
    if math.isnan(e.value):
        return "-"
    return f"{e.value:.4g} [{e.lo:.4g}, {e.hi:.4g}]"


def table(rows_: Sequence[Row], problem: str) -> Table:
    """One problem's rows: each measure's mean [bootstrap 95%] at the chosen setting, with the compute."""
    mine = [r for r in rows_ if r.problem == problem]
    measured = [m for m in MEASURES if any(r.measures[m] is not None for r in mine)]
    columns = ["method", "activation", "loss", "setting", "runs", "diverged", *(MEASURES[m][0] for m in measured),
               "epochs (mean)", "cu (mean)"]
    body = [[r.method, r.activation, r.loss, r.setting_text, str(len(r.seeds)), str(r.diverged),
             *(_estimate(r.measures[m]) for m in measured), f"{r.epochs:.0f}", f"{r.cu:.4g}"] for r in mine]
    return Table(slug(problem, "fixed_budget"), columns, body)


INTRO = (
    "No run switched on a success criterion, so this is a **fixed-budget** comparison (COCO's other view): "
    "every run had its budget of epochs, and each method is judged by where it ended. Each number is a mean "
    "over seeds with a bootstrap 95% interval; an interval that overlaps another is no ranking. Training and "
    "test losses compare only between rows of one loss; the test error compares across all. Runs that "
    "diverged are counted, and left out of the means."
)


def markdown(rows_: Sequence[Row], tables: Sequence[Table], figures: Sequence[str] = ()) -> list[str]:
    """The report's sections for ``rows_``: how the settings were chosen, then per problem its table (and
    its figure, a file name in ``figures``, one per problem in order)."""
    first = rows_[0]
    if first.held_out:
        held = ("Each method's setting was chosen on the tuning seeds, by its mean "
                f"{first.chosen_by.replace('_', ' ')}, and every number below comes from the other seeds.")
    else:
        held = ("Each method's setting was chosen **on the same seeds** as every number below reports, by its "
                f"mean {first.chosen_by.replace('_', ' ')}: a setting that met lucky seeds is favoured. Name "
                "`compare.tune_seeds` in the config to hold seeds out.")
    md = [INTRO, "", held, ""]
    for i, (t, problem) in enumerate(zip(tables, dict.fromkeys(r.problem for r in rows_), strict=True)):
        md += [f"## {problem}", "", t.markdown(), ""]
        if i < len(figures):
            md += [f"![{problem}: median training loss and test errors]({figures[i]})", ""]
    return md
