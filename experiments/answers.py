"""The "Answers" section on top of experiments/README.md, built from the studies' stored results.

    python3 experiments/answers.py          # seconds: reads experiments/results/, rewrites the section

Each question behind bpkit gets one row: the measured answer (counts with Wilson 95% intervals,
costs with their spread), the published figure beside it, and the study it comes from.  Nothing
here is typed by hand but the questions and the published figures (from ../shared/REFERENCES.md);
every number is read from a result file that a study's command wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cg_family as cg  # the studies this table sums up: the script's own folder is on sys.path
import moeller
import numpy as np
import online_batch as ob
import online_batch_sets as obs
import relu_tiny
import two_spirals
import why_derivative as wd

from bpkit import study, tables, verdict

FOLDER = study.Folder(Path(__file__).resolve().parent)

START, END = "<!-- answers -->", "<!-- /answers -->"


def _link(title: str, anchor: str) -> str:
    return f"[{title}](#{anchor})"


STUDY2 = _link("Study 2", "study-2-why-the-derivative")
STUDY3 = _link("Study 3", "study-3-linear-collapse")
STUDY5 = _link("Study 5", "study-5-online-vs-mini-batch-vs-batch")
STUDY5B = _link("Study 5b", "study-5b-online-vs-batch-on-real-data-sets")
STUDY6 = _link("Study 6", "study-6-the-conjugate-gradient-family")
STUDY6A = _link("Study 6a", "study-6a-two-spirals-as-published")
STUDY6B = _link("Study 6b", "study-6b-relu-on-the-tiny-benchmarks-started-five-ways")
STUDY6C = _link("Study 6c", "study-6c-moellers-claim-as-he-stated-it")


def why_derivative() -> tuple[list[list[str]], list[list[str]], list[verdict.Verdict]]:
    """Rows for "why f'" and "without it": pooled sigmoid successes per rule, and where ablated runs end."""
    rows, _ = wd.separating(FOLDER.load_csv(wd.NAME))
    ans = wd.tuned(rows)
    judged = [p for p in dict.fromkeys(r["problem"] for r in rows) if not p.startswith("digits")]
    frozen = [a for k, a in ans.items() if k[2] == "sigmoid" and k[3] == wd.RULES[2]]
    _, near = wd.link_table(rows, FOLDER.load_csv(wd.NAME + "_delta"), FOLDER.load_json(wd.NAME + "_linear"),
                            ["sigmoid"])
    need, linear = wd.verdicts(ans, near)
    ang = FOLDER.load_json(wd.NAME + "_angles")
    worst_bce_out = max(wd._deg(r["layers"][-1]) for r in ang if r["loss"] == "bce")
    first = (f"The chain rule puts it there: dC/dw = dC/da f'(z) x. Sigmoid hidden units, {', '.join(judged)}, "
             f"under squared error and cross-entropy, each cell at its best learning rate, solved by "
             f"40-20-40: {need.text}; f' frozen at 1/4 "
             f"{study.rate(sum(a.success for a in frozen), sum(a.runs for a in frozen))}.")
    second = (f"Whether the hidden layer then learns as a linear one would (every learning rate, XOR and parity-3): "
              f"{linear.text}. At a sigmoid output under cross-entropy nothing is lost: the factor cancels "
              f"(output-layer update at most {worst_bce_out:.0e} deg from the gradient).")
    return ([["Why is f'(z) in the update?", first, "The delta rule: delta = dC/da f'(z); hidden layers keep "
              "f'(z) whatever the loss (../shared/REFERENCES.md)", STUDY2]],
            [["What happens without it, or with a constant?", second, "A constant derivative gives every "
              "weight the same sensitivity: the update is no longer the gradient", STUDY2]], [need, linear])


def linear_collapse() -> list[list[str]]:
    res = FOLDER.load_json("linear_collapse")
    xor = [r for r in res["depth"] if r["data"] == "xor"]
    depths = sorted({r["depth"] for r in xor})
    gap = max(abs(r["half_mse"] - r["least_squares_half_mse"]) for r in xor)
    product = max(r["max_abs_net_minus_product"] for r in res["depth"])
    text = (f"Yes. Linear nets of depth {depths[0]}-{depths[-1]} on XOR all end at half MSE "
            f"{np.median([r['half_mse'] for r in xor]):.3f} (MSE 0.25), the least-squares optimum, to "
            f"{gap:.0e}; each trained net equals its multiplied-out affine map to {product:.0e}. Depth changes "
            f"how they learn (plateaus from small init), not what.")
    return [["Do linear layers collapse?", text, "One linear map; XOR's best MSE 0.25; plateaus, then sudden "
             "drops (Saxe et al. 2013)", STUDY3]]


def online_batch() -> tuple[list[verdict.Verdict], list[list[str]]]:
    res = FOLDER.load_json("online_batch")
    cell = {(c["data"], c["method"]): c for c in res["redundancy"]}

    def num(v: float) -> str:
        return f"{v:.1f}" if v < 100 else f"{v:,.0f}"

    def at_best(c):
        passes = [r["passes"] for r in c["runs"] if r["lr"] == c["lr"] and r["passes"] is not None]
        return f"{num(c['passes'])} [{num(min(passes))}, {num(max(passes))}]" if passes else "not reached"

    o1, b1 = cell[("digits", "online")], cell[("digits", "batch")]
    o10, b10 = cell[("digits x10", "online")], cell[("digits x10", "batch")]
    loose = ob.redundancy_verdicts(res["redundancy"], ob.GOAL)
    online, batch = loose["online"], loose["batch"]
    sets = FOLDER.load_json(obs.NAME)
    counted = obs.tallies(obs.verdicts(sets))
    text = (f"Online, on digits: passes over the data to half MSE <= {ob.GOAL} (median [range over "
            f"{len(o1['runs']) // len({r['lr'] for r in o1['runs']})} seeds]), online {at_best(o1)} against batch "
            f"{at_best(b1)}, {b1['passes'] / o1['passes']:.0f}x; with every example copied 10 times, online "
            f"{at_best(o10)}, batch {at_best(b10)}, {b10['passes'] / o10['passes']:.0f}x (batch: the same epochs, each "
            f"{b10['epoch_seconds'] / b1['epoch_seconds']:.1f}x slower in wall time). Against LeCun's figures: "
            f"{online.text}; {batch.text}. At the tighter goal, half MSE <= {ob.TIGHT:g}: "
            f"{'; '.join(ob.tight_said(res))}. On FANN's real sets and digits, each method tuned on other seeds "
            f"({STUDY5B}; test loss on the regression sets): "
            f"{'; '.join(v.text for v in counted)}.")
    tight = ob.redundancy_verdicts(res["redundancy_tight"], ob.TIGHT).values()  # their texts are in tight_said's
    return [online, batch, *tight, *counted], [["Online or batch?", text, "Online is usually much faster on redundant data; 10 copies make batch "
             "10x slower, online unaffected (LeCun et al. 1998); often orders of magnitude (Wilson & Martinez "
             "2003)", f"{STUDY5}, {STUDY5B}"]]


def _speedup(r: dict) -> str:
    if r["at_least"]:
        return f"more than {float(r['at_least']):.0f}x (BP never reached it)"
    return f"{float(r['speedup']):.1f}x [{float(r['lo']):.1f}, {float(r['hi']):.1f}]"


def optimizers() -> tuple[list[verdict.Verdict], list[list[str]]]:
    rows = FOLDER.load_csv("cg_family_answers")
    wins = cg.separated_wins(FOLDER.load_csv("cg_family_ratios"))
    acts = list(dict.fromkeys(a["activation"] for a in rows))
    best, level, _ = cg.reliability(rows, "40-20-40", FOLDER.load_csv("cg_family_paired"))
    cheap = sorted(wins, key=lambda m: -wins[m][0])[:3]
    act = {a: cg.pooled(rows, activation=a, criterion="40-20-40") for a in acts}
    ratios = FOLDER.load_csv("moeller_ratios")
    scg = {(r["protocol"], r["problem"], r["criterion"]): r for r in ratios}
    scg_text = ". ".join(
        f"{protocol} protocol: " + "; ".join(f"{p.split()[0]} {_speedup(scg[(protocol, p, '40-20-40')])} loose, "
                                             f"{_speedup(scg[(protocol, p, 'goal')])} tight"
                                             for p in dict.fromkeys(p for q, p, _ in scg if q == protocol))
        for protocol in dict.fromkeys(q for q, _, _ in scg))
    spirals = [a for a in FOLDER.load_csv("two_spirals_answers") if a["criterion"] == "40-20-40"]
    sp = "; ".join(f"{a['method']} {a['successes']}/{a['runs']}" for a in spirals)
    budget = study.load_config(FOLDER.root / "two_spirals.toml")["training.max_epochs"]
    spiral_verdicts = two_spirals.verdicts(spirals, budget)
    ranking = verdict.tally("the published ranking RPROP < quickprop < BP, pair by pair on expected epochs with "
                            "restarts", [v for v in spiral_verdicts if v.rule == "order"])
    never = [v for v in spiral_verdicts if v.rule == "matches"]  # a published method that never succeeded
    relu = FOLDER.load_csv("relu_tiny_answers")
    narrow = [v[0] for v in relu_tiny.nets(a["problem"] for a in relu).values()]  # the nets ReLU trails on
    causes = relu_tiny.verdicts(relu) + relu_tiny.dead_verdicts(FOLDER.load_csv("relu_tiny_dead"), narrow)
    claims = [verdict.tally(f"Moeller's at least 10x, {protocol} protocol, per problem and criterion",
                            [moeller.claim(r) for r in ratios if r["protocol"] == protocol])
              for protocol in dict.fromkeys(r["protocol"] for r in ratios)]
    lbfgs = cg.lbfgs_verdicts(FOLDER.load_csv("cg_family_lbfgs"))
    flat = study.load_config(FOLDER.root / f"{cg.NAME}.toml")
    held = [s for s in flat["seeds"] if s not in flat["compare.tune_seeds"]]
    best_text = (f"On XOR, parity and the encoders, every method given {rows[0]['budget']} settings and "
                 f"{flat['training.max_cu']:,.0f} cu a run, 40-20-40 on {len(held)} held-out seeds pooled over "
                 f"problems and activations: {cg.leaders_text(rows, '40-20-40', best, level)}"
                 f". Cheapest (or within the interval of the cheapest) in most of the "
                 f"{wins[cheap[0]][1]} (problem, criterion, activation) cells: "
                 f"{', '.join(f'{m} ({wins[m][0]})' for m in cheap)}. Hidden units over all methods: "
                 f"{', '.join(f'{a} {study.rate(*act[a])}' for a in acts)}. L-BFGS, {lbfgs[0].text}.")
    scg_said = (f"SCG over BP with momentum, in cu with restarts [paired bootstrap 95%], {scg_text}. "
                f"{'; '.join(c.text for c in claims)}.")
    spiral_said = (f"Each method as Study 6a runs it, within {budget:,} epochs and equal cu: {sp} held-out runs "
                   f"solved; {ranking.text}" + "".join(f"; {v.text}" for v in never) + ".")
    relu_said = f"On the narrow nets, each candidate beside its test: {'; '.join(v.text for v in causes)}."
    return [*causes, *claims, ranking, *never, *lbfgs], [
        ["Which optimizer learns best with which activation?", best_text,
         "PR or HS the best CG betas (JetNet); PR CG best for small problems (LeCun et al. 1998)", STUDY6],
        ["Is SCG at least 10x faster than BP (Moeller 1993)?", scg_said,
         "SCG at least 10x faster than BP, more as the criterion tightens (Moeller 1993)", STUDY6C],
        ["Two spirals: does the published ranking hold?", spiral_said,
         "RPROP about 6,000 epochs < quickprop about 8,000 < BP about 20,000", STUDY6A],
        ["Why is ReLU behind on the tiny benchmarks?", relu_said, "-", STUDY6B]]


def section() -> str:
    q1, q2, made = why_derivative()
    (ob_made, q4), (opt_made, q5) = online_batch(), optimizers()
    rows = q1 + q2 + linear_collapse() + q4 + q5
    FOLDER.save_verdicts("answers", made + ob_made + opt_made)
    return "\n".join([
        "## Answers",
        "",
        "Each question behind bpkit, answered from the studies' stored runs (`python3 experiments/answers.py` "
        "rebuilds this table; every number comes from a file under `experiments/results/`). Success counts carry Wilson 95% "
        "intervals; an answer is only as strong as its interval.",
        "",
        tables.Table("answers", ["question", "measured", "published", "study"], rows).markdown(),
    ])


def write(text: str) -> None:
    readme = FOLDER.readme.read_text()
    block = f"{START}\n{text}\n{END}"
    if START in readme:
        readme = readme[: readme.index(START)] + block + readme[readme.index(END) + len(END):]
    else:  # after the list of studies, before the first study's section
        at = readme.index("<!-- study:")
        readme = readme[:at] + block + "\n\n" + readme[at:]
    from bpkit import report

    report.write_text(FOLDER.readme, readme)


def main() -> int:
    text = section()
    write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
