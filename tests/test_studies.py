"""The studies' own computations, checked cheaply (the studies themselves run as scripts)."""

import importlib.util
import math
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpkit import MLP

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    """A study script as a module.  A study may import a sibling script (``import why_derivative``),
    as Python finds it when the study runs from its own folder; so does this, for that one import."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    return module


def test_linear_collapse_product_map_equals_the_deep_net():
    lc = load("linear_collapse")
    net = MLP((3, 5, 4, 2), hidden="identity", output="identity")
    p = net.init(jax.random.key(0), scheme="uniform", dtype=jnp.float64)
    x = np.asarray(jax.random.normal(jax.random.key(1), (7, 3), jnp.float64))
    w, b = lc.collapse(p)
    np.testing.assert_allclose(x @ w + b, np.asarray(net.apply(p, x)), rtol=1e-13, atol=1e-14)


def test_cg_family_pools_counts_and_names_the_methods_not_separated_from_the_cheapest():
    cg = load("cg_family")
    rows = [{"problem": p, "activation": a, "criterion": "goal", "method": m, "successes": str(k), "runs": "20"}
            for p, a, m, k in (("xor", "tanh", "SCG", 20), ("parity3", "tanh", "SCG", 5), ("xor", "relu", "SCG", 1),
                               ("xor", "tanh", "CG PR", 0))]
    assert cg.pooled(rows, method="SCG", activation="tanh") == (25, 40)
    assert cg.pooled(rows, method="SCG") == (26, 60)
    ratio = lambda m, lo: {"problem": "xor", "criterion": "goal", "activation": "tanh", "method": m,
                           "cheapest": "SCG", "ratio": "2", "lo": str(lo), "hi": "9"}
    ratios = [ratio("SCG", 1.0), ratio("CG PR", 0.8), ratio("CG FR", 1.2)]
    assert cg.best_table(ratios, "goal")[2] == "| xor | **SCG**; not separated: CG PR |"
    assert cg.separated_wins(ratios) == {"SCG": (1, 1), "CG PR": (1, 1), "CG FR": (0, 1)}


def test_lbfgs_failures_are_counted_by_what_ended_them_and_precision_judged_by_its_rule():
    cg = load("cg_family")
    row = lambda dtype, ok, ended, g: {"dtype": dtype, "success": str(ok), "ended": ended, "grad_norm": str(g)}
    rows = [row("float32", 1, "goal", 1e-3), row("float32", 0, "line_search_failed", 1e-6),
            row("float32", 0, "line_search_failed", 0.2), row("float32", 0, "max_epochs", 1e-2),
            row("float32", 0, "line_search_failed", 5e-5)] + [row("float64", 1, "goal", 1e-3)] * 5
    assert cg.lbfgs_counts(rows, "float32") == {"runs": 5, "solved": 1, "line_search_failed, stationary": 2,
                                                "line_search_failed, moving": 1, "max_epochs": 1}
    (v,) = cg.lbfgs_verdicts(rows)
    assert v.rule == "cause" and v.inputs["test"]["word"] == "not separated"  # 5/5 against 1/5: intervals overlap
    many = [dict(r) for r in rows for _ in range(8)]
    assert cg.lbfgs_verdicts(many)[0].word == "supported"  # 40/40 against 8/40


def test_why_derivative_leaves_out_a_problem_no_run_solved_and_keeps_digits():
    wd = load("why_derivative")
    row = lambda p, solved: {"problem": p, "solved": solved}
    rows = [row("xor", "True"), row("xor", "False"), row("spirals", "False"), row("spirals", "False"),
            row("digits", "")]
    kept, dropped = wd.separating(rows)
    assert dropped == {"spirals": 2} and [r["problem"] for r in kept] == ["xor", "xor", "digits"]
    assert wd.separating(rows[:2] + rows[4:])[1] == {}  # nothing to leave out


def test_cross_entropy_sigmoid_output_layer_ignores_the_ablation():
    # The study's claim, checked on a net with hidden layers: the output layer's update is the
    # gradient under bce for both ablations, and is not under mse.
    from bpkit import analysis, backprop

    net = MLP((3, 4, 4, 2), hidden="sigmoid", output="sigmoid")
    p = net.init(jax.random.key(0), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (9, 3), jnp.float64)
    y = (jax.random.uniform(jax.random.key(2), (9, 2)) > 0.5).astype(jnp.float64)
    for rule in ("no_derivative", "constant_derivative"):
        bce = analysis.layer_cosines(backprop(net, p, x, y, "bce"), backprop(net, p, x, y, "bce", rule))
        mse = analysis.layer_cosines(backprop(net, p, x, y, "mse"), backprop(net, p, x, y, "mse", rule))
        assert abs(bce[-1] - 1.0) < 1e-14 and min(bce[:-1]) < 1 - 1e-6
        assert mse[-1] < 1 - 1e-6


def test_saturated_fraction_counts_units_with_a_vanishing_derivative():
    sat = load("saturation")
    net = MLP((1, 2, 1), hidden="sigmoid", output="sigmoid")
    p = [{"w": jnp.array([[1.0, 50.0]]), "b": jnp.zeros(2)}, {"w": jnp.zeros((2, 1)), "b": jnp.zeros(1)}]
    x = jnp.array([[1.0], [-1.0]])
    hidden, out = sat.saturated_fraction(net, p, x)
    assert hidden == 0.5 and out == 0.0  # the 50x unit is saturated on both examples, the other on neither


WHY_GRID = """
name = "why_small"
seeds = [0, 1, 2, 3]
[data]
name = "xor"
[network]
hidden = [2]
activation = "sigmoid"
output = "sigmoid"
[optimizer]
name = "sgd"
learning_rate = [1.0, 3.0, 10.0]
[training]
batch_size = "full"
stall_epochs = 0
max_epochs = 1000
criterion_40_20_40 = true
[[axis.problem]]
label = "xor"
[[axis.loss]]
label = "mse"
loss = "mse"
[[axis.rule]]
label = "exact"
source = "exact"
[[axis.rule]]
label = "omitted"
source = "no_derivative"
"""


def test_why_derivative_tunes_its_csv_rows_as_the_report_tunes_the_stored_curves(tmp_path, monkeypatch):
    # Study 2 keeps no curves: it judges each run as it finishes and tunes its CSV rows with
    # compare.tune. The report judges a store's curves. Both must give the same answers.
    from bpkit import compare, study
    from bpkit import config as cfg
    from bpkit.store import Store
    from bpkit.sweep import run_sweep

    wd = load("why_derivative")
    folder = study.Folder(tmp_path)
    (tmp_path / "g.toml").write_text(WHY_GRID)
    flat = cfg.load(tmp_path / "g.toml")
    folder.save_csv("rows", study.run_grid(flat, wd.summarise, progress=False))
    mine = wd.tuned(folder.load_csv("rows"))
    store = Store(tmp_path / "s.sqlite")
    run_sweep(flat, store, chunk_size=12, progress=False)  # run_grid's chunk: one group's 12 runs
    theirs = compare.answers(store.runs(order="written")[0])
    assert len(mine) == len(theirs) == 2
    assert any(a.success for a in theirs) and any(a.success < a.runs for a in theirs)  # the check has teeth
    for a in theirs:
        b = mine[(*a.problem.split("/"), a.activation, a.method)]
        assert (b.success, b.runs, b.tuned, b.budget, b.chosen.setting) == (a.success, a.runs, a.tuned, a.budget,
                                                                              a.chosen.setting)
        assert b.success_ci == a.success_ci and b.cost_cu == a.cost_cu and b.cost_epochs == a.cost_epochs
        assert [t.epochs for t in b.chosen.attempts] == [t.epochs for t in a.chosen.attempts]


def test_why_derivative_identical_compares_runs_and_leaves_out_diverged_pairs():
    wd = load("why_derivative")
    row = lambda loss, seed, epochs, stop: {"problem": "p", "activation": "relu", "learning_rate": "1.0",
                                            "seed": seed, "loss": loss, "rule": "omitted", "epochs": epochs,
                                            "solved_epochs": epochs, "stop_reason": stop, "test_acc": ""}
    rows = [row("mse", 0, "7", "40-20-40"), row("bce", 0, "7", "40-20-40"),
            row("mse", 1, "10", "diverged"), row("bce", 1, "9", "diverged")]
    assert wd.identical(rows, {"loss": "mse"}, {"loss": "bce"}) is True
    rows[1]["epochs"] = "8"
    assert wd.identical(rows, {"loss": "mse"}, {"loss": "bce"}) is False
    assert wd.identical(rows, {"loss": "mse"}, {"loss": "softmax_ce"}) is None


def test_saturation_draws_a_curve_met_twice_once_under_both_labels():
    sat = load("saturation")
    curve = lambda scale: [scale * v for v in (0.3, 0.2, 0.1)]
    res = {"targets": [{"targets": "0/1", "loss_curve": curve(1.0)}, {"targets": "0.1/0.9", "loss_curve": curve(2.0)}],
           "inputs": [{"inputs": "raw", "lr": 0.5, "loss_curve": curve(3.0)},
                      {"inputs": "standardised", "lr": 0.5, "loss_curve": curve(1.0 + 1e-7)},
                      {"inputs": "standardised", "lr": 2.0, "loss_curve": curve(5.0)}]}
    out = sat._right_panel_curves(res)
    assert list(out) == ["targets: 0.1/0.9", "inputs: raw", "targets: 0/1 = inputs: standardised"]
    np.testing.assert_array_equal(out["inputs: raw"], curve(3.0))


def test_answers_on_top_of_the_experiments_readme_are_generated_from_the_stored_results():
    # Every number of the Answers table comes from a result file: rebuilding it from the committed
    # results gives the committed section, byte for byte.
    answers = load("answers")
    text = answers.section()
    readme = (ROOT / "experiments" / "README.md").read_text()
    committed = readme.split(answers.START + "\n")[1].split("\n" + answers.END)[0]
    assert committed == text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| question")]
    assert len(rows) == 8 and "nan" not in text  # one row per question


def test_moeller_speedup_is_the_ratio_of_restart_costs_and_a_bound_where_bp_never_succeeds():
    from bpkit import compare

    m = load("moeller")

    def cell(problem, method, crit, cus, wins):
        return compare.Cell(problem, method, "sigmoid", (), crit, tuple(range(len(cus))),
                            tuple(compare.Attempt(w, 1, float(c)) for c, w in zip(cus, wins,
                                                                                  strict=True)), ("same",), ())

    cells = []
    for bp, scg in m.PROTOCOLS.values():  # the same cells under each protocol's row names
        for crit in m.CRITERIA:  # by hand: BP (10+20+30)/2 = 30 cu a success, SCG (2+4+6)/3 = 4: 7.5x
            cells += [cell("p", bp, crit, [10, 20, 30], [True, False, True]), cell("p", scg, crit, [2, 4, 6],
                                                                                   [True] * 3)]
        cells += [cell("q", bp, c, [300, 300, 310], [False] * 3) for c in m.CRITERIA]
        cells += [cell("q", scg, c, [3, 6, 9], [True, True, False]) for c in m.CRITERIA]  # 18/2 = 9 cu a success
    speedups = m.speedups(compare.tune(cells))
    assert sorted({r["protocol"] for r in speedups}) == sorted(m.PROTOCOLS) and len(speedups) == 2 * 2 * 2
    out = {(r["problem"], r["criterion"]): r for r in speedups if r["protocol"] == "Moeller's"}
    assert out[("p", "goal")]["speedup"] == 7.5 and out[("p", "goal")]["paired"] and out[("p",
                                                                                          "goal")]["at_least"] == ""
    assert out[("q", "40-20-40")]["at_least"] == 300 / 9  # every BP run spent >= 300 cu without a success
    from bpkit import verdict

    assert m.claim(out[("q", "40-20-40")]).word == verdict.HOLDS  # BP's bound, 33x, clears 10x
    assert m.claim({**out[("p", "goal")], "lo": 2.0, "hi": 9.9}).word == verdict.FAILS
    assert m.claim({**out[("p", "goal")], "lo": 8.0, "hi": 12.0}).word == verdict.CANNOT_TELL
    assert m.claim({**out[("q", "goal")], "at_least": 5.0}).word == verdict.CANNOT_TELL  # a bound under 10x


def test_a_figure_saved_twice_is_the_same_bytes(tmp_path):
    # A re-run study must leave its committed figures unchanged: no date, no random SVG ids.
    from bpkit import figures

    plt = figures.pyplot()
    for name in ("a", "b"):
        fig, ax = plt.subplots()
        ax.plot([0, 1, 4], label="x")
        ax.legend()
        figures.save_figure(fig, tmp_path / name)
        plt.close(fig)
    for ext in ("png", "svg"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()


def test_online_batch_counts_epochs_to_the_goal_from_the_records_within_epochs():
    # 10 examples in batches of 3 (4 batches, the last holds 1), measured 3 times an epoch: records after
    # 1, 2 and 4 batches, i.e. 3, 6 and 10 examples.  The first record at the goal gives the epochs.
    from types import SimpleNamespace

    ob = load("online_batch")
    loss = np.full((1, 4, 3), 1.0)
    res = SimpleNamespace(within=SimpleNamespace(loss=loss), history=SimpleNamespace(loss=loss[:, :, -1]))
    for (e, j), want in {(0, 0): 0.3, (0, 2): 1.0, (2, 1): 2.6}.items():
        loss[:] = 1.0
        loss[0, e, j] = ob.GOAL
        loss[0, e + 1:, :] = ob.GOAL / 2  # later records below the goal too: the first one counts
        assert ob._to_goal(res, 0, 10, 3, 3) == want
    assert ob._to_goal(res, 0, 10, 3, 1) == 4  # at epoch ends only: the third epoch's end was above the goal
    loss[:] = 1.0
    assert ob._to_goal(res, 0, 10, 3, 3) is None


def test_online_batch_counts_every_goal_from_one_run_as_each_goal_alone_would():
    # Runs on to the tighter goal meet the looser one where runs stopping there would; on 2 copies an
    # epoch is 2 passes, measured every batch of 20 (20 batches an epoch).
    from bpkit import datasets

    ob = load("online_batch")
    d = datasets.load("digits")
    x, y = d.x_train[:200], d.y_train[:200]
    run = lambda goals: ob.runs_to_goal(x, y, 20, (4.0,), 3, replicas=2, measures=20, goals=goals)
    both = run((0.3, 0.15))
    alone = [run((g,))[0] for g in (0.3, 0.15)]
    met = lambda rows: [(r["seed"], r["epochs"], r["passes"]) for r in rows]
    assert [met(rows) for rows in both] == [met(rows) for rows in alone]
    passes = [[r["passes"] for r in rows] for rows in both]
    assert all(p is not None and p == 2 * r["epochs"] for p, r in zip(passes[0], both[0], strict=True))
    assert all(a <= b for a, b in zip(*passes, strict=True))
    assert all(p * 20 == round(p * 20) for p in passes[0])  # a whole number of batches of 20 of the 200
    assert all(r["passes"] is None for r in run((1e-6,))[0])  # not within the budget


def test_online_batch_leaves_out_a_ratio_no_seed_measured_and_says_why():
    ob = load("online_batch")
    runs = lambda lr, passes: [{"seed": s, "lr": lr, "passes": passes, "epochs": passes} for s in ob.SEEDS]
    cell = lambda data, m, passes, reached: {"data": data, "method": m, "lr": 1.0, "passes": passes,
                                             "runs": runs(1.0, passes), "reached": reached, "seeds": len(ob.SEEDS),
                                             "tuning": []}
    tight = [cell("digits", "online", 4.0, 5), cell("digits x10", "online", 4.0, 5),
             cell("digits", "batch", 700.0, 5), cell("digits x10", "batch", None, 0)]
    made = ob.redundancy_verdicts(tight, ob.TIGHT)
    assert list(made) == ["online"] and made["online"].word == "agrees"
    said = ob.tight_said({"redundancy_tight": tight})
    assert said[1] == (f"batch on digits x10 reached it in 0 of {len(ob.SEEDS)} runs within its budget of "
                       f"{ob.METHODS['batch'][2]:,} passes, so its x10 / x1 is not measured")


def _sections():
    """Each generated section of experiments/README.md, the Answers table's included, by its study's name."""
    from bpkit import study

    folder = study.Folder(ROOT / "experiments")
    text = folder.readme.read_text()
    out = {"answers": text.split("<!-- answers -->")[1].split("<!-- /answers -->")[0]}
    out.update({name: folder.section_text(name) for name in study.studies(folder.root)})
    return folder, out


def test_every_comparison_and_cause_in_the_experiments_readme_is_a_stored_verdict_that_recomputes():
    # The referee's check: no section compares with a published figure or names a cause in words that no
    # rule produced, every stored verdict is in its section, and each one's rule gives it again from its inputs.
    from bpkit import verdict

    folder, sections = _sections()
    for name, text in sections.items():
        made = folder.load_verdicts(name)
        assert verdict.unproduced(text, made) == [], name
        for v in made:
            assert v.text in text, (name, v.text)
            again = verdict.recompute(v)
            assert (again.rule, again.word, again.text) == (v.rule, v.word, v.text), (name, v.text)


def test_a_claim_typed_into_a_section_is_caught():
    from bpkit import verdict

    folder, sections = _sections()
    made = folder.load_verdicts("relu_tiny")
    for typed in ("ReLU's deficit on these 2-5 unit nets is their width.",
                  "The cause is the budget, not the method.",
                  "Both successes took the same order of magnitude as the published mean.",
                  "This agrees with LeCun."):
        assert verdict.unproduced(sections["relu_tiny"] + typed, made), typed
    # A verdict's sentence edited by hand is no longer the rule's: the claim in it shows again.
    edited = sections["relu_tiny"].replace(made[0].text, made[0].text.replace("not separated", "agrees"))
    assert verdict.unproduced(edited, made)


@pytest.mark.parametrize("name", ["answers", *(line.split("#")[0].strip() for line in
                                               (ROOT / "experiments" / "studies.txt").read_text().splitlines()
                                               if line.split("#")[0].strip())])
def test_each_section_rebuilds_byte_for_byte_from_the_committed_results(tmp_path, name):
    # `--report-only` (answers.py: a plain run) on a copy of experiments/: the README, the figures and the
    # verdicts come out exactly as committed, so every word and number there follows from the result files.
    import filecmp
    import shutil
    import subprocess

    copy = tmp_path / "experiments"
    shutil.copytree(ROOT / "experiments", copy, ignore=shutil.ignore_patterns("__pycache__"))
    args = [] if name == "answers" else ["--report-only"]
    subprocess.run([sys.executable, f"{name}.py", *args], cwd=copy, check=True, capture_output=True,
                   env={**os.environ, "MPLBACKEND": "Agg"})
    assert (copy / "README.md").read_text() == (ROOT / "experiments" / "README.md").read_text()
    for sub in ("figures", "results"):
        same = filecmp.dircmp(copy / sub, ROOT / "experiments" / sub)
        assert not (same.diff_files or same.left_only), (sub, same.diff_files, same.left_only)


def _fake_train(loss_at):
    """A stand-in for online_batch_sets.train: run (seed, value)'s training loss after epoch e is
    ``loss_at(seed, value, e)`` (NaN from where it is not finite: the run stopped there, diverged); its
    test loss is twice that; it keeps no params."""
    from bpkit.loop import History, TrainResult

    def train(problem, method, arrays, pairs, epochs, max_cu=None, checkpoints=(), lanes=1):
        assert len(pairs) <= lanes and (lanes == len(method.ladder) or len(pairs) == 1)
        loss = np.array([[loss_at(s, v, e) for e in range(1, epochs + 1)] for s, v in pairs])
        ran = np.array([next((e for e in range(epochs) if not np.isfinite(row[e])), epochs) for row in loss])
        loss[~np.isfinite(loss)] = np.nan
        h = History(loss, loss, 2 * loss, np.zeros(loss.shape, int), loss, loss)
        return TrainResult({}, {}, h, ran + (ran < epochs), np.zeros(len(pairs), int), loss[:, 0], checkpoints={})
    return train


def test_online_batch_sets_chooses_each_budgets_value_over_the_whole_ladder_from_one_run_each(monkeypatch):
    ob = load("online_batch_sets")
    method = ob.METHODS["batch"]  # ladder 0.001 ... 100
    best = {10: 3.0, 40: 0.3}  # the best value moves with the budget: one run per value serves both
    loss_at = lambda s, v, e: (math.inf if v == 100.0 and e > 5 else
                               abs(math.log(v / (3.0 if e <= 10 else 0.3))) + 1 / e + 0.001 * s)
    monkeypatch.setattr(ob, "train", _fake_train(loss_at))
    group = [ob.Budget("passes", 10, 10, None), ob.Budget("time", 10, 40, None)]
    got = ob.cells(ob.Problem("x", (2,), False), method, None, group)
    for b in group:
        c = got[b]
        brute = min(method.ladder, key=lambda v: (np.mean([loss_at(s, v, b.epochs) for s in ob.TUNE_SEEDS]), v))
        assert c["value"] == brute == best[b.epochs] and not c["edge"] and c["epochs"] == b.epochs
        assert list(c["tried"]) == [f"{v:g}" for v in method.ladder] and c["tried"]["100"] is None  # diverged
        assert [r["train_loss"] for r in c["runs"]] == [loss_at(s, brute, b.epochs) for s in ob.REPORT_SEEDS]
        assert [r["test_loss"] for r in c["runs"]] == [2 * loss_at(s, brute, b.epochs) for s in ob.REPORT_SEEDS]
        assert c["epochs_run"] == [b.epochs] * len(ob.REPORT_SEEDS)
    monkeypatch.setattr(ob, "train", _fake_train(lambda s, v, e: -v))  # better the larger: the ladder's end
    assert all(c["value"] == 100.0 and c["edge"] for c in ob.cells(ob.Problem("x", (2,), False), method, None,
                                                                      group).values())


def test_online_batch_sets_counts_the_plateau_at_an_edge_choice():
    ob = load("online_batch_sets")
    tried = {"0.001": 1.000, "0.003": 1.005, "0.01": 1.009, "0.03": 1.02, "0.1": None}
    assert ob.plateau(tried, 0.001) == 3  # 1.02 is 2% off
    assert ob.plateau({"0.01": 2.0, "0.1": 1.0, "1": 1.0}, 1.0) == 2  # from the upper end inward
    assert ob.plateau({"0.01": None, "0.1": 1.0}, 0.01) == 0  # a diverged edge: no plateau
    edge = {"value": 0.001, "edge": True, "tried": tried}
    assert ob._setting("online", edge) == "rate 0.001 (edge; 3 rungs within 1% of it)"
    assert ob._setting("online", {**edge, "tried": {"0.001": 1.0, "0.003": 2.0}}) == "rate 0.001 (edge)"


def test_online_batch_sets_budgets_equal_passes_and_online_time():
    ob = load("online_batch_sets")
    timing = {"epoch": {m: 0.002 for m in ob.METHODS} | {"online": 0.01}, "cu": {m: 0.0005 for m in ob.METHODS}}
    online, batch, cg = (ob.budgets(m, timing) for m in ("online", "batch", "batch PR+ CG"))
    assert [(b.kind, b.epochs, b.max_cu) for b in online] == [("passes", p, None) for p in ob.PASSES]
    assert [(b.kind, b.passes, b.epochs, b.max_cu) for b in batch] == [  # and 0.8 and 1.2 times its time
        x for p in ob.PASSES for x in (("passes", p, p, None), ("time", p, 5 * p, None), ("time x0.8", p, 4 * p, None),
                                       ("time x1.2", p, 6 * p, None))]
    assert [b.kind for b in ob.budgets("mini-batch 16", timing)] == ["passes", "time"] * len(ob.PASSES)
    # CG at online's time: 0.01 p s over 0.0005 s per cu, a cu cap, and epochs that cannot bind first
    assert [(b.kind, b.passes, b.epochs, b.max_cu) for b in cg] == [
        x for p in ob.PASSES for x in (("passes", p, 3 * p, 3.0 * p), ("time", p, math.ceil(20 * p / 3) + 1, 20.0 * p))]


def test_online_batch_sets_judges_batch_against_online_by_its_rule():
    ob = load("online_batch_sets")
    runs = lambda *errors: [{"train_loss": 0.1, "test_loss": 0.2, "test_error": e} for e in errors]
    cell = lambda *errors: {"runs": runs(*errors)}
    low, high = cell(0.1, 0.12, 0.1, 0.11), cell(0.5, 0.52, 0.51, 0.5)
    at = lambda x12: {"passes": {"batch": high, "online": cell(0.1, 0.11, 0.1, 0.12)},
                      "time": {"batch": low, "online": cell(0.1, 0.11, 0.1, 0.12)},
                      "time x0.8": {"batch": low}, "time x1.2": {"batch": x12}}
    results = {"passes": [10], "sets": {"digits 64-32-10": {"budgets": {"10": at(low)}},
                                        "thyroid 21-16-8-3": {"budgets": {"10": at(high)}}}}
    made = ob.verdicts(results)
    assert list(made) == ["10 passes", "online's time for 10 passes"]
    assert [v.word for v in made["10 passes"]] == ["higher", "higher"]
    # At equal time batch is judged at x0.8, x1 and x1.2 of its budget: one word only where all three agree.
    steady, moved = made["online's time for 10 passes"]
    assert [m["word"] for m in steady.inputs["members"]] == ["not separated"] * 3 and steady.word == "not separated"
    assert [m["word"] for m in moved.inputs["members"]] == ["not separated", "not separated", "higher"]
    assert moved.word == "mixed" and "x1.2" in moved.inputs["members"][2]["inputs"]["quantity"]
    assert [t.word for t in ob.tallies(made)] == ["higher", "mixed"]


def _paired(cg, half, seeds, crit, a_only, b_only):
    """Stored McNemar rows of A against B and B against A with the given discordant counts."""
    from bpkit import stats

    test = stats.mcnemar([True] * a_only + [False] * b_only, [False] * a_only + [True] * b_only)
    row = lambda m, v, x, y: {"half": half, "seeds": seeds, "criterion": crit, "method": m, "versus": v,
                              "starts": str(a_only + b_only), "only_method": str(x), "only_versus": str(y),
                              "p": repr(test.p)}
    return [row("A", "B", a_only, b_only), row("B", "A", b_only, a_only)]


def test_cg_family_reviewers_check_finds_a_method_separated_ahead_on_one_half():
    cg = load("cg_family")
    row = lambda m, k, n, **kw: {"problem": "xor", "activation": "tanh", "method": m, "successes": str(k),
                                 "runs": str(n), **kw}
    crits = ("40-20-40", "goal")
    rows = [row(m, k, 100, criterion=c) for c in crits for m, k in (("A", 90), ("B", 40))]
    half = lambda h, seeds, ka, kb: [row(m, k, 50, criterion=c, half=h, seeds=seeds)
                                     for c in crits for m, k in (("A", ka), ("B", kb))]
    held = half("first", "10-34", 45, 20) + half("second", "35-59", 45, 20)
    paired = [r for c in crits for r in (_paired(cg, "all", "10-59", c, 50, 0) + _paired(cg, "first", "10-34", c, 25, 0)
                                         + _paired(cg, "second", "35-59", c, 25, 0))]
    text = cg.halves_text(rows, held, paired)
    assert "1 of the 1 methods stated behind it still separated" in text and "stated behind: 0" in text
    flipped = half("first", "10-34", 45, 20) + half("second", "35-59", 10, 45)  # B ahead of A on one half
    paired = [r for c in crits for r in (_paired(cg, "all", "10-59", c, 50, 0) + _paired(cg, "first", "10-34", c, 25, 0)
                                         + _paired(cg, "second", "35-59", c, 0, 35))]
    assert "stated behind: 2" in cg.halves_text(rows, flipped, paired)


def test_cg_family_pairs_runs_by_start_and_counts_discordant_pairs_by_brute_force():
    from types import SimpleNamespace as NS

    from bpkit import compare

    cg = load("cg_family")
    rng = np.random.default_rng(0)
    seeds = tuple(range(10, 20))
    won = {(m, p): rng.random(len(seeds)) < 0.5 for m in ("A", "B") for p in ("xor", "parity3")}

    def answer(m, p, crit, init="lecun"):
        attempts = tuple(compare.Attempt(bool(w), 1, 1.0) for w in won[m, p])
        return NS(method=m, problem=p, activation="tanh", criterion=crit,
                  chosen=NS(seeds=seeds, attempts=attempts, init=(init,)))

    answers = [answer(m, p, c) for m in ("A", "B") for p in ("xor", "parity3") for c in cg.CRITERIA]
    got = {(r["half"], r["criterion"], r["method"]): r for r in cg.paired_rows(answers)}
    for half, keep in (("all", slice(0, 10)), ("first", slice(0, 5)), ("second", slice(5, 10))):
        a = np.concatenate([won["A", p][keep] for p in ("xor", "parity3")])
        b = np.concatenate([won["B", p][keep] for p in ("xor", "parity3")])
        r = got[half, "goal", "A"]
        assert (r["versus"], r["starts"], r["only_method"], r["only_versus"]) == (
            "B", len(a), int(np.sum(a & ~b)), int(np.sum(~a & b)))
    other = [answer("A", "xor", "goal"), answer("B", "xor", "goal", init="glorot")]  # other weights: no pairs
    assert all(r["starts"] == 0 for r in cg.paired_rows(other) if r["criterion"] == "goal")


def test_cg_family_counts_cells_where_the_papers_cost_moves_the_cheapest_method():
    cg = load("cg_family")
    row = lambda p, m, restarts, cut, mean: {"problem": p, "criterion": "goal", "activation": "tanh", "method": m,
                                             "restarts": str(restarts), "cutoff_cost": str(cut), "cutoff": "1",
                                             "mean_success": str(mean), "failed": "0"}
    # xor: A cheapest with restarts, B by its successes alone (rare but quick); parity: A by every cost;
    # encoder: nobody succeeded (no cell).
    costs = [row("xor", "A", 100, 90, 80), row("xor", "B", 900, 95, 10), row("parity", "A", 50, 50, 50),
             row("parity", "B", 60, 60, 60), row("encoder", "A", "inf", "inf", "nan"),
             row("encoder", "B", "inf", "inf", "nan")]
    assert cg.cheapest_by(costs, "mean_success") == {("xor", "goal", "tanh"): "B", ("parity", "goal", "tanh"): "A"}
    text = cg.papers_cost_text(costs)
    assert "at the best cutoff, another method is cheapest in 0 of the 2 cells" in text
    assert ("by the successes alone, another method is cheapest in 1 of the 2 cells (cheapest counted so: A in 1, "
            "B in 1)") in text


def test_cg_family_names_the_method_with_most_targets_met_within_a_budget():
    cg = load("cg_family")
    ecdf = [{"activation": "tanh", "method": m, "budget": str(b), "fraction": str(f)}
            for m, curve in (("SCG", ((10, 0.1), (100, 0.5), (1000, 0.6))), ("BP", ((10, 0.2), (100, 0.3),
                                                                                   (1000, 0.9))))
            for b, f in curve]
    assert cg.ecdf_at(ecdf, 100) == {("tanh", "SCG"): 0.5, ("tanh", "BP"): 0.3}
    text = cg.ecdf_text(ecdf, 1000)
    assert "within 100 cu, tanh: SCG 50%" in text and "within 1,000 cu, tanh: BP 90%" in text


def test_online_batch_chooses_the_rate_on_the_tuning_seeds_and_reports_the_others():
    ob = load("online_batch")
    row = lambda seed, lr, passes: {"seed": seed, "lr": lr, "passes": passes, "epochs": passes}
    # On the tuning seeds lr 1 is faster; on the reported seeds lr 2 would be: the held-out choice is 1.
    rows = ([row(s, 1.0, 3.0) for s in ob.TUNE_SEEDS] + [row(s, 2.0, 5.0) for s in ob.TUNE_SEEDS]
            + [row(s, 1.0, 4.0) for s in ob.SEEDS] + [row(s, 2.0, 2.0) for s in ob.SEEDS])
    got = ob.choose(rows)
    assert got["lr"] == 1.0 and got["passes"] == 4.0 and got["seeds"] == len(ob.SEEDS)
    assert {r["seed"] for r in got["runs"]} == set(ob.SEEDS)
    assert {r["seed"] for r in got["tuning"]} == set(ob.TUNE_SEEDS)
