"""Study 6b: ReLU on the tiny benchmarks, started five ways, every cell tuned alike.

    python3 experiments/relu_tiny.py [--report-only]

Runs ``experiments/relu_tiny.toml`` (XOR and parity-3, narrow and four times wider; ReLU with
LeCun's init, He's, He's with biases at 0.1, leaky ReLU, and tanh as the reference; batch GD
tuned over four learning rates) into ``results/relu_tiny.sqlite``, keeps the tuned answers in
``experiments/results/relu_tiny_answers.csv`` and writes the README section from them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bpkit import stats, study, tables, verdict

FOLDER = study.Folder(Path(__file__).resolve().parent)

NAME = "relu_tiny"


def run(args) -> None:
    FOLDER.sweep_and_answer(NAME, "ReLU on XOR and parity-3, five starts")


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
    nets: dict[str, list[str]] = {}  # data set -> its nets, narrow first
    for problem in dict.fromkeys(a["problem"] for a in rows):
        nets.setdefault(problem.split()[0], []).append(problem)
    cell = {(a["problem"], a["method"]): a for a in rows}
    made = []
    for narrow, wide, *_ in (v for v in nets.values() if len(v) >= 2):
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


def conclusion(rows: list[dict[str, str]]) -> str:
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
                    + (f"better than the default start: {', '.join(f'{m} ({rate(cell[m])})' for m in better)}"
                       if better else "no other start is separated from the default")
                    + "; " + (f"still behind tanh: {', '.join(behind)}." if behind else "none is separated from tanh."))
    by_data: dict[str, list[dict[str, str]]] = {}
    for a in rows:
        if a["method"] == BASE:
            by_data.setdefault(a["problem"].split()[0], []).append(a)
    for data, (narrow, wide, *_) in ((d, v) for d, v in by_data.items() if len(v) >= 2):
        sep = "separated" if _apart(narrow, wide) else "not separated"
        text.append(f"Width, ReLU's default start on {data}: {narrow['problem']} {narrow['successes']}/{narrow['runs']}, "
                    f"{wide['problem']} {wide['successes']}/{wide['runs']} ({sep}).")
    made = FOLDER.save_verdicts(NAME, verdicts(rows))
    text.append("What keeps ReLU behind, each candidate beside its test: " + "; ".join(v.text for v in made) + ".")
    return " ".join(text)


def section() -> None:
    rows = FOLDER.load_csv(f"{NAME}_answers")
    flat = study.load_config(FOLDER.root / f"{NAME}.toml")
    body = [
        "## Study 6b: ReLU on the tiny benchmarks, started five ways",
        "",
        f"Command: `python3 experiments/{NAME}.py` (grid: `experiments/{NAME}.toml`; numbers from "
        f"`experiments/results/{NAME}_answers.csv`, computed by `bpkit.compare` from the stored runs).",
        "",
        "Question: Study 6 found ReLU far behind the sigmoids on XOR and parity. With zero biases and 0/1 "
        "inputs a ReLU unit whose weights from the active inputs are negative outputs 0 on every pattern and "
        "gets no gradient, so a 2-2-1 net often starts with a dead hidden unit. Is ReLU bad here, or only "
        "started badly? Batch gradient descent, half MSE on a sigmoid output, "
        f"{len(flat['seeds'])} seeds, each cell at the best of the same four learning rates "
        f"({', '.join(f'{v:g}' for v in flat['optimizer.learning_rate'])}), budget "
        f"{flat['training.max_epochs']:,} epochs; every run goes on until both criteria held.",
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
        conclusion(rows),
        "",
        *(f"![success, {p}](figures/{NAME}_success_{i + 1}.png)"
          for i, p in enumerate(dict.fromkeys(a["problem"] for a in rows))),
    ]
    FOLDER.write_section(NAME, "\n".join(body))


if __name__ == "__main__":
    sys.exit(FOLDER.cli(NAME, __doc__, None, run, section))
