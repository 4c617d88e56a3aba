"""bpkit.runtime: runtimes to a ladder of targets, aRT, ECDFs and performance profiles, each against a
brute-force count over synthetic stored runs."""

import math

import numpy as np
import pytest

from bpkit import compare, runtime


def _run(rid, losses, per_epoch_cu=3.0, wrong=None, reason="max_epochs"):
    """A stored run: its loss after each epoch, each epoch costing ``per_epoch_cu`` (one gradient)."""
    n = len(losses)
    return {"run_id": rid, "seed": int(rid.split("-")[-1]), "epochs": n, "cu": per_epoch_cu * n, "stop_reason": reason,
            "config": {"dtype": "float64", "training.goal": 0.01, "training.criterion_40_20_40": wrong is not None},
            "curves": {"loss": list(losses), "wrong": list(wrong if wrong is not None else [1] * n),
                       "loss_evals": [0.0] * n, "grad_evals": [float(e + 1) * per_epoch_cu / 3 for e in range(n)]}}


def _synthetic(rng, n_runs=12, epochs=60):
    runs = {}
    for i in range(n_runs):
        rate = rng.uniform(0.01, 0.2)
        floor = rng.choice([0.0, 0.05])  # some runs stall above the goal
        losses = np.maximum(0.25 * np.exp(-rate * np.arange(1, epochs + 1)), floor) + rng.uniform(0, 1e-3, epochs)
        wrong = (losses > 0.02).astype(int)
        runs[f"h-{i}"] = _run(f"h-{i}", losses.tolist(), wrong=wrong.tolist())
    return runs


def _answer(runs):
    ids = tuple(runs)
    cell = compare.Cell("p", "m", "a", (), "goal", tuple(range(len(ids))),
                        tuple(compare.attempt(runs[i], "goal") for i in ids), ("i",), ids)
    return compare.tune([cell])[0]


def test_ladder_is_log_uniform_from_the_start_to_the_goal():
    steps = runtime.ladder(0.25, 0.001, 4)
    assert steps[-1] == pytest.approx(0.001) and len(steps) == 4 and steps[0] < 0.25
    assert np.allclose(np.diff(np.log(steps)), np.log(0.001 / 0.25) / 4)
    with pytest.raises(ValueError, match="a ladder needs top > goal > 0"):
        runtime.ladder(0.001, 0.25)


def test_runtimes_art_and_the_ecdf_equal_a_brute_force_count():
    rng = np.random.default_rng(4)
    runs = _synthetic(rng)
    targets = runtime.ladder(0.25, 0.01, 6)
    rt = runtime.runtimes(_answer(runs), runs, targets, criterion=True)
    for r, (met_row, spent_row) in zip(runs.values(), zip(rt.met, rt.spent, strict=True), strict=True):
        for j, t in enumerate(targets + (None,)):  # brute force: walk the epochs
            hit = next((e for e, (loss, w) in enumerate(zip(r["curves"]["loss"], r["curves"]["wrong"], strict=True))
                        if (loss <= t if t is not None else w == 0)), None)
            assert met_row[j] == (hit is not None)
            assert spent_row[j] == (3.0 * (hit + 1) if hit is not None else r["cu"])
    for j, est in enumerate(runtime.art(rt)):
        met = rt.met[:, j]
        want = rt.spent[:, j].sum() / met.sum() if met.any() else math.inf
        assert est.value == pytest.approx(want)
    budgets = [10.0, 30.0, 90.0, 1e6]
    frac = runtime.ecdf([rt], budgets)
    for b, f in zip(budgets, frac, strict=True):
        count = sum(1 for i in range(rt.met.shape[0]) for j in range(rt.met.shape[1])
                    if rt.met[i, j] and rt.spent[i, j] <= b)
        assert f == count / rt.met.size


def test_the_ecdf_over_several_problems_pools_their_pairs():
    rng = np.random.default_rng(8)
    a, b = _synthetic(rng, 5), _synthetic(rng, 9)
    rts = [runtime.runtimes(_answer(r), r, (0.1, 0.01)) for r in (a, b)]
    pooled = runtime.ecdf(rts, [50.0])[0]
    met = np.concatenate([np.where(rt.met, rt.spent, np.inf).ravel() for rt in rts])
    assert pooled == np.mean(met <= 50.0)


def test_a_performance_profile_is_the_fraction_of_problems_within_tau_of_the_best():
    costs = {"p1": {"A": 10.0, "B": 15.0, "C": math.inf}, "p2": {"A": 40.0, "B": 20.0, "C": 25.0},
             "p3": {"A": math.inf, "B": math.inf, "C": math.inf}, "p4": {"A": 5.0, "B": 50.0, "C": 4.0}}
    taus = [1.0, 1.25, 1.5, 2.0, 100.0]
    got = runtime.profile(costs, taus)
    for m in "ABC":
        for k, tau in enumerate(taus):
            within = sum(1 for row in costs.values() if math.isfinite(min(row.values()))
                         and row[m] <= tau * min(row.values()))
            assert got[m][k] == within / len(costs), (m, tau)
