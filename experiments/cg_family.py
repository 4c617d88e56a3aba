"""Study 6: the conjugate-gradient family against BP, RPROP, quickprop and L-BFGS, tuned alike.

    python3 experiments/cg_family.py [--report-only]

Runs ``experiments/cg_family.toml`` (XOR, parity-3, parity-4 and the 8-3-8 and 10-5-10 encoders; four
hidden activations; 13 methods, each given eight settings on seeds 0-9 and its chosen ones run on seeds
10-59; every run until both criteria held or its 3,000 cu were spent) into ``results/cg_family.sqlite``,
keeps the tuned answers (:func:`bpkit.compare.answers`) in ``experiments/results/cg_family_answers.csv``,
each method's cost over the cheapest one's (:func:`bpkit.compare.ratios`, bootstrap 95%) in
``cg_family_ratios.csv``, McNemar's test of every pair of methods on the runs from the same starts in
``cg_family_paired.csv``, the three costs of every answer in ``cg_family_costs.csv``, the runtime distributions in ``cg_family_ecdf.csv`` and L-BFGS's runs beside
their float64 twins in ``cg_family_lbfgs.csv``, and writes the README section.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from bpkit import compare, study, tables, verdict

FOLDER = study.Folder(Path(__file__).resolve().parent)

NAME = "cg_family"
CRITERIA = ("40-20-40", "goal")
REFERENCE = "sigmoid"  # the hidden units of the published runs (Fahlman, Moeller, JetNet)


def ratio_rows(answers: list) -> list[dict]:
    """Each method's expected cu over the cheapest method's in its (problem, criterion, activation)."""
    out = []
    for (problem, crit, act), rows in compare.ratios(answers).items():
        for r in rows:
            out.append({"problem": problem, "criterion": crit, "activation": act, "method": r.method,
                        "cheapest": r.versus, "paired": r.paired, "ratio": r.ratio.value, "lo": r.ratio.lo,
                        "hi": r.ratio.hi})
    return out


def _stored() -> int:
    """How many runs the study's store holds (0 before its first run)."""
    from bpkit.store import Store

    path = FOLDER.stores / f"{NAME}.sqlite"
    if not path.exists():
        return 0
    with Store(path, readonly=True) as store:
        return len(store.run_ids())


def run(args) -> None:
    t0, before = time.perf_counter(), _stored()
    answers = FOLDER.sweep_and_answer(NAME, "CG family and others", chunk_size=None)
    FOLDER.save_csv(f"{NAME}_ratios", ratio_rows(answers))
    FOLDER.save_csv(f"{NAME}_lbfgs", lbfgs_rows(answers))
    FOLDER.save_csv(f"{NAME}_ecdf", ecdf_rows(answers))
    FOLDER.save_csv(f"{NAME}_halves", halves_rows(answers))
    FOLDER.save_csv(f"{NAME}_paired", paired_rows(answers))
    FOLDER.save_csv(f"{NAME}_costs", cost_rows(answers))
    n_runs = _stored()
    wall = time.perf_counter() - t0
    if n_runs == before and (FOLDER.results / f"{NAME}_meta.json").exists():  # resumed, nothing new: the time
        wall = FOLDER.load_json(f"{NAME}_meta")["wall_s"]                      # of the run that computed them
    FOLDER.save_json(f"{NAME}_meta", {"wall_s": wall, "runs": n_runs})


def halves_rows(answers: list) -> list[dict[str, object]]:
    """The reviewer's check: every answer's successes on each half of its held-out seeds apart (the settings
    as chosen on the tuning seeds), per (half, problem, criterion, method, activation)."""
    out: list[dict[str, object]] = []
    for a in answers:
        for name, half in compare.halves(a.chosen.seeds):
            c = a.chosen.on(set(half))
            out.append({"half": name, "seeds": f"{half[0]}-{half[-1]}", "problem": a.problem, "criterion": a.criterion,
                        "method": a.method, "activation": a.activation, "successes": c.successes, "runs": c.runs})
    return out


def paired_rows(answers: list) -> list[dict[str, object]]:
    """McNemar's exact test of every ordered pair of methods, pooled over problems and activations: the two
    methods' runs (at their chosen settings) from one start (problem, activation, init and seed: the same
    initial weights) are one pair.  On all held-out seeds (``half`` "all") and on each half of them apart
    (the reviewer's check), per criterion."""
    from bpkit import stats

    out: list[dict[str, object]] = []
    seeds = sorted({s for a in answers for s in a.chosen.seeds})
    parts = (("all", seeds), *compare.halves(seeds))
    for crit in CRITERIA:
        won: dict[str, dict[tuple, bool]] = {}
        for a in answers:
            if a.criterion == crit:
                mine = won.setdefault(a.method, {})
                for seed, t in zip(a.chosen.seeds, a.chosen.attempts, strict=True):
                    mine[(a.problem, a.activation, a.chosen.init, seed)] = t.success
        for half, part in parts:
            for m, v in ((m, v) for m in won for v in won if m != v):
                starts = [k for k in won[m] if k in won[v] and k[-1] in set(part)]
                test = stats.mcnemar([won[m][k] for k in starts], [won[v][k] for k in starts])
                out.append({"half": half, "seeds": f"{part[0]}-{part[-1]}", "criterion": crit, "method": m,
                            "versus": v, "starts": len(starts), "only_method": test.only_a,
                            "only_versus": test.only_b, "p": test.p})
    return out


def cost_rows(answers: list) -> list[dict[str, object]]:
    """The three costs of every answer (:class:`bpkit.compare.Answer`): expected cu with restarts at the
    budget, at the best cutoff (and that cutoff), and the mean cu of the successful runs alone, with the
    failed runs that last one leaves out."""
    return [{"problem": a.problem, "criterion": a.criterion, "method": a.method, "activation": a.activation,
             "restarts": a.cost_cu.value, "cutoff_cost": a.cutoff.cost, "cutoff": a.cutoff.cutoff,
             "mean_success": a.mean_success_cu, "failed": a.runs - a.success} for a in answers]


def reliability(rows: list[dict[str, str]], crit: str, paired: list[dict[str, str]],
                half: str = "all") -> tuple[str, list[str], list[str]]:
    """Pooled over problems and activations at ``crit``: the most reliable method, those not separated from
    it and those behind it (:func:`bpkit.verdict.rates`: McNemar's exact test at 5% on the runs from the
    same starts, ``paired``'s rows of ``half``; ``rows``: the answers, or one half's rows of them)."""
    methods = list(dict.fromkeys(a["method"] for a in rows))
    rate = {m: pooled(rows, method=m, criterion=crit) for m in methods}
    best = max(methods, key=lambda m: rate[m][0] / rate[m][1])
    behind = [m for m in methods if m != best and verdict.rates(
        m, *rate[m], best, *rate[best], paired=mcnemar(paired, crit, m, best, half)).word == verdict.BEHIND]
    return best, [m for m in methods if m != best and m not in behind], behind


def leaders_text(rows: list[dict[str, str]], crit: str, best: str, level: list[str]) -> str:
    """The leaders in reliability at ``crit``, each with its rate: ``best``, the method that succeeds most, and
    ``level``, every method McNemar's test does not separate from it (:func:`reliability`), so that no name
    leads by rounding alone."""

    def said(m: str) -> str:
        return f"{m} {study.rate(*pooled(rows, method=m, criterion=crit))}"

    if not level:
        return f"{said(best)} leads alone, every other method separated behind it"
    return (f"no single method leads: {said(best)} succeeds most, and McNemar's test on the runs from the same "
            f"starts does not separate from it {', '.join(said(m) for m in level)}")


def mcnemar(paired: list[dict[str, str]], crit: str, method: str, versus: str, half: str = "all"):
    """The stored McNemar test of ``method`` against ``versus`` (:func:`paired_rows`)."""
    from bpkit import stats

    r = next(r for r in paired if (r["half"], r["criterion"], r["method"], r["versus"]) == (half, crit, method, versus))
    return stats.McNemar(int(r["only_method"]), int(r["only_versus"]), float(r["p"]))


def halves_text(rows: list[dict[str, str]], halves: list[dict[str, str]], paired: list[dict[str, str]]) -> str:
    """Whether the reliability verdicts hold on each half of the held-out seeds: a method stated behind the
    most reliable one is contradicted where, on a half, it is separated ahead of that method (McNemar's test
    on that half's paired runs)."""
    parts, contradicted = [], 0
    for crit, name in (("40-20-40", "loose"), ("goal", "tight")):
        best, _, behind = reliability(rows, crit, paired)
        for half in dict.fromkeys(h["half"] for h in halves):
            mine = [h for h in halves if h["half"] == half]
            b = pooled(mine, method=best, criterion=crit)
            said = {m: verdict.rates(m, *pooled(mine, method=m, criterion=crit), best, *b,
                                     paired=mcnemar(paired, crit, m, best, half)).word for m in behind}
            still = [m for m in behind if said[m] == verdict.BEHIND]
            contradicted += sum(w == verdict.AHEAD for w in said.values())
            parts.append(f"{name}, seeds {mine[0]['seeds']}: {best} {study.rate(*b)}, {len(still)} of the "
                         f"{len(behind)} methods stated behind it still separated")
    return ("**The reviewer's check**: the settings as chosen, each half of the held-out seeds apart; "
            + "; ".join(parts) + f"; a method separated ahead of the one it is stated behind: {contradicted} "
            f"(`experiments/results/{NAME}_halves.csv`, `{NAME}_paired.csv`).")


ECDF_POINTS = 120  # budgets on the runtime distributions' log axis


def ecdf_rows(answers: list) -> list[dict[str, object]]:
    """Runtime distributions (COCO's ECDF): per activation and method, the fraction of (problem, run, target)
    pairs met within each budget in cu.  The targets: each problem's ladder (:func:`bpkit.runtime.problem_runtimes`:
    eight losses spaced log-uniformly from where the runs start down to the tight goal, and 40-20-40); the runs:
    the held-out runs of the settings chosen for the tight goal."""
    from bpkit import report, runtime

    chosen = [a for a in answers if a.criterion == "goal"]
    runs, _ = report.load_runs(FOLDER.stores / f"{NAME}.sqlite", ids={i for a in chosen for i in a.chosen.run_ids})
    by_id = {r["run_id"]: r for r in runs}
    rts = [rt for p in dict.fromkeys(a.problem for a in chosen)
           for rt in runtime.problem_runtimes([a for a in chosen if a.problem == p], by_id)]
    grid = runtime.budgets(rts, ECDF_POINTS)
    out: list[dict[str, object]] = []
    for act in dict.fromkeys(rt.activation for rt in rts):
        for m in dict.fromkeys(rt.method for rt in rts):
            mine = [rt for rt in rts if rt.activation == act and rt.method == m]
            out += [{"activation": act, "method": m, "budget": float(b), "fraction": float(f)}
                    for b, f in zip(grid, runtime.ecdf(mine, grid), strict=True)]
    return out


def edge_counts(rows: list[dict[str, str]]) -> str:
    """The choices at an end of their grid, counted by setting and method: "c2 0.999: CG DY 10, CG FR 9"."""
    counts: dict[str, dict[str, int]] = {}
    for a in rows:
        if a["edge"]:
            by = counts.setdefault(a["setting"].split(" (")[0], {})
            by[a["method"]] = by.get(a["method"], 0) + 1
    return "; ".join(f"{setting}: " + ", ".join(f"{m} {k}" for m, k in sorted(by.items(), key=lambda kv: -kv[1]))
                     for setting, by in counts.items()) or "none"


def ecdf_figure(rows: list[dict[str, str]]) -> None:
    """The runtime distributions of ``cg_family_ecdf.csv``, one panel per activation."""
    import numpy as np

    from bpkit import figures

    panels: dict[str, dict[str, tuple]] = {}
    for act in dict.fromkeys(r["activation"] for r in rows):
        for m in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["activation"] == act and r["method"] == m]
            panels.setdefault(act, {})[m] = (np.array([float(r["budget"]) for r in mine]),
                                             np.array([float(r["fraction"]) for r in mine]))
    figures.ecdf_figure(panels, "every problem: runtimes to every target (held-out seeds)",
                        FOLDER.figures / f"{NAME}_ecdf")


def ecdf_at(rows: list[dict[str, str]], budget: float) -> dict[tuple[str, str], float]:
    """(activation, method) -> the fraction of (problem, run, target) pairs met within ``budget`` cu."""
    out: dict[tuple[str, str], float] = {}
    for r in rows:
        if float(r["budget"]) <= budget:
            out[r["activation"], r["method"]] = float(r["fraction"])
    return out


LBFGS = "L-BFGS"
STATIONARY = 1e-4  # a final gradient norm below this: the run ended at (or next to) a stationary point


def lbfgs_rows(answers: list) -> list[dict[str, object]]:
    """Why L-BFGS fails, by measurement: each run of its 40-20-40 answers at the chosen setting, as swept in
    float32, with what ended it, its final loss and gradient norm; and the same runs (configs and seeds) again
    in float64, into ``<stores>/cg_family_lbfgs64.sqlite``, so that precision is tested by the success counts."""
    import jax

    from bpkit import report, spec
    from bpkit.store import Store
    from bpkit.sweep import run_runs

    chosen = [a for a in answers if a.method == LBFGS and a.criterion == "40-20-40"]
    runs, _ = report.load_runs(FOLDER.stores / f"{NAME}.sqlite", ids={i for a in chosen for i in a.chosen.run_ids})
    jax.config.update("jax_enable_x64", True)  # a float32 run is the same program, bitwise, either way
    twins = [spec.from_flat({**r["config"], "dtype": "float64"}) for r in runs]
    with Store(FOLDER.stores / f"{NAME}_lbfgs64.sqlite") as store:
        run_runs(twins, store)
    again, _ = report.load_runs(FOLDER.stores / f"{NAME}_lbfgs64.sqlite")
    return [_lbfgs_row(r, problem) for rs in (runs, again) for r, problem in zip(rs, _problems(rs), strict=True)]


def _problems(runs: list[dict]) -> list[str]:
    names = compare.names(runs)
    return [names[r["run_id"]][0] for r in runs]


def _lbfgs_row(r: dict, problem: str) -> dict[str, object]:
    grads = [g for g in r["curves"]["grad_norm"] if g is not None and math.isfinite(g)]
    return {"problem": problem, "activation": r["config"]["network.activation"], "seed": r["seed"],
            "dtype": r["config"]["dtype"], "success": int(compare.attempt(r, "40-20-40").success),
            "ended": r["stop_reason"], "epochs": r["epochs"], "loss": r["train_loss"],
            "grad_norm": grads[-1] if grads else math.nan}


def lbfgs_counts(rows: list[dict[str, str]], dtype: str) -> dict[str, int]:
    """The runs of one dtype: solved, and the failures by what ended them; a failed line search split by
    whether the run stood at a stationary point (final gradient norm below :data:`STATIONARY`)."""
    mine = [r for r in rows if r["dtype"] == dtype]
    out = {"runs": len(mine), "solved": sum(int(r["success"]) for r in mine)}
    for r in mine:
        if int(r["success"]):
            continue
        how = r["ended"]
        if how == "line_search_failed":
            how += ", stationary" if float(r["grad_norm"]) < STATIONARY else ", moving"
        out[how] = out.get(how, 0) + 1
    return out


def lbfgs_verdicts(rows: list[dict[str, str]]) -> list[verdict.Verdict]:
    """Precision as a cause of L-BFGS's failures, stated only by its test: the same runs in float64 against
    float32 (Wilson intervals: the initial weights are drawn anew in float64, so the runs are not paired)."""
    k64, k32 = lbfgs_counts(rows, "float64"), lbfgs_counts(rows, "float32")
    test = verdict.rates("L-BFGS in float64", k64["solved"], k64["runs"], "L-BFGS in float32", k32["solved"],
                         k32["runs"])
    return [verdict.cause("float32 rounding is why L-BFGS fails", test, [verdict.AHEAD])]


def pooled(rows: list[dict[str, str]], **where: str) -> tuple[int, int]:
    """(successes, runs) summed over the answers that match ``where``: independent runs, so the
    counts add and the Wilson interval of the sum is that of a pooled success rate."""
    sel = [a for a in rows if all(a[k] == v for k, v in where.items())]
    return sum(int(a["successes"]) for a in sel), sum(int(a["runs"]) for a in sel)


def activation_table(rows: list[dict[str, str]], crit: str) -> list[str]:
    """Methods x activations: successes pooled over the problems at each cell's tuned setting."""
    acts = list(dict.fromkeys(a["activation"] for a in rows))
    cells = [[m] + [study.rate(*pooled(rows, method=m, activation=act, criterion=crit)) for act in acts]
             for m in dict.fromkeys(a["method"] for a in rows)]
    return tables.Table("activation", ["method", *acts], cells).markdown().splitlines()


def problem_table(rows: list[dict[str, str]], costs: list[dict[str, str]], crit: str, act: str) -> list[str]:
    """Methods x problems at one activation: success, the three costs (:func:`three_costs`), the chosen setting."""
    rows = [a for a in rows if a["criterion"] == crit and a["activation"] == act]
    problems = list(dict.fromkeys(a["problem"] for a in rows))
    cell = {(a["problem"], a["method"]): study.answer_cells(a) for a in rows}
    three = {(c["problem"], c["method"]): three_costs(c) for c in costs
             if c["criterion"] == crit and c["activation"] == act}
    cells = [[m] + [f"{cell[p, m][0]}<br>{cell[p, m][2]} cu<br>{three[p, m]}<br>{cell[p, m][3].split(' (of')[0]}"
                    for p in problems]
             for m in dict.fromkeys(a["method"] for a in rows)]
    return tables.Table("problem", ["method", *problems], cells).markdown().splitlines()


def three_costs(c: dict[str, str]) -> str:
    """The other two of a cost row's three costs: with restarts at the best cutoff (and the cutoff), and
    the mean cu of the successes alone (with the failures it leaves out)."""

    cut, mean = float(c["cutoff_cost"]), float(c["mean_success"])
    if not math.isfinite(cut):
        return "no success"
    return (f"cut at {compare.short(float(c['cutoff']))}: {compare.short(cut)} cu<br>successes alone: "
            f"{compare.short(mean)} cu ({c['failed']} failed)")


def cheapest_by(costs: list[dict[str, str]], field: str) -> dict[tuple[str, str, str], str]:
    """Per (problem, criterion, activation) where some method succeeded: the method cheapest by ``field``."""
    cells: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for c in costs:
        if math.isfinite(float(c[field])):
            cells.setdefault((c["problem"], c["criterion"], c["activation"]), []).append(c)
    return {k: min(cs, key=lambda c: float(c[field]))["method"] for k, cs in cells.items()}


def papers_cost_text(costs: list[dict[str, str]]) -> str:
    """How the cheapest method moves with the cost counted: with restarts (the tables), at the best cutoff,
    and over the successful runs alone (as the papers report, the failures left out)."""
    base = cheapest_by(costs, "restarts")
    parts = []
    for field, name in (("cutoff_cost", "at the best cutoff"), ("mean_success", "by the successes alone")):
        other = cheapest_by(costs, field)
        moved = sum(other[k] != base[k] for k in base)
        wins: dict[str, int] = {}
        for m in other.values():
            wins[m] = wins.get(m, 0) + 1
        top = sorted(wins, key=lambda m: (-wins[m], m))[:3]
        parts.append(f"{name}, another method is cheapest in {moved} of the {len(base)} cells (cheapest counted so: "
                     + ", ".join(f"{m} in {wins[m]}" for m in top) + ")")
    return ("Counted as the papers count, the cheapest method moves: " + "; ".join(parts)
            + f" (`experiments/results/{NAME}_costs.csv`; the three costs of every sigmoid cell are in the "
            "table at the end).")


def best_table(ratios: list[dict[str, str]], crit: str) -> list[str]:
    """Per problem and activation: the cheapest method, and those whose cost ratio to it has an
    interval reaching 1 (not separated from it)."""
    acts = list(dict.fromkeys(r["activation"] for r in ratios))
    problems = list(dict.fromkeys(r["problem"] for r in ratios))
    cells = []
    for p in problems:
        parts = []
        for act in acts:
            rs = [r for r in ratios if r["problem"] == p and r["activation"] == act and r["criterion"] == crit]
            if not rs:
                parts.append("no method succeeded")
                continue
            tied = [r["method"] for r in rs if r["method"] != r["cheapest"] and float(r["lo"]) <= 1.0]
            parts.append(f"**{rs[0]['cheapest']}**" + (f"; not separated: {', '.join(tied)}" if tied else ""))
        cells.append([p, *parts])
    return tables.Table("best", ["problem", *acts], cells).markdown().splitlines()


def separated_wins(ratios: list[dict[str, str]]) -> dict[str, tuple[int, int]]:
    """Per method: (cells where it is cheapest or not separated from the cheapest, cells)."""
    cells = {(r["problem"], r["criterion"], r["activation"]) for r in ratios}
    out: dict[str, tuple[int, int]] = {}
    for r in ratios:
        top = r["method"] == r["cheapest"] or float(r["lo"]) <= 1.0
        k, n = out.get(r["method"], (0, 0))
        out[r["method"]] = (k + top, n + 1)
    return {m: (k, len(cells)) for m, (k, _) in out.items()}


def _apart(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two pooled (successes, runs) are told apart (:func:`bpkit.stats.separated`)."""
    from bpkit import stats

    return stats.separated(*a, *b)


def conclusion(rows: list[dict[str, str]], ratios: list[dict[str, str]], paired: list[dict[str, str]],
               costs: list[dict[str, str]]) -> str:
    acts = list(dict.fromkeys(a["activation"] for a in rows))
    text = ["**Conclusion**. A difference in reliability counts only where McNemar's exact test on the runs from "
            "the same starts separates it at 5%; in cost, only where the interval of the cost ratio excludes 1; "
            "between activations (other chosen settings), only where the Wilson intervals do not overlap."]
    for crit, name in (("40-20-40", "loose"), ("goal", "tight")):
        best, level, behind = reliability(rows, crit, paired)
        text.append(f"Reliability, {name} criterion, pooled over problems and activations: "
                    f"{leaders_text(rows, crit, best, level)}; behind {best}: {', '.join(behind) or 'none'}.")
    wins = separated_wins(ratios)
    top = sorted(wins, key=lambda m: -wins[m][0])
    text.append("Cost: of the " + str(wins[top[0]][1]) + " (problem, criterion, activation) cells where some "
                "method succeeded, each method is the cheapest or within its interval in: "
                + ", ".join(f"{m} {wins[m][0]}" for m in top) + ".")
    text.append(papers_cost_text(costs))
    cg_rows = [a for a in rows if a["method"].startswith("CG ")]
    cg_best, _, cg_apart = reliability(cg_rows, "40-20-40", paired)
    text.append(f"Among the CG betas (JetNet: PR or HS best), by 40-20-40 {cg_best} succeeds most "
                f"({study.rate(*pooled(cg_rows, method=cg_best, criterion='40-20-40'))}); separated from it: "
                f"{', '.join(cg_apart) or 'none'}.")
    act_rate = {a: pooled(rows, activation=a, criterion="40-20-40") for a in acts}
    best_act = max(acts, key=lambda a: act_rate[a][0])
    worst_act = min(acts, key=lambda a: act_rate[a][0])
    text.append("By hidden activation, over every method and problem (40-20-40): "
                + ", ".join(f"{a} {study.rate(*act_rate[a])}" for a in acts)
                + f"; {worst_act} is {'separated from' if _apart(act_rate[worst_act], act_rate[best_act]) else 'not separated from'} "
                f"{best_act}. Study 6b runs ReLU from other starts and on wider nets, and tests there what keeps it behind "
                "back on these 2-5 unit nets.")
    return " ".join(text)


def ecdf_text(rows: list[dict[str, str]], budget: float) -> str:
    """Each activation's method with the most (run, target) pairs met within the budget, and at a tenth of it."""
    parts = []
    for b in (budget / 10, budget):
        at = ecdf_at(rows, b)
        best = {}
        for (act, m), f in at.items():
            if act not in best or f > at[act, best[act]]:
                best[act] = m
        parts.append(f"within {b:,.0f} cu, " + "; ".join(f"{act}: {m} {at[act, m]:.0%}" for act, m in best.items()))
    return ("Most (run, target) pairs met, per activation: " + ". And ".join(parts) + " (fractions of "
            f"`experiments/results/{NAME}_ecdf.csv`; no interval is drawn on them).")


def lbfgs_text(rows: list[dict[str, str]]) -> str:
    """The paragraph on L-BFGS's failures, every count from ``cg_family_lbfgs.csv``, the cause by its rule."""
    def told(dtype: str) -> str:
        c = lbfgs_counts(rows, dtype)
        ends = {"line_search_failed, stationary": f"a failed line search at a stationary point (final gradient "
                                                  f"norm below {STATIONARY:g})",
                "line_search_failed, moving": "a failed line search away from one",
                "max_epochs": "the iteration budget", "max_cu": "the cu budget", "diverged": "divergence"}
        failed = "; ".join(f"{ends.get(k, k)} {v}" for k, v in c.items() if k not in ("runs", "solved"))
        return f"in {dtype} it solves {study.rate(c['solved'], c['runs'])}, its failures ended by {failed or 'none'}"

    made = FOLDER.save_verdicts(NAME, lbfgs_verdicts(rows))
    return (f"**Why L-BFGS fails**, measured (40-20-40, each cell at its chosen c2, every held-out seed; the same runs "
            f"again in float64; `experiments/results/{NAME}_lbfgs.csv`): {told('float32')}; {told('float64')}. "
            "A stationary point that is no solution is a local minimum or a plateau; the gradient norm alone does "
            f"not say which. Precision, by its test: {'; '.join(v.text for v in made)}.")


def section() -> None:
    rows = FOLDER.load_csv(f"{NAME}_answers")
    lbfgs = FOLDER.load_csv(f"{NAME}_lbfgs")
    ratios = FOLDER.load_csv(f"{NAME}_ratios")
    pairs = FOLDER.load_csv(f"{NAME}_paired")
    costs = FOLDER.load_csv(f"{NAME}_costs")
    meta = FOLDER.load_json(f"{NAME}_meta")
    flat = study.load_config(FOLDER.root / f"{NAME}.toml")
    grids = [(m["label"], next(k for k, v in m.items() if isinstance(v, list))) for m in flat["axis"]["method"]]
    tuned = tables.Table("tuned", ["method", "tuned over"], [
        [label, f"{key.split('.')[-1]} {', '.join(f'{v:g}' for v in m[key])}"]
        for (label, key), m in zip(grids, flat["axis"]["method"], strict=True)]).markdown().splitlines()
    problems = list(dict.fromkeys(a["problem"] for a in rows))
    ecdf = FOLDER.load_csv(f"{NAME}_ecdf")
    ecdf_figure(ecdf)
    tune = flat["compare.tune_seeds"]
    report_seeds = [x for x in flat["seeds"] if x not in tune]
    tuned_rows = [a for a in rows if a["tuned"] == "True"]
    edges = sum(1 for a in tuned_rows if a["edge"])
    paired = sum(1 for r in ratios if r["paired"] == "True")
    body = [
        "## Study 6: the conjugate-gradient family",
        "",
        f"Command: `python3 experiments/{NAME}.py` (grid: `experiments/{NAME}.toml`; {meta['runs']:,} runs, "
        f"{meta['wall_s'] / 60:.0f} min on this machine's 2 cores; numbers from `experiments/results/{NAME}_answers.csv`, "
        f"`{NAME}_ratios.csv`, `{NAME}_paired.csv`, `{NAME}_costs.csv` and `{NAME}_ecdf.csv`, computed by `bpkit.compare`, `bpkit.runtime` and `bpkit.stats` "
        "from the stored runs).",
        "",
        "Published (../shared/REFERENCES.md): CG with a line search runs best with PR or HS (JetNet); SCG is "
        "faster than BP and than CG with a line search (Moeller 1993; his claim is tested as stated in Study 6c); "
        "quickprop and RPROP are several times faster than BP (Fahlman 1988, Riedmiller & Braun 1993); PR CG "
        "is the method of choice for small problems (LeCun et al. 1998).",
        "",
        f"Setup: {', '.join(problems)}, as the CMU collection defines them; half MSE on a sigmoid output, 0/1 "
        "targets, float32, LeCun-normal init (the same initial weights for every method on a seed). **Equal "
        f"compute**: every run has {flat['training.max_cu']:,.0f} cu (a loss evaluation 1 cu, a gradient 3: "
        f"{flat['training.max_epochs']:,} epochs of batch BP; the line-search methods stop when their cu are "
        f"spent). **Equal tuning**: every method is batch except BP online, and is given {rows[0]['budget']} "
        f"settings; each is run on seeds {tune[0]}-{tune[-1]}, the one with the lowest expected cost with restarts there is chosen per "
        "cell (problem, activation, criterion), and **every number below comes from the other "
        f"{len(report_seeds)} seeds**, {report_seeds[0]}-{report_seeds[-1]}, on which only the chosen settings "
        "were run:",
        "",
        *tuned,
        "",
        f"Of the {len(tuned_rows)} choices made (cells where some setting succeeded on the tuning seeds), {edges} "
        f"sit at an end of their grid, marked \"(edge)\" below: {edge_counts(tuned_rows)} (a Wolfe line search "
        f"needs c1 < c2 < 1, with c1 = {flat['optimizer.c1']:g} here).",
        "",
        f"Every run goes on until both criteria held: 40-20-40 (loose) and half MSE <= {flat['training.goal']:g} "
        "(tight). Success [Wilson 95%]; expected cu to a first success when failed runs are restarted "
        "[bootstrap 95%].",
        "",
        "**Which method with which activation**: successes at 40-20-40, pooled over the five problems:",
        "",
        *activation_table(rows, "40-20-40"),
        "",
        "The same at the tight criterion:",
        "",
        *activation_table(rows, "goal"),
        "",
        "**Cheapest method** per problem and activation (expected cu with restarts; \"not separated\": the "
        f"bootstrap interval of its cost over the cheapest one's reaches 1; {paired:,} of the {len(ratios):,} "
        "ratios are paired by seed, the two methods having met the same starts), 40-20-40:",
        "",
        *best_table(ratios, "40-20-40"),
        "",
        "Tight criterion:",
        "",
        *best_table(ratios, "goal"),
        "",
        conclusion(rows, ratios, pairs, costs),
        "",
        halves_text(rows, FOLDER.load_csv(f"{NAME}_halves"), pairs),
        "",
        lbfgs_text(lbfgs),
        "",
        "**Runtime distributions** (COCO's view, which hinges on no single goal): for each method and activation, "
        "the fraction of (problem, run, target) pairs met within a budget, over the five problems, the held-out "
        "runs of the settings chosen for the tight criterion, and each problem's ladder of targets (eight losses "
        "spaced log-uniformly from where the runs start down to the tight goal, and 40-20-40):",
        "",
        f"![runtime distributions](figures/{NAME}_ecdf.png)",
        "",
        ecdf_text(ecdf, float(flat["training.max_cu"])),
        "",
        f"<details><summary>Every method on every problem with {REFERENCE} hidden units, as published: success, "
        "the three costs (expected cu with restarts; at the best cutoff; the successes alone), chosen setting</summary>",
        "",
        "40-20-40:",
        "",
        *problem_table(rows, costs, "40-20-40", REFERENCE),
        "",
        "Tight criterion:",
        "",
        *problem_table(rows, costs, "goal", REFERENCE),
        "",
        f"Every activation: `experiments/results/{NAME}_answers.csv`; `python3 -m bpkit report "
        f"results/{NAME}.sqlite` prints the full report with learning curves.",
        "",
        "</details>",
        "",
        *(f"![success, {p}](figures/{NAME}_success_{i + 1}.png)" for i, p in enumerate(problems)),
    ]
    FOLDER.write_section(NAME, "\n".join(body))


def main(argv: list[str] | None = None) -> int:
    return FOLDER.cli(NAME, __doc__, argv, run, section)


if __name__ == "__main__":
    sys.exit(main())
