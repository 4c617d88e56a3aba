"""Both criteria from one run, and fair comparisons from stored runs (bpkit.compare, bpkit.report).

The loop's record of when each criterion first held is checked against a brute-force scan of
its own history; the report's reading of stored curves against the loop's record; tuning,
edges and pairing against hand-built runs; the report's tables against counts made here.
"""

import csv
import math
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from grids import MEASURED

from bpkit import MLP, compare, datasets, engine, report, stats, sweep, tables
from bpkit import config as cfg
from bpkit.spec import Run
from bpkit.stopping import StopRules
from bpkit.store import Store
from bpkit.sweep import run_sweep
from bpkit.training import train


def _xor():
    d = datasets.load("xor")
    return jnp.asarray(d.x_train, jnp.float32), jnp.asarray(d.y_train, jnp.float32)


def _first(mask) -> int:
    """1-based epoch of the first True, 0 if none (brute force)."""
    for i, m in enumerate(mask):
        if m:
            return i + 1
    return 0


@pytest.mark.parametrize("stop_on", ["first", "all"])
def test_met_records_the_first_epoch_of_each_criterion(stop_on):
    net, (x, y) = MLP((2, 2, 1), "tanh"), _xor()
    params = net.init(jax.random.key(1), dtype=jnp.float32)
    goal = np.float32(0.004)
    rules = StopRules(max_epochs=3000, goal=float(goal), criterion_40_20_40=True, stop_on=stop_on, stall_epochs=None)
    r = train(net, optax.sgd(2.0), params, x, y, key=jax.random.key(2), batch_size=1, rules=rules)
    e = int(r.epochs)
    loss, wrong = np.asarray(r.history.loss[:e]), np.asarray(r.history.wrong[:e])
    met = [int(v) for v in r.met]
    assert met == [_first(loss <= goal), _first(wrong == 0)]
    if stop_on == "first":
        assert e == min(m for m in met if m) and r.reason in ("goal", "40-20-40")
    else:  # on until both held: 40-20-40 (the looser) first, then the goal ends the run
        assert 0 < met[1] < met[0] == e and r.reason == "goal"


def test_stop_on_all_with_one_criterion_is_stop_on_first():
    net, (x, y) = MLP((2, 2, 1), "tanh"), _xor()
    params = net.init(jax.random.key(1), dtype=jnp.float32)
    runs = [train(net, optax.sgd(2.0), params, x, y, key=jax.random.key(2), batch_size=1,
                  rules=StopRules(max_epochs=3000, criterion_40_20_40=True, stop_on=s)) for s in ("first", "all")]
    assert int(runs[0].epochs) == int(runs[1].epochs) and runs[0].reason == runs[1].reason == "40-20-40"
    np.testing.assert_array_equal(runs[0].history.loss, runs[1].history.loss)
    with pytest.raises(ValueError, match="stop_on"):
        StopRules(stop_on="both")


SWEEP = textwrap.dedent("""
    name = "both"
    seeds = [0, 1, 2, 3, 4, 5]
    [data]
    name = "xor"
    [network]
    hidden = [2]
    activation = ["tanh", "sigmoid"]
    [training]
    max_epochs = 600
    goal = 0.01
    criterion_40_20_40 = true
    stop_on = "all"
    [[axis.method]]
    label = "online"
    optimizer.name = "sgd"
    optimizer.learning_rate = [0.5, 2.0, 4.0]
    training.batch_size = 1
    [[axis.method]]
    label = "SCG"
    optimizer.name = "scg"
""")


@pytest.fixture(scope="module")
def both_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("both") / "both.sqlite"
    flat = cfg.validate({**cfg.load(_write(path.parent / "c.toml", SWEEP))})
    loop = {}
    for chunk in engine.run_grid(cfg.expand(flat)):
        for run, out in chunk:
            loop[run.label, run.network.activation, run.optimizer.learning_rate, run.seed] = out
    with Store(path) as store:
        sweep.run_sweep(flat, store, progress=False)
        runs, _ = store.runs(order="written")
    return path, runs, loop


def _write(p, text):
    p.write_text(text)
    return p


def test_the_stored_curves_give_the_loops_first_epochs(both_store):
    _, runs, loop = both_store
    assert len(runs) == 48
    checked = 0
    for r in runs:
        c = r["config"]
        out = loop[c["label"], c["network.activation"], c["optimizer.learning_rate"], r["seed"]]
        for crit, key in (("goal", "goal_epoch"), ("40-20-40", "c40_epoch")):
            a = compare.attempt(r, crit)
            first = getattr(out, key)
            assert a.success == (first > 0)
            assert a.epochs == (first if a.success else r["epochs"])
            cu = out.curves["loss_evals"] + 3 * out.curves["grad_evals"]
            assert a.cu == (float(cu[first - 1]) if a.success else r["cu"])
            checked += a.success
    assert checked > 20  # most runs meet something: the comparison is not vacuous


def test_slim_runs_give_the_same_answers_from_a_fraction_of_the_curves(both_store):
    path, runs, _ = both_store
    with Store(path, create=False) as store:
        slim, _ = store.runs(order="written", each=compare.slim)
    assert [compare.cells([r]) for r in slim] == [compare.cells([r]) for r in runs]
    assert compare.answers(slim) == compare.answers(runs)
    full = sum(len(v) for r in runs for v in r["curves"].values())
    kept = sum(len(v) for r in slim for v in r["curves"].values())
    assert 0 < kept < full / 2  # runs that met a criterion keep a prefix; the others keep nothing


def _run(run_id, label, act, lr, seed, loss, wrong, cu_per_epoch=3.0, goal=0.01):
    n = len(loss)
    return {"run_id": run_id, "config_hash": f"{label}{act}{lr}", "seed": seed, "epochs": n, "cu": cu_per_epoch * n,
            "config": {"label": f"p/{label}", "network.activation": act, "optimizer.learning_rate": lr,
                       "training.goal": goal, "training.criterion_40_20_40": True, "dtype": "float64",
                       "training.stop_on": "all", "network.init": "lecun_normal"},
            "curves": {"loss": loss, "wrong": wrong, "loss_evals": [0.0] * n,
                       "grad_evals": [cu_per_epoch / 3 * (i + 1) for i in range(n)]},
            "train_loss": loss[-1], "test_acc": None}


def test_tuning_picks_the_lowest_cost_with_restarts_and_flags_the_edge():
    # lr 0.1: 2 of 2 succeed at epochs 8 and 8 (cost 24 cu each) -> 24 per success.
    # lr 1.0: 2 of 2 succeed, at epochs 1 and 9 -> 15 per success: the cheapest.
    # lr 9.0: 1 of 2, at epoch 1 (3 cu) and a failure of 10 epochs (30 cu) -> 33 per success.
    hit = lambda at, n=10: ([1.0] * (at - 1) + [0.001] * (n - at + 1), [1] * (at - 1) + [0] * (n - at + 1))
    never = ([1.0] * 10, [1] * 10)
    runs = [_run("a0", "m", "tanh", 0.1, 0, *hit(8)), _run("a1", "m", "tanh", 0.1, 1, *hit(8)),
            _run("b0", "m", "tanh", 1.0, 0, *hit(1)), _run("b1", "m", "tanh", 1.0, 1, *hit(9)),
            _run("c0", "m", "tanh", 9.0, 0, *hit(1)), _run("c1", "m", "tanh", 9.0, 1, *never)]
    answers = {a.criterion: a for a in compare.answers(runs)}
    assert set(answers) == {"goal", "40-20-40"}
    a = answers["goal"]
    assert a.tuned and a.budget == 3 and a.chosen.setting == (("optimizer.learning_rate", 1.0),)
    assert a.edge == () and (a.success, a.runs) == (2, 2) and a.cost_cu.value == 15.0
    # Without the middle setting the choice is lr 0.1, the grid's edge.
    edge = {x.criterion: x for x in compare.answers(runs[:2] + runs[4:])}["goal"]
    assert edge.chosen.setting == (("optimizer.learning_rate", 0.1),) and edge.edge == ("optimizer.learning_rate",)
    # Nothing succeeds: no choice, success 0 with its interval, no cost.
    none = compare.answers([_run("d0", "m", "relu", 0.1, 0, *never), _run("d1", "m", "relu", 1.0, 0, *never)])[0]
    assert not none.tuned and none.success == 0 and none.success_ci == stats.wilson(0, 1)
    assert none.cost_cu.value == math.inf


def test_a_goal_is_judged_in_the_runs_dtype():
    # float32(0.1) is above 0.1: a loss of exactly float32(0.1) meets a goal of 0.1 in float32, as the loop judges.
    f32 = float(np.float32(0.1))
    r = _run("x", "m", "tanh", 0.1, 0, [1.0, f32], [1, 1], goal=0.1)
    r["config"]["dtype"] = "float32"
    assert compare.attempt(r, "goal") == compare.Attempt(True, 2, 6.0)
    r["config"]["dtype"] = "float64"
    assert not compare.attempt(r, "goal").success


def test_ratios_are_paired_only_between_runs_from_the_same_weights():
    hit = lambda at: ([1.0] * (at - 1) + [0.001], [1] * (at - 1) + [0])
    runs = [_run(f"a{s}", "a", "tanh", 0.1, s, *hit(2 + s)) for s in range(4)]
    runs += [_run(f"b{s}", "b", "tanh", 0.1, s, *hit(2 * (2 + s))) for s in range(4)]
    rs = compare.ratios(compare.answers(runs))[("p", "goal", "tanh")]
    b = next(r for r in rs if r.method == "b")
    assert b.paired and b.versus == "a" and b.ratio == (2.0, 2.0, 2.0)  # b costs exactly twice a, seed by seed
    runs[4]["config"]["network.init"] = "he_normal"  # another init: the pairs no longer start alike
    for r in runs[4:]:
        r["config"]["network.init"] = "he_normal"
    b = next(r for r in compare.ratios(compare.answers(runs))[("p", "goal", "tanh")] if r.method == "b")
    assert not b.paired and b.ratio.lo < 2.0 < b.ratio.hi


def test_the_report_leads_with_answers_that_recount_from_the_runs(both_store, tmp_path):
    path, runs, _ = both_store
    md, figs, errors = report.write(path, tmp_path / "rep")
    text = md.read_text()
    assert not errors and text.index("### ") < text.index("## Appendix")
    # heatmap, cost, curves, runtime distributions, sensitivity: PNG + SVG each
    assert len(figs) == 10 and all(f.stat().st_size > 2000 for f in figs)
    with open(tmp_path / "rep" / "tables" / "answers.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2  # 2 criteria x 2 methods x 2 activations
    for row in rows:
        # Recount every answer from the stored runs: each setting's successes and cost, the best by cost.
        mine = [r for r in runs if r["config"]["label"] == row["method"] and
                r["config"]["network.activation"] == row["activation"]]
        best = None
        for lr in sorted({r["config"]["optimizer.learning_rate"] for r in mine}):
            rs = [r for r in mine if r["config"]["optimizer.learning_rate"] == lr]
            att = [compare.attempt(r, row["criterion"]) for r in rs]
            k = sum(a.success for a in att)
            cost = sum(a.cu for a in att) / k if k else math.inf
            if best is None or (cost, -k) < (best[0], -best[1]):
                best = (cost, k, len(rs))
        assert (int(row["successes"]), int(row["runs"])) == best[1:]
        assert float(row["cu"]) == pytest.approx(best[0]) if math.isfinite(best[0]) else row["cu"] == "inf"
    table = (tmp_path / "rep" / "tables" / "xor_hidden_2_goal_answer.csv").read_text().splitlines()
    assert table[0] == "method,tanh,sigmoid" and len(table) == 3


def test_the_report_reads_slim_runs_and_writes_what_every_curve_gives(both_store, tmp_path, monkeypatch):
    path, runs, _ = both_store
    assert sum(compare.slim(r)["curves"] != r["curves"] for r in runs) > 10  # slim runs do hold less
    report.write(path, tmp_path / "slim", compare_with=path)
    monkeypatch.setattr(report.compare, "slim", lambda r: r)  # every run with every curve, as before
    monkeypatch.setattr(report, "_judged_curves", lambda r: r)
    report.write(path, tmp_path / "full", compare_with=path)
    files = sorted(f.relative_to(tmp_path / "full") for f in (tmp_path / "full").rglob("*") if f.is_file())
    assert len(files) > 10 and any(f.suffix == ".png" for f in files)
    for f in files:
        assert (tmp_path / "slim" / f).read_bytes() == (tmp_path / "full" / f).read_bytes(), f


def test_store_runs_reads_only_the_ids_asked_for(both_store):
    path, runs, _ = both_store
    ids = {runs[0]["run_id"], runs[-1]["run_id"], "no-such-run"}
    with Store(path, create=False) as s:
        some, errors = s.runs(ids=ids)
        every, _ = s.runs()
    assert not errors and {r["run_id"] for r in some} == ids - {"no-such-run"}
    assert some == [r for r in every if r["run_id"] in ids]


def test_report_compare_puts_two_stores_side_by_side(both_store, tmp_path):
    path, runs, _ = both_store
    md, _, _ = report.write(path, tmp_path / "rep", compare_with=path)
    text = md.read_text()
    assert "Beside both.sqlite" in text
    # A store against itself: equal success and cost, a ratio of exactly 1 wherever anything succeeded.
    rows = [ln for ln in text.splitlines() if ln.startswith("| online | tanh |") or ln.startswith("| SCG | tanh |")]
    assert rows and all(ln.split("|")[3] == ln.split("|")[4] for ln in rows)
    assert any("| 1 [" in ln for ln in rows)


def test_a_store_without_criteria_gets_a_fixed_budget_report(tmp_path):
    flat = cfg.validate({"name": "n", "seeds": [0, 1, 2, 3, 4], "training.max_epochs": 3, "network.hidden": [2],
                         "optimizer.learning_rate": [0.5, 2.0], "compare.tune_seeds": [0, 1]})
    with Store(tmp_path / "n.sqlite") as store:
        sweep.run_sweep(flat, store, progress=False)
        runs, _ = store.runs()
    md, figs, _ = report.write(tmp_path / "n.sqlite")
    text = md.read_text()
    assert "**fixed-budget** comparison" in text and "chosen on the tuning seeds" in text
    # brute force: the rate with the lower mean training loss on seeds 0-1, reported on seeds 2-4
    mean = lambda lr, seeds: np.mean([r["train_loss"] for r in runs
                                      if r["config"]["optimizer.learning_rate"] == lr and r["seed"] in seeds])
    best = min((0.5, 2.0), key=lambda lr: mean(lr, {0, 1}))
    row = next(ln for ln in text.splitlines() if ln.startswith("| sgd batch=full |"))
    assert f"| learning_rate {best:g} (edge) | 3 | 0 | {mean(best, {2, 3, 4}):.4g} [" in row
    assert (md.parent / "tables").is_dir() and sorted(f.suffix for f in figs) == [".png", ".svg"]
    assert f"]({figs[0].stem}.png)" in text  # the report shows its figure


def test_a_run_with_records_within_epochs_is_judged_and_costed_at_each_record(tmp_path):
    from bpkit import compare

    p = tmp_path / "m.toml"
    p.write_text(MEASURED + "measures_per_epoch = 4\ncriterion_40_20_40 = true\nstop_on = 'all'\n")
    store = Store(tmp_path / "m.sqlite")
    run_sweep(cfg.load(p), store, progress=False)
    finer = 0
    for run in store.runs()[0]:
        w = run["curves"]["within"]
        coarse = {**run, "curves": {k: v for k, v in run["curves"].items() if k != "within"}}
        for crit, holds in (("goal", lambda e, j, w=w: w["loss"][e][j] <= 0.02),
                            ("40-20-40", lambda e, j, w=w: w["wrong"][e][j] == 0)):
            got, epoch_end = compare.attempt(run, crit), compare.attempt(coarse, crit)
            hit = next(((e, j) for e in range(run["epochs"]) for j in range(4) if holds(e, j)), None)  # brute force
            if hit is None:
                assert got == (False, run["epochs"], run["cu"], run["stop_reason"])
                continue
            e, j = hit
            assert got.success and got.epochs == e + 1
            assert got.cu == w["loss_evals"][e][j] + 3 * w["grad_evals"][e][j]
            assert got.cu == pytest.approx(3 * (e + (j + 1) / 4))  # one gradient per example seen, 4 examples
            assert compare.attempt(compare.slim(run), crit) == got  # what the report reads keeps it
            assert not epoch_end.success or (got.epochs <= epoch_end.epochs and got.cu <= epoch_end.cu)
            finer += got.cu < epoch_end.cu
    assert finer > 0  # some successes fell within an epoch


# -- held-out tuning ------------------------------------------------------------------------------

def _stored(method, lr, seed, cu):
    """A stored run that met its loss goal after ``cu`` cu (one epoch)."""
    config = {**Run().as_dict(), "label": f"p/{method}", "seed": seed, "training.goal": 0.01,
              "optimizer.learning_rate": lr, "optimizer.name": "sgd" if method == "A" else "rprop",
              "network.activation": "tanh", "dtype": "float64"}
    return {"config": config, "seed": seed, "status": "finished", "stop_reason": "goal", "epochs": 1, "cu": cu,
            "curves": {"loss": [0.001], "wrong": [0], "loss_evals": [0.0], "grad_evals": [cu / 3]}}


def test_a_setting_that_won_only_on_lucky_seeds_is_caught_by_held_out_tuning(tmp_path):
    # A's learning rate 0.5 is cheap on seeds 0-9 (10 cu) and dear on 10-19 (120 cu): 65 cu over all 20.
    # Its other rates cost 150 everywhere; B's one rate costs 80 everywhere.  Chosen and reported on all 20
    # seeds, A (65) ranks ahead of B (80); chosen on 0-9 and reported on 10-19, A costs 120 and B 80.
    rows = [_stored("A", 0.5, s, 10.0 if s < 10 else 120.0) for s in range(20)]
    rows += [_stored("A", lr, s, 150.0) for lr in (0.1, 1.0, 2.0) for s in range(20)]
    rows += [_stored("B", 0.1, s, 80.0) for s in range(20)]
    with Store(tmp_path / "lucky.sqlite") as store:
        store.add(rows)
        runs, _ = store.runs()
    first = lambda ans: min(ans, key=lambda a: a.cost_cu.value)
    same = compare.answers(runs)
    assert first(same).method == "A" and first(same).cost_cu.value == 65.0 and not first(same).held_out
    held = compare.answers(runs, tune_seeds=range(10))
    assert first(held).method == "B" and first(held).held_out
    a = next(x for x in held if x.method == "A")
    assert a.chosen.seeds == tuple(range(10, 20)) and a.cost_cu.value == 120.0  # every number from seeds 10-19
    assert a.chosen.setting == (("optimizer.learning_rate", 0.5),)  # chosen on seeds 0-9
    # The report reads the tuning seeds the sweep recorded, and says which seeds did what.
    with Store(tmp_path / "lucky.sqlite") as store:
        store.set_compare({"tune_seeds": list(range(10))})
    md, _, _ = report.write(tmp_path / "lucky.sqlite", tmp_path / "rep")
    assert "chosen on seeds 0-9 and **every number below comes from the other seeds**, 10-19" in md.read_text()


def test_an_answer_on_half_its_seeds_keeps_its_setting_and_recounts_from_those_runs_alone(tmp_path):
    # The reviewer's check: A's setting stays the one chosen on seeds 0-9 (lr 0.5); on seeds 10-14 its numbers
    # are those of a sweep that ran that setting alone on those seeds.  A's lr 0.5 fails on odd seeds here.
    rows = [_stored("A", 0.5, s, 10.0 if s < 10 else 120.0) for s in range(20)]
    rows += [_stored("A", lr, s, 150.0) for lr in (0.1, 1.0) for s in range(20)]
    for r in rows[10:20:2]:
        r["curves"]["loss"], r["stop_reason"] = [0.5], "max_epochs"
    with Store(tmp_path / "h.sqlite") as store:
        store.add(rows)
        runs, _ = store.runs()
    held = [a for a in compare.answers(runs, tune_seeds=range(10)) if a.criterion == "goal"]
    (first, part), (second, rest) = compare.halves(held[0].chosen.seeds)
    assert (first, part, second, rest) == ("first", [10, 11, 12, 13, 14], "second", [15, 16, 17, 18, 19])
    half = compare.on_seeds(held, set(part))[0]
    alone = [r for r in runs if r["seed"] in part and r["config"]["optimizer.learning_rate"] == 0.5]
    again = [a for a in compare.answers(alone) if a.criterion == "goal"][0]
    assert half.chosen.setting == held[0].chosen.setting and half.budget == 3 and half.chosen.seeds == tuple(part)
    assert (half.success, half.runs, half.success_ci, half.cost_cu) == \
           (again.success, again.runs, again.success_ci, again.cost_cu) == (2, 5, stats.wilson(2, 5), again.cost_cu)
    assert half.cost_cu.value == 600.0 / 2  # 5 runs of 120 cu, 2 successes
    text = tables.answers_csv([], [("first", [half]), ("second", compare.on_seeds(held, set(rest)))])
    lines = text.splitlines()
    assert lines[0].startswith("half,problem,criterion") and len(lines) == 3
    assert lines[1].startswith("first,") and lines[2].startswith("second,") and ",2,5," in lines[1]


def test_held_out_tuning_ranks_honestly_where_choosing_on_the_same_seeds_flatters_the_method_with_more_settings():
    # A has 8 settings, all truly costing 100; B one, truly costing 80. The best of 8 noisy estimates on the
    # same seeds flatters A; chosen on half the seeds and reported on the other half, A is judged fairly.
    rng = np.random.default_rng(0)

    def cell(method, setting, costs):
        n = len(costs)
        return compare.Cell("p", method, "act", (("optimizer.learning_rate", setting),), "goal", tuple(range(n)),
                            tuple(compare.Attempt(True, 1, float(c)) for c in costs), ("i",),
                            tuple(f"{method}{setting}-{s}" for s in range(n)))

    wrong_same = wrong_held = 0
    for _ in range(200):
        cells = [cell("A", k, rng.lognormal(np.log(100), 0.8, 20)) for k in range(8)]
        cells.append(cell("B", 0, rng.lognormal(np.log(80), 0.8, 20)))
        wrong_same += min(compare.tune(cells), key=lambda a: a.cost_cu.value).method == "A"
        wrong_held += min(compare.tune(cells, tune_seeds=range(10)), key=lambda a: a.cost_cu.value).method == "A"
    assert wrong_same > 100 and wrong_held < 70  # 119 and 55 of 200 here


def test_the_three_costs_of_an_answer_are_its_runs_costs_three_ways():
    costs, wins = [10.0, 100.0, 12.0, 500.0, 30.0], [True, False, True, True, False]
    cell = compare.Cell("p", "m", "a", (), "goal", tuple(range(5)),
                        tuple(compare.Attempt(w, 1, c, "" if w else "max_epochs") for c, w in zip(costs, wins,
                                                                                                   strict=True)),
                        ("i",), tuple(f"r-{s}" for s in range(5)))
    a = compare.tune([cell])[0]
    assert a.cost_cu.value == sum(costs) / 3  # at the budget
    assert a.cutoff == stats.best_cutoff(costs, wins)  # at the best cutoff
    assert a.mean_success_cu == (10 + 12 + 500) / 3 and a.failures == (("max_epochs", 2),)


def test_paired_tests_and_pooled_rates_read_the_chosen_runs_from_the_same_starts():
    def cell(method, wins, init=("i",), act="tanh"):
        return compare.Cell("p", method, act, (), "goal", tuple(range(len(wins))),
                            tuple(compare.Attempt(w, 1, 10.0) for w in wins), init,
                            tuple(f"{method}{act}-{s}" for s in range(len(wins))))

    a, b = [True] * 9 + [False], [True, False] * 5
    answers = compare.tune([cell("A", a), cell("B", b), cell("C", b, init=("other",))])
    tests = {p.method: p for p in compare.paired_success(answers)[("p", "goal", "tanh")]}
    assert tests["A"].versus == "A" and tests["B"].test == stats.mcnemar(b, a)  # against the most successful
    assert tests["C"].test is None  # other initial weights: not paired
    both = compare.tune([cell("A", a), cell("A", b, act="relu")])
    pooled = compare.pooled(both, method="A")
    assert pooled == stats.pooled_rate(a + b, [("p", ("i",), s) for s in range(10)] * 2)
    assert pooled.value == 14 / 20
    with pytest.raises(ValueError, match="no answer has"):
        compare.pooled(both, method="Z")


def test_a_bit_fail_criterion_is_judged_and_reported(tmp_path):
    flat = cfg.validate({"name": "b", "seeds": [0, 1, 2], "data.name": "xor", "network.hidden": [2],
                         "network.activation": "tanh", "training.batch_size": 1, "optimizer.learning_rate": 2.0,
                         "training.max_epochs": 2000, "training.bit_fail": 0.35})
    with Store(tmp_path / "b.sqlite") as store:
        sweep.run_sweep(flat, store, progress=False)
        runs, _ = store.runs()
    assert compare.criteria(runs[0]["config"]) == ["bit fail"]
    won = [r for r in runs if r["stop_reason"] == "bit_fail"]
    assert won and all(r["curves"]["wrong"][-1] == 0 for r in won)
    (answer,) = compare.answers(runs)
    assert answer.criterion == "bit fail" and answer.success == len(won)
    text = report.write(tmp_path / "b.sqlite")[0].read_text()
    assert "bit fail" in text
    with pytest.raises(ValueError, match="give one criterion on the outputs"):
        cfg.expand(cfg.validate({**flat, "training.criterion_40_20_40": True}))
