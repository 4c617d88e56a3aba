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
from collections.abc import Callable, Collection, Container, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bpkit import compare, figures, fixed_budget, runtime
from bpkit.figures import pyplot, save_figure  # noqa: F401  (the studies save through these)
from bpkit.store import Store
from bpkit.tables import (
    Table,
    answer_table,
    answers_csv,
    appendix_table,
    art_rows,
    comparison_table,
    failures_table,
    paired_table,
    ratio_table,
    settings_table,
    slug,
    three_costs_table,
)


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
    store = Store(store_path, readonly=True)
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


def _judged_curves(run: dict[str, Any]) -> dict[str, Any]:
    """``run`` with the curves a criterion or a target is judged on, whole (not cut as :func:`compare.slim` cuts)."""
    keep = (*compare.ATTEMPT_CURVES, "within")
    return {**run, "curves": {k: v for k, v in run["curves"].items() if k in keep}}


INTRO = (
    "Each method runs at the setting tuned for each criterion (lowest expected cost with restarts among "
    "its settings; the settings table names it and how many it was chosen from). **Success**: runs that met "
    "the criterion at some epoch, with the Wilson 95% interval. **Cost**: the expected cu (Moeller's units: a "
    "loss evaluation 1, a gradient 3) to a first success when failed runs are restarted, i.e. the cu of all "
    "runs over the successes (failed runs count their full cost), with a bootstrap 95% interval over seeds. "
    "Ratios divide by the cheapest method in the same column, resampled paired by seed where both started "
    "from the same weights. An interval that overlaps another is no ranking."
)


class _Report(NamedTuple):
    """What the sections of one report read."""

    answers: list[compare.Answer]
    cells: list[compare.Cell]
    curves: dict[str, dict[str, Any]]  # run id -> a chosen run with its judged curves
    out: Path
    beside: tuple | None  # a second store's (answers, (name, other name), file name)


def write(store_path: str | Path, out_dir: str | Path | None = None, compare_with: str | Path | None = None,
          tune_seeds: Collection[int] | None = None) -> tuple[Path, list[Path], list[str]]:
    """Write ``report.md``, its figures and a CSV per table; returns the report path, figures and warnings.

    ``tune_seeds``: the seeds each method's setting is chosen on, every number then reported on the
    others (see :func:`bpkit.compare.tune`); None: as the sweep's config said (``compare.tune_seeds``).
    """
    store_path = Path(store_path)
    # Curves cut to what the answers read (compare.slim); only the chosen settings' runs are read again
    # whole: every curve of a large store in memory at once would take gigabytes.
    runs, errors = load_runs(store_path, each=compare.slim)
    tune = stored_tune_seeds(store_path) if tune_seeds is None else tuple(tune_seeds)
    beside = None
    if compare_with is not None:
        other = Path(compare_with)
        beside = (compare.answers(load_runs(other, each=compare.slim)[0], tune_seeds=tune),
                  (store_path.stem, other.stem), other.name)
    out = Path(out_dir) if out_dir else store_path.with_name(store_path.stem + "-report")
    out.mkdir(parents=True, exist_ok=True)  # an output path that cannot be a folder is refused first
    cells = compare.cells(runs)
    answers = compare.tune(cells, tune_seeds=tune)
    if not answers:
        path, made = _fixed_budget(store_path, runs, out, tune)
        return path, made, errors
    chosen = {i for a in answers for i in a.chosen.run_ids}
    curves = {r["run_id"]: r for r in load_runs(store_path, each=_judged_curves, ids=chosen)[0]}
    rep = _Report(answers, cells, curves, out, beside)
    md = [f"# Report: {store_path.name}", "", f"{len(runs)} runs. {INTRO}", ""]
    md += _censored_note(runs) + _resolution_note(runs)
    lines, tables = _method_section(answers, runs, tune)
    figs: list[Path] = []
    runtimes: list = []
    for problem in dict.fromkeys(a.problem for a in answers):
        ls, ts, fs, rts = _problem_section(rep, problem)
        lines, tables, figs, runtimes = lines + ls, tables + ts, figs + fs, runtimes + rts
    ls, ts, fs = _across_section(rep, runtimes)
    closing, appendix = _closing_sections(answers, runs, errors)
    for t in tables + ts + appendix:
        write_text(out / "tables" / f"{t.slug}.csv", t.csv())
    write_text(out / "tables" / "answers.csv", answers_csv(answers))
    path = out / "report.md"
    write_text(path, "\n".join(md + lines + ls + closing))
    return path, figs + fs, errors


def _fixed_budget(store_path: Path, runs: list[dict[str, Any]], out: Path,
                  tune: tuple[int, ...]) -> tuple[Path, list[Path]]:
    """The report of a sweep without a success criterion: where each method ended at its budget, a table
    and a figure (training-loss curves, test errors) per problem."""
    rows = fixed_budget.rows(runs, tune_seeds=tune)
    problems = list(dict.fromkeys(r.problem for r in rows))
    tables = [fixed_budget.table(rows, p) for p in problems]
    for t in tables:
        write_text(out / "tables" / f"{t.slug}.csv", t.csv())
    whole = {r["run_id"]: r for r in load_runs(store_path, ids={i for r in rows for i in r.run_ids})[0]}
    figs: list[Path] = []
    for p in problems:
        mine = [r for r in rows if r.problem == p]
        labels = [f"{r.method}, {r.activation}" if len({x.activation for x in mine}) > 1 else r.method for r in mine]
        curves = [[whole[i]["curves"].get("loss", []) for i in r.run_ids] for r in mine]
        errors = [[1 - whole[i]["test_acc"] for i in r.run_ids if whole[i]["test_acc"] is not None] for r in mine]
        figs += figures.fixed_budget_figure(labels, curves, errors, p, out / f"{slug(p)}_fixed_budget")
    path = out / "report.md"
    md = fixed_budget.markdown(rows, tables, [f"{slug(p)}_fixed_budget.png" for p in problems])
    write_text(path, "\n".join([f"# Report: {store_path.name}", "", f"{len(runs)} runs.", "", *md]))
    return path, figs


def stored_tune_seeds(store_path: str | Path) -> tuple[int, ...]:
    """The tuning seeds the sweep's config named (``compare.tune_seeds``), as its store recorded them."""
    with Store(store_path, readonly=True) as store:
        return tuple(store.compare_settings().get("tune_seeds", ()))


def _method_section(answers: list[compare.Answer], runs: list[dict[str, Any]],
                    tune: tuple[int, ...]) -> tuple[list[str], list[Table]]:
    """How the comparison was made: which seeds chose and which report, what ranks, what ends a failure."""
    seeds = sorted({s for a in answers for s in a.chosen.seeds})
    if tune:
        held = (f"Each method's setting was chosen on seeds {_seeds(tune)} and **every number below comes from "
                f"the other seeds**, {_seeds(seeds)}: a setting cannot win by meeting lucky seeds.")
    else:
        held = ("Each method's setting was chosen **on the same seeds** as every number below reports "
                f"({_seeds(seeds)}): a setting that met lucky seeds is favoured, the more so the more settings "
                "a method was given. Name `compare.tune_seeds` in the config to hold seeds out.")
    failures = failures_table(answers, runs)
    md = ["## How this comparison was made", "", held, "",
          "The answer tables rank by the expected cost with restarts at the runs' budget. Beside it, the "
          "three-costs tables give the expected cost with restarts at the best cutoff (Luby et al. 1993: "
          "each run cut at t and restarted, `E[min(T, t)] / P(T <= t)`, minimised over t: it does not "
          "depend on the budget) and the mean cost of the successful runs alone, as the papers report "
          "it, with the failures it leaves out.", "",
          "What ended each method's failed runs, and the budget its runs had (a method that stops itself, "
          "as a failed line search does, spends less on a failure than one that runs out its budget):", "",
          failures.markdown(), ""]
    return md, [failures]


def _seeds(seeds: Collection[int]) -> str:
    s = sorted(seeds)
    if s and s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"{s[0]}-{s[-1]}"
    return ", ".join(map(str, s))


def _problem_section(rep: _Report, problem: str) -> tuple[list[str], list[Table], list[Path], list]:
    """One problem's section: per criterion its tables, then its figures; and its runtimes."""
    mine = [a for a in rep.answers if a.problem == problem]
    md, tables = [f"## {problem}", ""], list[Table]()
    for crit in dict.fromkeys(a.criterion for a in mine):
        lines, ts = _criterion_section(rep, mine, problem, crit)
        md, tables = md + lines, tables + ts
    stem = slug(problem)
    first = [a for a in mine if a.criterion == mine[0].criterion]
    rts = runtime.problem_runtimes(first, rep.curves)
    figs = figures.success_heatmap(mine, problem, rep.out / f"{stem}_success")
    figs += figures.cost_figure(mine, problem, rep.out / f"{stem}_cost")
    figs += figures.learning_curves(mine, _chosen_runs(rep.curves, mine), problem, rep.out / f"{stem}_curves")
    figs += figures.ecdf_figure(_ecdf_panels(rts), f"{problem}: runtimes to {len(rts[0].targets)} targets",
                                rep.out / f"{stem}_ecdf")
    points, keys = compare.sensitivity(rep.cells, problem, mine[0].criterion)
    if points:
        chosen = {(a.method, a.activation): float(a.chosen.setting[0][1]) for a in first if a.chosen.setting}
        figs += figures.sensitivity_figure(points, keys, f"{problem}: every setting, by {mine[0].criterion}",
                                           rep.out / f"{stem}_sensitivity", chosen)
    md += [f"![success, {problem}]({stem}_success.png)", "", f"![cost, {problem}]({stem}_cost.png)", "",
           "Cost markers: the estimate with its bootstrap 95% interval; an arrow, an interval open upwards "
           "(too few successes to bound it); x on the top edge, no run succeeded.", "",
           f"![learning curves, {problem}]({stem}_curves.png)", "",
           f"Runtime distributions (the chosen settings for {mine[0].criterion}): the fraction of (run, target) "
           f"pairs met within a budget, targets {', '.join(rts[0].targets)}.", "",
           f"![runtime distributions, {problem}]({stem}_ecdf.png)", ""]
    if points:
        md += ["Success and cost at every setting each method was run with, the chosen one ringed (a choice at "
               "a grid's end may lie beyond it):", "", f"![sensitivity, {problem}]({stem}_sensitivity.png)", ""]
    return md, tables, figs, rts


def _ecdf_panels(rts: list) -> dict[str, dict[str, tuple]]:
    """ECDF curves per activation, per method, on one budget axis."""
    grid = runtime.budgets(rts)
    panels: dict[str, dict[str, tuple]] = {}
    for rt in rts:
        panels.setdefault(rt.activation, {})[rt.method] = (grid, runtime.ecdf([rt], grid))
    return panels


def _criterion_section(rep: _Report, mine: list[compare.Answer], problem: str,
                       crit: str) -> tuple[list[str], list[Table]]:
    answer, settings = answer_table(mine, problem, crit), settings_table(mine, problem, crit)
    md = [f"### {problem}: success and cost by {crit}", "",
          "Success % [95% interval], and below it the expected cu to a success with restarts [95% interval].",
          "", answer.markdown(), "", "Settings chosen for this criterion:", "", settings.markdown(), ""]
    tables = [answer, settings]
    ratio = ratio_table(mine, problem, crit)
    if ratio is not None:
        md += ["Expected cost over the cheapest method's:", "", ratio.markdown(), ""]
        tables.append(ratio)
    three, paired = three_costs_table(mine, problem, crit), paired_table(mine, problem, crit)
    md += ["The three costs: with restarts at the budget; at the best cutoff, at that cutoff; the mean of the "
           "successful runs alone (the failures it leaves out):", "", three.markdown(), "",
           "Successes paired by start against the most successful method (runs only this one solved vs only "
           "that one solved; McNemar's exact test):", "", paired.markdown(), ""]
    tables += [three, paired]
    if rep.beside is not None:
        other_answers, names, file_name = rep.beside
        ct = comparison_table(rep.answers, other_answers, problem, crit, names)
        if ct is not None:
            md += [f"Beside {file_name}:", "", ct.markdown(), ""]
            tables.append(ct)
    return md, tables


def _across_section(rep: _Report, rts: list) -> tuple[list[str], list[Table], list[Path]]:
    """Every problem at once: runtime distributions aggregated over targets and problems, and performance
    profiles of the cost with restarts."""
    problems = list(dict.fromkeys(a.problem for a in rep.answers))
    if len(problems) < 2:
        return [], [], []
    grid = runtime.budgets(rts)
    panels: dict[str, dict[str, tuple]] = {}
    for act in dict.fromkeys(rt.activation for rt in rts):
        for m in dict.fromkeys(rt.method for rt in rts):
            mine = [rt for rt in rts if rt.activation == act and rt.method == m]
            if mine:
                panels.setdefault(act, {})[m] = (grid, runtime.ecdf(mine, grid))
    taus = np.geomspace(1, 1000, 300)
    profiles = {}
    for crit in dict.fromkeys(a.criterion for a in rep.answers):
        costs: dict[str, dict[str, float]] = {}
        for a in rep.answers:
            if a.criterion == crit:
                costs.setdefault(f"{a.problem} / {a.activation}", {})[a.method] = a.cost_cu.value
        profiles[crit] = runtime.profile(costs, taus)
    figs = figures.ecdf_figure(panels, "every problem: runtimes to every target", rep.out / "all_ecdf")
    figs += figures.profile_figure(taus, profiles, "every problem and activation", rep.out / "all_profile")
    art = Table("art", ["problem", "method", "activation", "target", "met", "aRT", "lo", "hi"], art_rows(rts))
    md = ["## Across problems", "", "Runtimes to every target of every problem, aggregated (COCO's empirical "
          "distribution; each problem's chosen settings for its first criterion). The average runtime to each "
          "target, with its bootstrap interval, is `tables/art.csv`.", "",
          "![runtime distributions, every problem](all_ecdf.png)", "",
          "Performance profiles (Dolan & More 2002): the fraction of (problem, activation) pairs where a "
          "method's expected cost with restarts is within a factor tau of the cheapest method's there.", "",
          "![performance profiles](all_profile.png)", ""]
    return md, [art], figs


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
