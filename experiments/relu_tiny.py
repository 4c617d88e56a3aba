"""Study 6b: ReLU on the tiny benchmarks, started five ways, every cell tuned alike, dead units counted.

    python3 experiments/relu_tiny.py [--report-only]

Runs ``experiments/relu_tiny.toml`` (XOR and parity-3, narrow and four times wider; ReLU with
LeCun's init, He's, He's with biases at 0.1, leaky ReLU, and tanh as the reference; batch GD
tuned over four learning rates on seeds 0-9, reported on seeds 10-59) into
``results/relu_tiny.sqlite``, keeps the tuned answers in ``experiments/results/relu_tiny_answers.csv``
and each reported run's success beside its dead hidden units at its start and end in
``relu_tiny_dead.csv``, and writes the README section from them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from bpkit import stats, study, tables, verdict

FOLDER = study.Folder(Path(__file__).resolve().parent)

NAME = "relu_tiny"


def run(args) -> None:
    # The sweep's own chunking (each group one chunk): this study was redone on it (issue 41).
    answers = FOLDER.sweep_and_answer(NAME, "ReLU on XOR and parity-3, five starts", chunk_size=None)
    FOLDER.save_csv(f"{NAME}_dead", dead_rows(answers, FOLDER.stores / f"{NAME}.sqlite"))


def dead_rows(answers: list, store: Path) -> list[dict[str, object]]:
    """One row per reported run of each 40-20-40 answer: its success and its dead hidden units at its start
    and its end (``training.measure_dead_units``, :func:`bpkit.analysis.dead_units`)."""
    from bpkit import report

    chosen = [a for a in answers if a.criterion == "40-20-40"]
    ids = {i for a in chosen for i in a.chosen.run_ids}
    runs, _ = report.load_runs(store, each=lambda r: {"run_id": r["run_id"], "dead": r["curves"]["dead_units"]},
                               ids=ids)
    dead = {r["run_id"]: r["dead"] for r in runs}
    return [{"problem": a.problem, "start": a.method, "seed": seed, "success": int(t.success),
             "dead_start": dead[i][0], "dead_end": dead[i][1]}
            for a in chosen for seed, t, i in zip(a.chosen.seeds, a.chosen.attempts, a.chosen.run_ids, strict=True)]


RELU_STARTS = ("relu, LeCun init, biases 0", "relu, He init, biases 0", "relu, He init, biases 0.1")


def _dead_split(rows: list[dict[str, str]], problem: str, field: str) -> tuple[int, int, int, int]:
    """(solved, runs) of the ReLU runs on ``problem`` with no dead unit by ``field``, then of those with one;
    ``field``: "dead_start", or "died" (a unit that died during the run: more dead at the end than at the start)."""
    mine = [r for r in rows if r["problem"] == problem and r["start"] in RELU_STARTS]
    hit = [(int(r["dead_end"]) > int(r["dead_start"])) if field == "died" else int(r[field]) > 0 for r in mine]
    ok = [int(r["success"]) for r in mine]
    alive = [s for s, h in zip(ok, hit, strict=True) if not h]
    dead = [s for s, h in zip(ok, hit, strict=True) if h]
    return sum(alive), len(alive), sum(dead), len(dead)


def nets(problems: Iterable[str]) -> dict[str, list[str]]:
    """Each data set's nets in the order given, the narrow one first (``"xor 2-2-1"``: data set ``xor``)."""
    out: dict[str, list[str]] = {}
    for problem in dict.fromkeys(problems):
        out.setdefault(problem.split()[0], []).append(problem)
    return out


def dead_verdicts(rows: list[dict[str, str]], problems: Iterable[str] | None = None) -> list[verdict.Verdict]:
    """Per problem (of ``problems``, else every one), pooled over the three ReLU starts: do runs that start with
    a dead hidden unit, or lose one during training, solve less often than those that do not?  Each stated only
    by its test (Wilson intervals); a split with no run on one side is no test and is left out."""
    made = []
    for problem in dict.fromkeys(r["problem"] for r in rows) if problems is None else problems:
        for field, claim, alive, dead in (
                ("dead_start", f"a hidden unit dead at the start makes ReLU runs on {problem} fail",
                 "runs with every unit alive at the start", "runs with a dead unit at the start"),
                ("died", f"hidden units dying during training make ReLU runs on {problem} fail",
                 "runs in which no unit died", "runs in which a unit died")):
            ka, na, kd, nd = _dead_split(rows, problem, field)
            if na and nd:
                made.append(verdict.cause(claim, verdict.rates(alive, ka, na, dead, kd, nd), [verdict.AHEAD]))
        # The ReLU runs that never had a dead unit (none at the end: under batch GD a dead unit stays dead)
        # against tanh: if they keep up, dead units are all of ReLU's deficit there.
        whole = [r for r in rows if r["problem"] == problem and r["start"] in RELU_STARTS and int(r["dead_end"]) == 0]
        ref = [r for r in rows if r["problem"] == problem and r["start"] == REFERENCE]
        if whole and ref:
            test = verdict.rates(f"ReLU runs on {problem} that never had a dead unit",
                                 sum(int(r["success"]) for r in whole), len(whole), f"tanh on {problem}",
                                 sum(int(r["success"]) for r in ref), len(ref))
            made.append(verdict.cause(f"dead units are all of ReLU's deficit on {problem}", test,
                                      [verdict.NOT_SEPARATED, verdict.AHEAD]))
    return made


def _dead_table(rows: list[dict[str, str]]) -> list[str]:
    cells = []
    for problem in dict.fromkeys(r["problem"] for r in rows):
        for start in dict.fromkeys(r["start"] for r in rows if r["problem"] == problem):
            mine = [r for r in rows if r["problem"] == problem and r["start"] == start]
            dead0 = [r for r in mine if int(r["dead_start"]) > 0]
            died = [r for r in mine if int(r["dead_end"]) > int(r["dead_start"])]
            solved = lambda rs: f"{sum(int(r['success']) for r in rs)}/{len(rs)}" if rs else "-"
            cells.append([problem, start, solved(mine), f"{len(dead0)}", solved(dead0),
                          solved([r for r in mine if int(r["dead_start"]) == 0]), f"{len(died)}", solved(died)])
    return tables.Table(f"{NAME}_dead", ["problem", "start", "solved", "runs starting with a dead unit",
                                         "of them solved", "runs starting alive, solved", "runs in which a unit died",
                                         "of them solved"], cells).markdown().splitlines()


def _table(rows: list[dict[str, str]], crit: str) -> list[str]:
    rows = [a for a in rows if a["criterion"] == crit]
    problems = list(dict.fromkeys(a["problem"] for a in rows))
    starts = list(dict.fromkeys(a["method"] for a in rows))
    cell = {(a["problem"], a["method"]): study.answer_cells(a) for a in rows}
    cells = [[s] + [f"{cell[p, s][0]}<br>{cell[p, s][1]} epochs" if (p, s) in cell else "" for p in problems]
             for s in starts]
    return tables.Table(f"starts_{crit}", ["start", *problems], cells).markdown().splitlines()


BASE, REFERENCE = "relu, LeCun init, biases 0", "tanh, LeCun init"


def _apart(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether two answers' success rates are told apart (:func:`bpkit.stats.separated`)."""
    return stats.separated(int(a["successes"]), int(a["runs"]), int(b["successes"]), int(b["runs"]))


LEAKY = "leaky relu, He init"


def _cost(a: dict[str, str]) -> tuple[float, float, float]:
    return float(a["cu"]), float(a["cu_lo"]), float(a["cu_hi"])


def verdicts(rows: list[dict[str, str]]) -> list[verdict.Verdict]:
    """Per data set (a narrow net and a wider one), at 40-20-40, two causes of ReLU's deficit against tanh
    on the narrow net, each stated only by its test.  Dead units: leaky ReLU, whose units cannot die, keeps
    up with tanh there (its rate not separated from tanh's, or ahead).  Width: at the wider net ReLU's
    default start costs no more than tanh (the bounds on its expected-cu ratio reach 1 or lie below it;
    every success count there is near its ceiling, so cost is what can still separate them)."""
    rows = [a for a in rows if a["criterion"] == "40-20-40"]
    cell = {(a["problem"], a["method"]): a for a in rows}
    made = []
    for narrow, wide, *_ in (v for v in nets(a["problem"] for a in rows).values() if len(v) >= 2):
        leaky, tanh = cell[(narrow, LEAKY)], cell[(narrow, REFERENCE)]
        test = verdict.rates(f"leaky ReLU on {narrow}", int(leaky["successes"]), int(leaky["runs"]),
                             f"tanh on {narrow}", int(tanh["successes"]), int(tanh["runs"]))
        made.append(verdict.cause(f"dead hidden units hold ReLU back on {narrow}", test,
                                  [verdict.NOT_SEPARATED, verdict.AHEAD]))
        ratio = stats.ratio_bounds(_cost(cell[(wide, BASE)]), _cost(cell[(wide, REFERENCE)]))
        test = verdict.cost_ratio(f"ReLU on {wide}", f"tanh on {wide}", ratio)
        made.append(verdict.cause(f"ReLU's deficit on {narrow} is the net's width (tested by the expected cu on {wide}, "
                                  "the ratio bounded from the two cost intervals)", test,
                                  [verdict.NOT_SEPARATED, verdict.CHEAPER]))
    return made


def conclusion(rows: list[dict[str, str]], dead: list[dict[str, str]]) -> str:
    """Per problem, which starts differ from ReLU's default start and from tanh, by their intervals."""
    rows = [a for a in rows if a["criterion"] == "40-20-40"]
    text = ["**Conclusion** (40-20-40; a difference counts only where the Wilson intervals do not overlap)."]
    for problem in dict.fromkeys(a["problem"] for a in rows):
        cell = {a["method"]: a for a in rows if a["problem"] == problem}
        base, ref = cell.get(BASE), cell.get(REFERENCE)
        if base is None or ref is None:
            continue
        rate = lambda a: f"{a['successes']}/{a['runs']}"
        better = [m for m, a in cell.items() if m not in (BASE, REFERENCE) and _apart(a, base)
                  and int(a["successes"]) > int(base["successes"])]
        behind = [m for m, a in cell.items() if m != REFERENCE and _apart(a, ref) and int(a["successes"]) < int(ref["successes"])]
        text.append(f"{problem}: ReLU's default start solves {rate(base)}, tanh {rate(ref)}; "
                    + (f"better than the default start: {'; '.join(f'{m} ({rate(cell[m])})' for m in better)}"
                       if better else "no other start is separated from the default")
                    + "; " + (f"still behind tanh: {'; '.join(behind)}." if behind else "none is separated from tanh."))
    by_data: dict[str, list[dict[str, str]]] = {}
    for a in rows:
        if a["method"] == BASE:
            by_data.setdefault(a["problem"].split()[0], []).append(a)
    for data, (narrow, wide, *_) in ((d, v) for d, v in by_data.items() if len(v) >= 2):
        sep = "separated" if _apart(narrow, wide) else "not separated"
        text.append(f"Width, ReLU's default start on {data}: {narrow['problem']} {narrow['successes']}/{narrow['runs']}, "
                    f"{wide['problem']} {wide['successes']}/{wide['runs']} ({sep}).")
    made = FOLDER.save_verdicts(NAME, verdicts(rows) + dead_verdicts(dead))
    text.append("What keeps ReLU behind, each candidate beside its test: " + "; ".join(v.text for v in made) + ".")
    return " ".join(text)


def section() -> None:
    rows, dead = FOLDER.load_csv(f"{NAME}_answers"), FOLDER.load_csv(f"{NAME}_dead")
    flat = study.load_config(FOLDER.root / f"{NAME}.toml")
    tune = flat["compare.tune_seeds"]
    body = [
        "## Study 6b: ReLU on the tiny benchmarks, started five ways",
        "",
        f"Command: `python3 experiments/{NAME}.py` (grid: `experiments/{NAME}.toml`; numbers from "
        f"`experiments/results/{NAME}_answers.csv`, computed by `bpkit.compare` from the stored runs).",
        "",
        "Question: Study 6 found ReLU far behind the sigmoids on XOR and parity. With zero biases and 0/1 "
        "inputs a ReLU unit whose weights from the active inputs are negative outputs 0 on every pattern and "
        "gets no gradient: it is dead from the start. Is ReLU bad here, or only started badly? How often a "
        "run starts with a dead unit, or loses one, and whether those runs are the ones that fail, is counted "
        "below. Batch gradient descent, half MSE on a sigmoid output, budget "
        f"{flat['training.max_epochs']:,} epochs; every run goes on until both criteria held. Each cell's "
        f"learning rate ({', '.join(f'{v:g}' for v in flat['optimizer.learning_rate'])}) is chosen on seeds "
        f"{study.span(tune)} (`compare.tune_first`: all four there, then only the chosen one on the others); every "
        f"number is reported on the other {len(flat['seeds']) - len(tune)} seeds.",
        "",
        "Success by 40-20-40 [Wilson 95% interval], and the expected epochs to a first success with "
        "restarts [bootstrap 95%]:",
        "",
        *_table(rows, "40-20-40"),
        "",
        f"By the loss goal (half MSE <= {flat['training.goal']:g}):",
        "",
        *_table(rows, "goal"),
        "",
        "Dead hidden units (`training.measure_dead_units`: a unit whose f'(z) is 0 on every pattern, so it passes "
        "no gradient and its weights get none) at each reported run's start and end, at the learning rate chosen "
        "for 40-20-40, beside the run's success by 40-20-40 (every count from "
        f"`experiments/results/{NAME}_dead.csv`):",
        "",
        *_dead_table(dead),
        "",
        conclusion(rows, dead),
        "",
        *(f"![success, {p}](figures/{NAME}_success_{i + 1}.png)"
          for i, p in enumerate(dict.fromkeys(a["problem"] for a in rows))),
    ]
    FOLDER.write_section(NAME, "\n".join(body))


if __name__ == "__main__":
    sys.exit(FOLDER.cli(NAME, __doc__, None, run, section))
