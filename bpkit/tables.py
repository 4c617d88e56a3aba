"""Tables as data: each rendered once to markdown and once to CSV, from the same rows.

The report's tables (:mod:`bpkit.report`) and the studies' (``experiments/``) are all
:class:`Table` rows: per problem and criterion the answer (success with its interval, the
expected cost with restarts), the settings chosen, each method's cost over the cheapest, the
three costs side by side, the paired tests, and the appendix of every cell.

Example:
    >>> print(Table("t", ["method", "cost"], [["SCG", "12"]]).markdown())
    | method | cost |
    |---|---|
    | SCG | 12 |
"""

from __future__ import annotations

import collections
import csv
import io
import math
import re
import statistics
from collections.abc import Sequence
from typing import Any, NamedTuple

from bpkit import compare, figures, stats


class Table(NamedTuple):
    """A table as data: rendered once to markdown and once to CSV, from the same rows."""

    slug: str  # the CSV's file name, tables/<slug>.csv
    columns: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        esc = lambda v: str(v).replace("|", "\\|")
        lines = ["| " + " | ".join(map(esc, self.columns)) + " |", "|" + "---|" * len(self.columns)]
        return "\n".join(lines + ["| " + " | ".join(map(esc, r)) + " |" for r in self.rows])

    def csv(self) -> str:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(self.columns)
        w.writerows([[v.replace("<br>", " ") for v in map(str, r)] for r in self.rows])
        return buf.getvalue()


def _pct(a: compare.Answer) -> str:
    lo, hi = a.success_ci
    return f"{100 * a.success / a.runs:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(parts)).strip("_.") or "table"


def answer_table(answers: Sequence[compare.Answer], problem: str, crit: str) -> Table:
    """Methods x activations: success % [Wilson 95%] and expected cu per success with restarts [bootstrap 95%]
    (``-`` where no run succeeded)."""
    _, methods, acts = figures.axes_of(answers)
    grid = {(a.method, a.activation): a for a in answers if a.criterion == crit}
    rows = []
    for m in methods:
        row = [m]
        for act in acts:
            a = grid.get((m, act))
            row.append("" if a is None else f"{_pct(a)}<br>{compare.fmt_cost(a.cost_cu)}")
        rows.append(row)
    return Table(slug(problem, crit, "answer"), ["method"] + acts, rows)


def settings_table(answers: Sequence[compare.Answer], problem: str, crit: str) -> Table:
    """Methods x activations: the chosen setting (of how many), ``(edge)`` where it is a grid's end."""
    _, methods, acts = figures.axes_of(answers)
    grid = {(a.method, a.activation): a for a in answers if a.criterion == crit}
    rows = [[m] + [("" if (m, act) not in grid else
                    (grid[m, act].setting_text if grid[m, act].tuned else "none succeeded")
                    + f" (of {grid[m, act].budget})") for act in acts] for m in methods]
    return Table(slug(problem, crit, "settings"), ["method"] + acts, rows)


def ratio_table(answers: Sequence[compare.Answer], problem: str, crit: str) -> Table | None:
    """Methods x activations: expected cost over the cheapest method's there, with a bootstrap 95% interval."""
    _, methods, acts = figures.axes_of(answers)
    mine = [a for a in answers if a.problem == problem and a.criterion == crit]  # resample this table's only
    ratios = {k[2]: v for k, v in compare.ratios(mine).items()}
    if not ratios or len(methods) < 2:
        return None
    rows = []
    for m in methods:
        row = [m]
        for act in acts:
            r = next((x for x in ratios.get(act, []) if x.method == m), None)
            if r is None:
                row.append("")
            elif r.method == r.versus:
                row.append("1 (cheapest)")
            else:
                row.append(f"{_ratio(r.ratio)}{'' if r.paired else ' (unpaired)'}")
        rows.append(row)
    return Table(slug(problem, crit, "ratio"), ["method"] + acts, rows)


def _ratio(e: stats.Estimate) -> str:
    if math.isnan(e.value):
        return "-"
    if math.isinf(e.value):
        return "inf (never succeeded)"
    return f"{compare.short(e.value)} [{compare.short(e.lo)}, {compare.short(e.hi)}]"


def appendix_table(runs: list[dict[str, Any]]) -> Table:
    """Every cell (config over its seeds, every setting): per criterion successes, median epochs
    and cu of the successful runs, expected cu with restarts; final train loss and test accuracy."""
    rows, by_id = [], {r["run_id"]: r for r in runs}
    for c in _grouped(compare.cells(runs)):
        first = c[0]
        row = [first.problem, first.method, first.activation,
               ", ".join(f"{k.split('.')[-1]} {v:g}" for k, v in first.setting) or "-", str(first.runs)]
        for crit in compare.CRITERIA:
            cell = next((x for x in c if x.criterion == crit), None)
            if cell is None:
                row += ["", "", ""]
                continue
            ok = [a for a in cell.attempts if a.success]
            row += [f"{cell.successes}/{cell.runs}",
                    f"{statistics.median(a.epochs for a in ok):.0f} / {statistics.median(a.cu for a in ok):.3g}"
                    if ok else "-",
                    f"{cell.restart_cu:.3g}" if math.isfinite(cell.restart_cu) else "-"]
        members = [by_id[i] for i in first.run_ids]
        row += [_mean_sd([r["train_loss"] for r in members]), _mean_sd([r["test_acc"] for r in members])]
        rows.append(row)
    cols = ["problem", "method", "activation", "setting", "runs"]
    for crit in compare.CRITERIA:
        cols += [f"{crit}: met", f"{crit}: median epochs / cu (met)", f"{crit}: cu with restarts"]
    return Table("appendix_cells", cols + ["final train loss", "test acc"], rows)


def _key(c: compare.Cell) -> tuple:
    return (c.problem, c.method, c.activation, c.setting)


def _grouped(cells_: list[compare.Cell]) -> list[list[compare.Cell]]:
    """Cells of one (problem, method, activation, setting) together: one list per criterion set."""
    out: dict[tuple, list[compare.Cell]] = {}
    for c in cells_:
        out.setdefault(_key(c), []).append(c)
    return list(out.values())


def _mean_sd(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "-"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.3g} ± {sd:.2g}"


def comparison_table(a: Sequence[compare.Answer], b: Sequence[compare.Answer], problem: str, crit: str,
                     names: tuple[str, str]) -> Table | None:
    """One row per method and activation in both stores: success and expected cu in each, and A's
    cost over B's (unpaired bootstrap 95%: the stores' runs are independent)."""
    pick = lambda xs: {(x.method, x.activation): x for x in xs if x.problem == problem and x.criterion == crit}
    ga, gb = pick(a), pick(b)
    keys = [k for k in ga if k in gb]
    if not keys:
        return None
    rows = []
    for k in keys:
        x, y = ga[k].chosen, gb[k].chosen
        r = stats.bootstrap_cost_ratio([t.cu for t in x.attempts], [t.success for t in x.attempts],
                                       [t.cu for t in y.attempts], [t.success for t in y.attempts], paired=False)
        rows.append([k[0], k[1], _pct(ga[k]), _pct(gb[k]), compare.fmt_cost(ga[k].cost_cu),
                     compare.fmt_cost(gb[k].cost_cu), _ratio(r)])
    na, nb = names
    return Table(slug(problem, crit, "compare"), ["method", "activation", f"success {na}", f"success {nb}",
                                                   f"cu {na}", f"cu {nb}", f"cu {na} / {nb}"], rows)


ANSWER_FIELDS = ("problem", "criterion", "method", "activation", "setting", "tuned", "budget", "edge", "successes",
                 "runs", "success_lo", "success_hi", "cu", "cu_lo", "cu_hi", "epochs", "epochs_lo", "epochs_hi",
                 "success_epochs_mean", "success_epochs_median")


def answers_csv(answers: Sequence[compare.Answer], parts: Sequence[tuple[str, Sequence[compare.Answer]]] = ()) -> str:
    """Every answer in long form, one row per (problem, criterion, method, activation), numbers unrounded.
    With ``parts`` instead, ``(name, answers)`` pairs (each half of the held-out seeds), every part's rows
    under a first column ``half`` holding its name."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow((("half",) if parts else ()) + ANSWER_FIELDS)
    for name, mine in parts or [("", answers)]:
        for a in mine:
            won = [t.epochs for t in a.chosen.attempts if t.success]  # the published convention: successes only
            w.writerow(([name] if parts else []) + [
                a.problem, a.criterion, a.method, a.activation, a.setting_text, a.tuned, a.budget, " ".join(a.edge),
                a.success, a.runs, *a.success_ci, *a.cost_cu, *a.cost_epochs,
                statistics.fmean(won) if won else "", statistics.median(won) if won else ""])
    return buf.getvalue()


def _pivot(answers: Sequence[compare.Answer], problem: str, crit: str, cell: Any, name: str) -> Table:
    """Methods x activations of one problem and criterion, each cell ``cell(answer)`` (empty where none)."""
    _, methods, acts = figures.axes_of(answers)
    grid = {(a.method, a.activation): a for a in answers if a.criterion == crit}
    rows = [[m] + ["" if (m, act) not in grid else cell(grid[m, act]) for act in acts] for m in methods]
    return Table(slug(problem, crit, name), ["method"] + acts, rows)


def _three(a: compare.Answer) -> str:
    at = compare.short(a.cutoff.cost)
    if math.isfinite(a.cutoff.cost):
        at += f" at {compare.short(a.cutoff.cutoff)}"
    mean = compare.short(a.mean_success_cu) if math.isfinite(a.mean_success_cu) else "-"
    return f"{compare.short(a.cost_cu.value)}<br>{at}<br>{mean} ({a.runs - a.success} failed)"


def three_costs_table(answers: Sequence[compare.Answer], problem: str, crit: str) -> Table:
    """Methods x activations: the expected cu with restarts at the runs' budget (what the answer table
    ranks by); at the best cutoff, with that cutoff; and the mean cu of the successful runs alone, with
    the failures it leaves out (as the papers report)."""
    return _pivot(answers, problem, crit, _three, "three_costs")


def _paired(test: compare.Paired | None) -> str:
    if test is None or test.method == test.versus:
        return "most successful" if test is not None else ""
    if test.test is None:
        return "not run from the same starts"
    t = test.test
    return f"{t.only_a} vs {t.only_b}, p = {t.p:.2g}"


def paired_table(answers: Sequence[compare.Answer], problem: str, crit: str) -> Table:
    """Methods x activations: the runs only this method solved vs only the most successful method solved,
    from the same starts, and McNemar's exact p-value."""
    mine = [a for a in answers if a.problem == problem and a.criterion == crit]
    tests = {(crit_act[2], p.method): p for crit_act, rows in compare.paired_success(mine).items() for p in rows}
    return _pivot(mine, problem, crit, lambda a: _paired(tests.get((a.activation, a.method))), "paired")


def failures_table(answers: Sequence[compare.Answer], runs: list[dict[str, Any]]) -> Table:
    """Per method: the budgets its runs had, and what ended its failed runs (over every problem,
    criterion and activation), so that a reader sees how each method's failures were detected."""
    limits: dict[str, set[str]] = {}
    names = compare.names(runs)
    for r in runs:
        c = r["config"]
        cu = c.get("training.max_cu", -1)
        text = f"{c.get('training.max_epochs')} epochs" + (f", {cu:g} cu" if cu is not None and cu > 0 else "")
        limits.setdefault(names[r["run_id"]][1], set()).add(text)
    ended: dict[str, collections.Counter] = {}
    for a in answers:
        ended.setdefault(a.method, collections.Counter()).update(dict(a.failures))
    rows = [[m, "; ".join(sorted(limits.get(m, ()))) or "-",
             ", ".join(f"{why} {n}" for why, n in ended[m].most_common()) or "none failed"] for m in ended]
    return Table("failures", ["method", "budget", "failed runs ended by"], rows)


def art_rows(rts: Sequence[Any], *, seed: int = 0) -> list[list[str]]:
    """One row per (problem, method, activation, target): runs that met it, and its average runtime
    (cu) with a bootstrap 95% interval; for :func:`bpkit.runtime.art`'s CSV."""
    from bpkit import runtime

    out = []
    for rt in rts:
        for target, est, met in zip(rt.targets, runtime.art(rt, seed=seed), rt.met.sum(axis=0), strict=True):
            out.append([rt.problem, rt.method, rt.activation, target, f"{int(met)}/{len(rt.met)}",
                        repr(est.value), repr(est.lo), repr(est.hi)])
    return out
