"""bpkit.fixed_budget: the setting chosen on the tuning seeds by brute force, the means and their bootstrap
intervals, diverged runs counted and left out, measures a sweep did not take said so."""

import math

import numpy as np
import pytest

from bpkit import fixed_budget, stats


def _run(seed, lr, train, test=None, acc=None, method="online"):
    config = {"label": f"p/{method}", "optimizer.learning_rate": lr, "network.activation": "tanh", "loss": "mse",
              "seed": seed}
    return {"run_id": f"{method}-{lr}-{seed}", "config_hash": f"{method}-{lr}", "seed": seed, "config": config,
            "train_loss": train, "val_loss": None, "test_loss": test, "test_acc": acc, "epochs": 10, "cu": 30.0}


def test_the_setting_is_chosen_on_the_tuning_seeds_and_reported_on_the_others():
    rng = np.random.default_rng(0)
    losses = {lr: rng.uniform(size=8) for lr in (0.1, 0.3, 1.0)}
    losses[1.0][:3] = 0.0  # best on the tuning seeds 0-2 only
    runs = [_run(s, lr, float(v[s]), test=float(v[s]) + 1, acc=0.75) for lr, v in losses.items() for s in range(8)]
    (row,) = fixed_budget.rows(runs, tune_seeds=[0, 1, 2])
    assert row.setting == (("optimizer.learning_rate", 1.0),) and row.edge == ("optimizer.learning_rate",)
    assert row.seeds == (3, 4, 5, 6, 7) and row.held_out and row.chosen_by == "train_loss"
    assert row.measures["train_loss"].value == pytest.approx(float(np.mean(losses[1.0][3:])), rel=1e-15)
    assert row.measures["test_loss"].value == pytest.approx(float(np.mean(losses[1.0][3:])) + 1, rel=1e-15)
    assert row.measures["test_error"] == stats.Estimate(0.25, 0.25, 0.25)
    (same,) = fixed_budget.rows(runs)  # without tuning seeds: chosen on the seeds it reports
    assert not same.held_out and len(same.seeds) == 8


def test_a_diverged_run_is_counted_left_out_of_the_means_and_never_chosen():
    runs = [_run(s, 0.1, 0.5) for s in range(4)] + [_run(s, 1.0, 0.01 if s else math.nan) for s in range(4)]
    (row,) = fixed_budget.rows(runs)
    assert row.setting == (("optimizer.learning_rate", 0.1),)  # 1.0 has the lower mean, but a run diverged
    runs = [_run(s, 1.0, 0.01 if s else math.nan) for s in range(4)]
    (row,) = fixed_budget.rows(runs)
    assert row.diverged == 1 and row.measures["train_loss"].value == pytest.approx(0.01)
    table = fixed_budget.table([row], "p")
    assert table.columns[:6] == ["method", "activation", "loss", "setting", "runs", "diverged"]
    assert "test loss" not in table.columns  # not measured: no column
    assert table.rows[0][4:6] == ["4", "1"]


def test_every_seed_tuning_leaves_nothing_to_report():
    with pytest.raises(ValueError, match="every seed is a tuning seed"):
        fixed_budget.rows([_run(0, 0.1, 0.5)], tune_seeds=[0])


def test_the_bootstrap_mean_interval_is_the_percentiles_of_resampled_means():
    v = np.array([1.0, 2.0, 4.0, 8.0, 3.0])
    e = stats.bootstrap_mean(v, seed=3, resamples=500)
    idx = np.random.default_rng(3).integers(0, 5, (500, 5))  # brute force, the same draws
    means = np.sort(v[idx].mean(axis=1))
    assert e.value == v.mean()
    assert e.lo == means[int(np.ceil(0.025 * 500)) - 1] and e.hi == means[int(np.ceil(0.975 * 500)) - 1]
    with pytest.raises(ValueError, match="non-empty list of finite values"):
        stats.bootstrap_mean([1.0, math.inf])
