"""Reports from a results store that lead with the answer: tuned, per criterion, with intervals.

``report.md`` opens, for each problem and each success criterion its runs
switched on (the loss goal, 40-20-40), with a pivot table of methods x
activations: the success rate with its Wilson 95% interval, and the expected
cost in cu of a success with restarts (failed runs count their full cost;
bootstrap 95% interval over seeds), each method at the setting tuned for that
criterion (:mod:`bpkit.compare`).  Then the chosen settings and tuning
budgets, each method's cost relative to the cheapest (paired by seed where
the runs share initial weights), a success heatmap, a cost figure with
intervals and learning curves.  Every table is also written as CSV
(``tables/``), every figure as PNG and SVG.  The flat table of every cell
(every setting) is the appendix.  ``--compare B.sqlite`` adds tables that put
a second store's answers beside the first's.

Example:
    python3 -m bpkit report results/flagship.sqlite      # writes results/flagship-report/
"""

from __future__ import annotations

import collections
import csv
import io
import math
import re
import statistics
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from bpkit import compare, figures, stats
from bpkit.figures import pyplot, save_figure  # noqa: F401  (the studies save through these)
from bpkit.store import Store


class Table(NamedTuple):
    """A table as data: rendered once to markdown and once to CSV, from the same rows."""

    slug: str  # the CSV's file name, tables/<slug>.csv
    columns: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
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


def _slug(*parts: str) -> str:
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
    return Table(_slug(problem, crit, "answer"), ["method"] + acts, rows)


def settings_table(answers: Sequence[compare.Answer], problem: str, crit: str) -> Table:
    """Methods x activations: the chosen setting (of how many), ``(edge)`` where it is a grid's end."""
    _, methods, acts = figures.axes_of(answers)
    grid = {(a.method, a.activation): a for a in answers if a.criterion == crit}
    rows = [[m] + [("" if (m, act) not in grid else
                    (grid[m, act].setting_text if grid[m, act].tuned else "none succeeded")
                    + f" (of {grid[m, act].budget})") for act in acts] for m in methods]
    return Table(_slug(problem, crit, "settings"), ["method"] + acts, rows)


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
    return Table(_slug(problem, crit, "ratio"), ["method"] + acts, rows)


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
    pick = lambda xs: {(x.method, x.activation): x for x in xs if x.problem == problem and x.criterion == crit}  # noqa: E731
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
    return Table(_slug(problem, crit, "compare"), ["method", "activation", f"success {na}", f"success {nb}",
                                                   f"cu {na}", f"cu {nb}", f"cu {na} / {nb}"], rows)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (through a temporary file and a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def load_runs(store_path: str | Path, each: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
              ids: Container[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """A store's readable runs and a warning per unreadable row (``each``, ``ids``: as :meth:`Store.runs`).

    Raises:
        ValueError: no such store, or it holds no readable run.
    """
    store = Store(store_path, create=False)
    try:
        # In the grid's order, as the sweep recorded it: it writes them group by group, and one compiled
        # group can hold configs apart in the grid (CG variants). Runs of no recorded grid follow as written.
        runs, errors = store.runs(order="written", each=each, ids=ids)
        position = store.grid_order()
    finally:
        store.close()
    if not runs:
        raise ValueError(f"{store_path}: the store holds no readable runs")
    runs.sort(key=lambda r: position.get(r["run_id"], len(position)))  # stable
    return runs, errors


def _loss_curve_only(run: dict[str, Any]) -> dict[str, Any]:
    return {**run, "curves": {"loss": run["curves"].get("loss", [])}}


INTRO = (
    "Each method runs at the setting tuned for each criterion (lowest expected cost with restarts among "
    "its settings; the settings table names it and how many it was chosen from). **Success**: runs that met "
    "the criterion at some epoch, with the Wilson 95% interval. **Cost**: the expected cu (Moeller's units: a "
    "loss evaluation 1, a gradient 3) to a first success when failed runs are restarted, i.e. the cu of all "
    "runs over the successes (failed runs count their full cost), with a bootstrap 95% interval over seeds. "
    "Ratios divide by the cheapest method in the same column, resampled paired by seed where both started "
    "from the same weights. An interval that overlaps another is no ranking."
)


def write(store_path: str | Path, out_dir: str | Path | None = None,
          compare_with: str | Path | None = None) -> tuple[Path, list[Path], list[str]]:
    """Write ``report.md``, its figures and a CSV per table; returns the report path, figures and warnings."""
    store_path = Path(store_path)
    # Curves cut to what the answers read (compare.slim); only the chosen settings' runs are read again, for
    # their loss curves: every curve of a large store in memory at once would take gigabytes.
    runs, errors = load_runs(store_path, each=compare.slim)
    beside = None
    if compare_with is not None:
        other = Path(compare_with)
        beside = (compare.answers(load_runs(other, each=compare.slim)[0]), (store_path.stem, other.stem), other.name)
    out = Path(out_dir) if out_dir else store_path.with_name(store_path.stem + "-report")
    out.mkdir(parents=True, exist_ok=True)  # an output path that cannot be a folder is refused first
    answers = compare.answers(runs)
    if not answers:
        raise ValueError(f"{store_path}: no run switched on a success criterion (training.goal or "
                         f"training.criterion_40_20_40), so there is nothing to compare")
    chosen = {i for a in answers for i in a.chosen.run_ids}
    curves = {r["run_id"]: r for r in load_runs(store_path, each=_loss_curve_only, ids=chosen)[0]}
    md = [f"# Report: {store_path.name}", "", f"{len(runs)} runs. {INTRO}", ""]
    md += _censored_note(runs) + _resolution_note(runs)
    tables: list[Table] = []
    figs: list[Path] = []
    for problem in dict.fromkeys(a.problem for a in answers):
        lines, ts, fs = _problem_section(answers, problem, out, curves, beside)
        md, tables, figs = md + lines, tables + ts, figs + fs
    lines, ts = _closing_sections(answers, runs, errors)
    for t in tables + ts:
        write_text(out / "tables" / f"{t.slug}.csv", t.csv())
    write_text(out / "tables" / "answers.csv", answers_csv(answers))
    path = out / "report.md"
    write_text(path, "\n".join(md + lines))
    return path, figs, errors


def _problem_section(answers: Sequence[compare.Answer], problem: str, out: Path, curves: dict[str, Any],
                     beside: tuple | None) -> tuple[list[str], list[Table], list[Path]]:
    """One problem's section: per criterion its tables, then its figures.  ``beside``: a second store's
    ``(answers, (name, other name), file name)`` to put beside this one's."""
    mine = [a for a in answers if a.problem == problem]
    md, tables = [f"## {problem}", ""], list[Table]()
    for crit in dict.fromkeys(a.criterion for a in mine):
        lines, ts = _criterion_section(answers, mine, problem, crit, beside)
        md, tables = md + lines, tables + ts
    stem = _slug(problem)
    figs = figures.success_heatmap(mine, problem, out / f"{stem}_success")
    figs += figures.cost_figure(mine, problem, out / f"{stem}_cost")
    figs += figures.learning_curves(mine, _chosen_runs(curves, mine), problem, out / f"{stem}_curves")
    md += [f"![success, {problem}]({stem}_success.png)", "", f"![cost, {problem}]({stem}_cost.png)", "",
           "Cost markers: the estimate with its bootstrap 95% interval; an arrow, an interval open upwards "
           "(too few successes to bound it); x on the top edge, no run succeeded.", "",
           f"![learning curves, {problem}]({stem}_curves.png)", ""]
    return md, tables, figs


def _criterion_section(answers: Sequence[compare.Answer], mine: list[compare.Answer], problem: str, crit: str,
                       beside: tuple | None) -> tuple[list[str], list[Table]]:
    answer, settings = answer_table(mine, problem, crit), settings_table(mine, problem, crit)
    md = [f"### {problem}: success and cost by {crit}", "",
          "Success % [95% interval], and below it the expected cu to a success with restarts [95% interval].",
          "", answer.markdown(), "", "Settings chosen for this criterion:", "", settings.markdown(), ""]
    tables = [answer, settings]
    ratio = ratio_table(mine, problem, crit)
    if ratio is not None:
        md += ["Expected cost over the cheapest method's:", "", ratio.markdown(), ""]
        tables.append(ratio)
    if beside is not None:
        other_answers, names, file_name = beside
        ct = comparison_table(answers, other_answers, problem, crit, names)
        if ct is not None:
            md += [f"Beside {file_name}:", "", ct.markdown(), ""]
            tables.append(ct)
    return md, tables


def _closing_sections(answers: Sequence[compare.Answer], runs: list[dict[str, Any]],
                      errors: list[str]) -> tuple[list[str], list[Table]]:
    """The tuning budgets, the appendix of every cell and the unreadable rows."""
    budget = compare.budgets(answers)
    md = ["## Tuning budgets", "", "Settings each method was tuned over: "
          + ", ".join(f"{m} {n}" for m, n in budget.items())
          + ("." if len(set(budget.values())) == 1 else
             ". The budgets differ: a method with more settings is favoured by choosing its best on the same seeds."),
          ""]
    appendix = appendix_table(runs)
    md += ["## Appendix: every cell", "", "Every setting, untuned; median epochs and cu over the runs that met "
           "the criterion; losses and accuracies as mean ± sd over seeds.", "", appendix.markdown(), ""]
    if errors:
        md += ["Unreadable rows:", ""] + [f"- {e}" for e in errors]
    return md, [appendix]


def answers_csv(answers: Sequence[compare.Answer]) -> str:
    """Every answer in long form, one row per (problem, criterion, method, activation), numbers unrounded."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["problem", "criterion", "method", "activation", "setting", "tuned", "budget", "edge", "successes",
                "runs", "success_lo", "success_hi", "cu", "cu_lo", "cu_hi", "epochs", "epochs_lo", "epochs_hi",
                "success_epochs_mean", "success_epochs_median"])
    for a in answers:
        won = [t.epochs for t in a.chosen.attempts if t.success]  # the published convention: successes only
        w.writerow([a.problem, a.criterion, a.method, a.activation, a.setting_text, a.tuned, a.budget,
                    " ".join(a.edge), a.success, a.runs, *a.success_ci, *a.cost_cu, *a.cost_epochs,
                    statistics.fmean(won) if won else "", statistics.median(won) if won else ""])
    return buf.getvalue()


def _chosen_runs(by_id: dict[str, dict[str, Any]], answers: Sequence[compare.Answer]) -> dict[tuple[str, str], list]:
    """The stored runs (``by_id``: run id -> run) of each (method, activation)'s setting chosen for its
    first criterion."""
    out: dict[tuple[str, str], list] = {}
    for a in answers:
        out.setdefault((a.method, a.activation), [by_id[i] for i in a.chosen.run_ids])
    return out


def _measured(config: dict[str, Any]) -> str:
    """How often a run's criteria were judged: "every epoch", "every k epochs" or "m times an epoch"."""
    m, k = config.get("training.measures_per_epoch", 1), config.get("training.measure_every", 1)
    if m > 1:
        return f"{m} times an epoch"
    if k > 1 and config.get("training.batch_size") != "full":  # a full batch is measured every epoch
        return f"every {k} epochs"
    return "every epoch"


def _resolution_note(runs: list[dict[str, Any]]) -> list[str]:
    counts = collections.Counter(_measured(r["config"]) for r in runs if compare.criteria(r["config"]))
    if len(counts) < 2:
        return []
    return ["> **Measured unequally:** these runs' criteria were judged "
            + ", ".join(f"{how} ({n} runs)" for how, n in counts.items())
            + ". A run judged more often has more chances to catch a fluctuating loss below the goal, and the "
            "measurements themselves are not in the cost: compare methods measured alike.", ""]


def _censored_note(runs: list[dict[str, Any]]) -> list[str]:
    both = [r for r in runs if len(compare.criteria(r["config"])) == 2]
    first = [r for r in both if r["config"].get("training.stop_on", "first") == "first"]
    if not first:
        return []
    return [f"> **Censored:** {len(first)} of these runs had both criteria on but stopped at the first one met "
            "(`training.stop_on = \"first\"`), so the other criterion's success and cost are understated for "
            "them. Run with `training.stop_on = \"all\"` to answer both.", ""]
