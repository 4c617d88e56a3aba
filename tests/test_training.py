"""The one training loop: batch sizes, sources, stopping, determinism, compile count."""

import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bpkit import MLP, autodiff, optim
from bpkit.gradients import loss_value, objective
from bpkit.lanes import train_many
from bpkit.loop import make_trainer
from bpkit.stopping import StopRules
from bpkit.training import train

XOR_X = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = jnp.array([[0.0], [1.0], [1.0], [0.0]])
NET = MLP((2, 2, 1), hidden="tanh", output="sigmoid")
P0 = NET.init(jax.random.key(0))
KEY = jax.random.key(1)


def data(n=10, seed=0, dtype=jnp.float64):
    kx, ky = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (n, 3), dtype)
    y = (jax.random.uniform(ky, (n, 2), dtype) > 0.5).astype(dtype)
    return x, y


NET3 = MLP((3, 4, 2), hidden="tanh", output="sigmoid")
P3 = NET3.init(jax.random.key(2), dtype=jnp.float64)


@pytest.mark.filterwarnings("ignore:bpkit.train compiles the run again")  # every case is its own transform
@pytest.mark.parametrize(
    "name, opt, batch_size",
    [
        ("online", optax.sgd(0.5), 1),
        ("minibatch", optax.sgd(1.0, momentum=0.9), 3),
        ("batch", optax.sgd(2.0), None),
        ("rprop", optim.rprop(0.1), None),
        ("quickprop", optim.quickprop(0.5), None),
        ("lbfgs", optax.lbfgs(), None),
        ("scg", optim.scg(), None),
        ("scg-fd", optim.scg(hvp="finite_difference"), None),
    ]
    + [(f"cg-{b}", optim.nonlinear_cg(b), None) for b in optim.BETAS]
    + [("cg-powell-beale", optim.nonlinear_cg("pr+", powell_beale=True), None)],
)
def test_every_optimizer_trains_xor(name, opt, batch_size):
    r = train(NET, opt, P0, XOR_X, XOR_Y, key=KEY, batch_size=batch_size,
              rules=StopRules(max_epochs=3000, criterion_40_20_40=True))
    assert r.reason == "40-20-40", (name, r.reason, float(r.final_loss))
    out = NET.apply(r.params, XOR_X)
    assert bool(jnp.all((out > 0.6) == (XOR_Y > 0.5))) and bool(jnp.all((out < 0.4) == (XOR_Y < 0.5)))


def test_batch_size_n_is_batch_gradient_descent_step_for_step():
    x, y = data()
    lr, epochs = 0.3, 7
    r = train(NET3, optax.sgd(lr), P3, x, y, key=KEY, batch_size=x.shape[0], rules=StopRules(max_epochs=epochs,
                                                                                             stall_epochs=None))
    p = P3
    for _ in range(epochs):
        p = jax.tree.map(lambda w, g: w - lr * g, p, autodiff(NET3, p, x, y))
    chex.assert_trees_all_close(r.params, p, rtol=1e-13, atol=1e-15)
    assert int(r.epochs) == epochs and r.reason == "max_epochs"


def test_one_online_epoch_equals_one_batch_step_to_first_order():
    # Online: w -= eta grad l_i, i = 1..N, in fixed order; batch: w -= N eta grad C.
    # They agree up to O(eta^2): relative to the step (O(eta)) the gap is O(eta),
    # so ten times smaller eta gives a ten times smaller relative gap.
    x, y = data()
    n = x.shape[0]
    gaps = []
    for eta in (1e-2, 1e-3):
        rules = StopRules(max_epochs=1, stall_epochs=None)
        online = train(NET3, optax.sgd(eta), P3, x, y, key=KEY, batch_size=1, shuffle=False, rules=rules)
        batch = train(NET3, optax.sgd(n * eta), P3, x, y, key=KEY, rules=rules)
        step = optax.tree.norm(optax.tree.sub(batch.params, P3))
        gaps.append(float(optax.tree.norm(optax.tree.sub(online.params, batch.params)) / step))
    assert gaps[0] < 0.01
    assert 8 < gaps[0] / gaps[1] < 12, gaps  # measured 10.0


def test_minibatch_with_remainder_averages_real_examples_only():
    # 10 examples in batches of 4: the last batch holds 2 real + 2 padded examples.
    x, y = data()
    r = train(NET3, optax.sgd(0.1), P3, x, y, key=KEY, batch_size=4, shuffle=False, rules=StopRules(max_epochs=1,
                                                                                                    stall_epochs=None))
    p = P3
    for lo in (0, 4, 8):
        xb, yb = x[lo:lo + 4], y[lo:lo + 4]
        p = jax.tree.map(lambda w, g: w - 0.1 * g, p, autodiff(NET3, p, xb, yb))
    chex.assert_trees_all_close(r.params, p, rtol=1e-13, atol=1e-15)
    assert float(r.history.grad_evals[0]) == pytest.approx(1.0)  # 4/10 + 4/10 + 2/10


def test_same_seed_is_bitwise_identical_and_other_seed_differs():
    x, y = data()
    kw = dict(key=KEY, batch_size=2, rules=StopRules(max_epochs=20))
    a = train(NET3, optax.sgd(0.2), P3, x, y, **kw)
    b = train(NET3, optax.sgd(0.2), P3, x, y, **kw)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    c = train(NET3, optax.sgd(0.2), P3, x, y, **{**kw, "key": jax.random.key(99)})
    assert not np.array_equal(np.asarray(a.params[0]["w"]), np.asarray(c.params[0]["w"]))


def test_compiles_once_per_static_configuration():
    x, y = data()
    run = jax.jit(chex.assert_max_traces(
        make_trainer(NET3, optax.sgd(0.1), batch_size=2, rules=StopRules(max_epochs=3)), n=1))
    for seed in range(3):
        xs, ys = data(seed=seed)
        run(NET3.init(jax.random.key(seed), dtype=jnp.float64), xs, ys, jax.random.key(seed))


def test_vmapped_over_seeds_equals_one_by_one():
    x, y = data()
    run = make_trainer(NET3, optax.sgd(0.2), batch_size=2, rules=StopRules(max_epochs=5))
    keys = jax.random.split(jax.random.key(5), 3)
    params = jax.vmap(lambda k: NET3.init(k, dtype=jnp.float64))(keys)
    batched = jax.jit(jax.vmap(run, in_axes=(0, None, None, 0)))(params, x, y, keys)
    for i in range(3):
        one = jax.jit(run)(jax.tree.map(lambda a, i=i: a[i], params), x, y, keys[i])
        chex.assert_trees_all_close(jax.tree.map(lambda a, i=i: a[i], batched.params), one.params, rtol=1e-12)


def test_gradient_source_selects_the_rule():
    x, y = data()
    rules = StopRules(max_epochs=10, stall_epochs=None)
    auto = train(NET3, optax.sgd(0.5), P3, x, y, key=KEY, rules=rules)
    hand = train(NET3, optax.sgd(0.5), P3, x, y, key=KEY, rules=rules, source="exact")
    ablated = train(NET3, optax.sgd(0.5), P3, x, y, key=KEY, rules=rules, source="no_derivative")
    chex.assert_trees_all_close(auto.params, hand.params, rtol=1e-10)
    assert float(optax.tree.norm(optax.tree.sub(auto.params, ablated.params))) > 1e-3
    # Hand-written rules also drive a line search (optax's zoom differentiates the custom_vjp).
    cg = train(NET3, optim.nonlinear_cg(), P3, x, y, key=KEY, rules=rules, source="exact")
    cg_auto = train(NET3, optim.nonlinear_cg(), P3, x, y, key=KEY, rules=rules)
    chex.assert_trees_all_close(cg.params, cg_auto.params, rtol=1e-8)


def test_divergence_is_a_status_not_an_exception():
    # A linear net has no saturation to stop it: far above 2/lambda_max it blows up.
    net = MLP((3, 4, 2), hidden="identity", output="identity")
    r = train(net, optax.sgd(50.0), net.init(jax.random.key(0), dtype=jnp.float64), *data(), key=KEY,
              rules=StopRules(max_epochs=50))
    assert r.reason == "diverged"
    assert int(r.epochs) < 50
    assert not np.isfinite(float(r.history.loss[int(r.epochs) - 1]))


def test_saturated_net_stalls_instead_of_diverging():
    r = train(NET3, optax.sgd(1e6), P3, *data(), key=KEY, rules=StopRules(max_epochs=50, stall_epochs=3))
    assert r.reason == "stalled" and np.isfinite(float(r.final_loss))


def test_stopping_rules_goal_min_grad_patience():
    x, y = data()
    goal = train(NET3, optim.nonlinear_cg(), P3, x, y, key=KEY, rules=StopRules(max_epochs=500, goal=0.05))
    assert goal.reason == "goal" and float(goal.final_loss) <= 0.05
    assert float(goal.history.loss[int(goal.epochs) - 2]) > 0.05  # it stopped at the first epoch below
    mg = train(NET3, optim.nonlinear_cg(), P3, x, y, key=KEY, rules=StopRules(max_epochs=500, min_grad_norm=1e-3))
    assert mg.reason == "min_grad" and float(mg.history.grad_norm[int(mg.epochs) - 1]) <= 1e-3
    xv, yv = data(seed=7)
    pat = train(NET3, optax.sgd(2.0), P3, x, y, key=KEY, x_val=xv, y_val=yv, rules=StopRules(max_epochs=2000,
                                                                                             patience=5))
    assert pat.reason == "patience"
    h = np.asarray(pat.history.val_loss[: int(pat.epochs)])
    assert np.argmin(h) == int(pat.epochs) - 6  # best 5 epochs before the stop
    chex.assert_trees_all_close(NET3.apply(pat.best_params, xv).shape, (10, 2))


def test_best_params_are_the_checkpoint_at_the_lowest_validation_loss_and_else_the_last():
    # The loop keeps the params of the first epoch with the lowest validation loss; the same run
    # checkpointed at that epoch must hold them bitwise.  Without validation, the last params.
    x, y = data()
    xv, yv = data(seed=7)
    kw = dict(key=KEY, batch_size=3, rules=StopRules(max_epochs=60, stall_epochs=None))
    run = train(NET3, optax.sgd(2.0), P3, x, y, x_val=xv, y_val=yv, **kw)
    best = int(np.argmin(np.asarray(run.history.val_loss))) + 1
    assert 1 < best < 60  # the validation loss rose again: best and last differ
    again = train(NET3, optax.sgd(2.0), P3, x, y, x_val=xv, y_val=yv, checkpoints=(best,), **kw)
    chex.assert_trees_all_equal(run.best_params, jax.tree.map(lambda a: a[0], again.checkpoints))
    plain = train(NET3, optax.sgd(2.0), P3, x, y, **kw)
    chex.assert_trees_all_equal(plain.best_params, plain.params)
    many = train_many(NET3, "sgd", [0, 1], x, y, hyper={"learning_rate": 2.0}, dtype=jnp.float64, batch_size=3,
                      rules=kw["rules"])
    chex.assert_trees_all_equal(many.best_params, many.params)


def test_evaluation_counts_are_moellers_units():
    # Counted as Moeller counts cu: a gradient (its loss included) 3 cu, a loss alone 1 cu.
    x, y = data()
    rules = StopRules(max_epochs=5, stall_epochs=None)
    bgd = train(NET3, optax.sgd(0.1), P3, x, y, key=KEY, rules=rules)
    np.testing.assert_array_equal(bgd.history.grad_evals[:5], np.arange(1, 6))  # one gradient per epoch
    np.testing.assert_array_equal(bgd.history.loss_evals[:5], np.zeros(5))  # and no separate loss
    online = train(NET3, optax.sgd(0.1), P3, x, y, key=KEY, batch_size=1, rules=rules)
    np.testing.assert_allclose(online.history.grad_evals[:5], np.arange(1, 6), rtol=1e-12)


@pytest.mark.parametrize("hvp", ["exact", "finite_difference"])
def test_scg_costs_7_cu_per_accepted_and_1_per_rejected_iteration(hvp):
    # Brute force from the trajectory alone: every epoch evaluates E(w + alpha p) (1 cu);
    # after an accepted step (and at the start) it also needs the gradient at the new
    # point and the Hessian-vector product along the new direction (3 + 3 cu).
    x, y = data()
    epochs = 40
    r = train(NET3, optim.scg(hvp=hvp, lambda_init=1e-3), P3, x, y, key=KEY,
              rules=StopRules(max_epochs=epochs, stall_epochs=None))
    # A rejected step leaves the params, so the measured loss, bitwise unchanged.
    loss = np.concatenate([[float(r.initial_loss)], np.asarray(r.history.loss[:epochs])])
    moved = list(loss[1:] != loss[:-1])
    fresh = [True] + moved[:-1]  # the direction (and the point) are new after an accepted step
    cu = np.cumsum([1 + 6 * f for f in fresh])
    got = np.asarray(r.history.loss_evals[:epochs]) + 3 * np.asarray(r.history.grad_evals[:epochs])
    np.testing.assert_array_equal(got, cu)
    assert 0 < sum(moved) < epochs  # both kinds of iteration happened: the test can tell them apart


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), r"batch_size must be an integer in 1..10 \(the number of examples\) or None, got 0"),
        (dict(batch_size=11), r"batch_size must be an integer in 1..10"),
        (dict(source="guess"), "unknown gradient source 'guess'; valid: autodiff, exact, output_form"),
        (dict(rules=StopRules(patience=3)), r"the patience rule needs a validation set \(x_val, y_val\)"),
        (dict(x_val=jnp.zeros((2, 3))), "give both x_val and y_val, or neither"),
        (dict(loss="bce", x_val=jnp.zeros((2, 5)), y_val=jnp.zeros((2, 2))),
         "input x has width 5 but the network has 3 inputs"),
    ],
)
def test_bad_training_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(NET3, optax.sgd(0.1), P3, *data(), key=KEY, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_epochs=0), "max_epochs must be an integer in 1..2147483647, got 0"),
        (dict(patience=0), "patience must be an integer in 1..2147483647 or None, got 0"),
        (dict(goal=-1.0), r"goal must be >= 0 or None, got -1.0"),
    ],
)
def test_bad_stop_rules(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StopRules(**kwargs)


def test_objective_hand_written_gradient_is_the_rule():
    x, y = data()
    f = objective(NET3, "mse", "exact")
    chex.assert_trees_all_close(jax.grad(f)(P3, x, y), autodiff(NET3, P3, x, y), rtol=1e-12)


def _xor32():
    from bpkit import datasets

    d = datasets.load("xor")
    return jnp.asarray(d.x_train, jnp.float32), jnp.asarray(d.y_train, jnp.float32)


def test_checkpoints_equal_runs_stopped_there_bitwise():
    """Params at each checkpoint of one run equal a run of that many epochs; the run itself is
    unchanged by asking for checkpoints; a checkpoint past the stop holds the final params."""
    from bpkit import optim

    net, (x, y) = MLP((2, 3, 1), "tanh"), _xor32()
    p0 = net.init(jax.random.key(0), dtype=jnp.float32)
    kw = dict(key=jax.random.key(1), batch_size=1)
    opt = optim.make("sgd", learning_rate=0.5, momentum=0.5)
    marks = (0, 1, 7, 40, 90)
    full = train(net, opt, p0, x, y, rules=StopRules(max_epochs=60, stall_epochs=None), checkpoints=marks, **kw)
    plain = train(net, opt, p0, x, y, rules=StopRules(max_epochs=60, stall_epochs=None), **kw)
    chex.assert_trees_all_equal(full.params, plain.params)
    np.testing.assert_array_equal(full.history.loss, plain.history.loss)
    for i, e in enumerate(marks):
        want = p0 if e == 0 else train(net, opt, p0, x, y, rules=StopRules(max_epochs=min(e, 60), stall_epochs=None),
                                       **kw).params
        chex.assert_trees_all_equal(jax.tree_util.tree_map(lambda a, i=i: a[i], full.checkpoints), want)
    with pytest.raises(ValueError, match="checkpoints must be increasing epoch counts"):
        train(net, opt, p0, x, y, checkpoints=(5, 3), **kw)


def test_measuring_every_k_epochs_keeps_the_trajectory_and_judges_rules_when_measured():
    net, (x, y) = MLP((2, 3, 1), "tanh"), _xor32()
    p0 = net.init(jax.random.key(0), dtype=jnp.float32)
    kw = dict(key=jax.random.key(1), batch_size=2)
    every = train(net, optax.sgd(0.5), p0, x, y, rules=StopRules(max_epochs=23, stall_epochs=None), **kw)
    sparse = train(net, optax.sgd(0.5), p0, x, y, rules=StopRules(max_epochs=23, stall_epochs=None),
                   measure_every=5, **kw)
    chex.assert_trees_all_equal(every.params, sparse.params)
    measured = np.zeros(23, bool)
    measured[[4, 9, 14, 19, 22]] = True  # epochs 5, 10, 15, 20 and the last
    np.testing.assert_array_equal(sparse.history.loss[measured], every.history.loss[measured])
    assert np.all(np.isnan(sparse.history.loss[~measured])) and np.all(sparse.history.wrong[~measured] == -1)
    np.testing.assert_array_equal(sparse.history.grad_evals, every.history.grad_evals)
    assert sparse.history.grad_evals[-1] == 23  # one gradient per epoch, counted exactly
    # A goal met at epoch g stops the sparse run at the first measured epoch >= g.
    g = int(np.argmax(every.history.loss < every.history.loss[0] * 0.999)) + 1
    goal = float(every.history.loss[g - 1])
    dense = train(net, optax.sgd(0.5), p0, x, y, rules=StopRules(max_epochs=23, goal=goal, stall_epochs=None), **kw)
    late = train(net, optax.sgd(0.5), p0, x, y, rules=StopRules(max_epochs=23, goal=goal, stall_epochs=None),
                 measure_every=5, **kw)
    assert int(dense.epochs) == g and int(late.epochs) == min(-(-g // 5) * 5, 23)


def test_measures_within_an_epoch_record_the_run_a_plain_loop_gives_and_change_nothing():
    # 10 examples in mini-batches of 3 (the last holds 1), measured 3 times an epoch: after batch
    # floor(4 / 3) = 1, floor(8 / 3) = 2 and 4 of 4.  Float64, no shuffle, against a plain loop.
    net, (x, y), m, b, epochs = NET3, data(), 3, 3, 6
    rules = StopRules(max_epochs=epochs, stall_epochs=None)
    kw = dict(key=KEY, batch_size=b, shuffle=False, rules=rules)
    plain = train(net, optax.sgd(0.3), P3, x, y, **kw)
    fine = train(net, optax.sgd(0.3), P3, x, y, measures_per_epoch=m, **kw)
    chex.assert_trees_all_equal((plain.params, plain.history, plain.epochs), (fine.params, fine.history, fine.epochs))
    assert plain.within is None and fine.within.loss.shape == (epochs, m)
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[:, -1], fine.within), fine.history)
    assert np.all(np.isnan(fine.within.grad_norm[:, :-1]))  # within an epoch: a forward pass, no gradient

    def half_mse(p, xb, yb):  # the loss by hand: a sigmoid output, half the squared error, mean over examples
        h = jnp.tanh(xb @ p[0]["w"] + p[0]["b"][None, :])
        out = jax.nn.sigmoid(h @ p[1]["w"] + p[1]["b"][None, :])
        return 0.5 * jnp.mean(jnp.sum((out - yb) ** 2, axis=1))

    p, losses, seen = P3, [], []
    for epoch in range(epochs):
        for k, start in enumerate(range(0, 10, b), start=1):
            g = jax.grad(half_mse)(p, x[start:start + b], y[start:start + b])
            p = jax.tree.map(lambda w, d: w - 0.3 * d, p, g)
            if k in (1, 2, 4):
                losses.append(half_mse(p, x, y))
                seen.append(epoch * 10 + min(k * b, 10))
    np.testing.assert_allclose(fine.within.loss.reshape(-1), np.array(losses), rtol=1e-12)
    # Gradient evaluations in full-data equivalents: the examples seen so far over N, counted exactly.
    np.testing.assert_array_equal(np.rint(np.asarray(fine.within.grad_evals).reshape(-1) * 10).astype(int), seen)
    assert np.all(fine.within.loss_evals == 0)


def test_measures_within_an_epoch_end_where_the_run_stops_and_are_judged_at_epoch_ends():
    net, (x, y) = MLP((2, 3, 1), "tanh"), _xor32()
    p0 = net.init(jax.random.key(0), dtype=jnp.float32)
    kw = dict(key=jax.random.key(1), batch_size=1)  # shuffled: the same keys with and without
    free = train(net, optax.sgd(0.5), p0, x, y, rules=StopRules(max_epochs=40, stall_epochs=None),
                 measures_per_epoch=4, **kw)
    # A goal first met within epoch e (and not at the end of an earlier one) stops the run at e's end at the earliest.
    flat = np.asarray(free.within.loss).reshape(-1)
    goal = float(np.sort(flat)[len(flat) // 2])
    first = int(np.argmax(flat <= goal))  # a brute-force search of the records
    stopped = train(net, optax.sgd(0.5), p0, x, y, rules=StopRules(max_epochs=40, goal=goal, stall_epochs=None),
                    measures_per_epoch=4, **kw)
    e = int(stopped.epochs)
    assert e >= first // 4 + 1 and stopped.reason == "goal"
    assert float(stopped.history.loss[e - 1]) <= goal
    np.testing.assert_array_equal(stopped.within.loss[:e], free.within.loss[:e])
    assert np.all(np.isnan(stopped.within.loss[e:])) and np.all(stopped.within.wrong[e:] == -1)
    # Vmapped over seeds: each run's records are its own run's.
    many = train_many(net, "sgd", [3, 4], x, y, hyper={"learning_rate": 0.5}, batch_size=1,
                      rules=StopRules(max_epochs=5, stall_epochs=None), measures_per_epoch=2)
    assert many.within.loss.shape == (2, 5, 2) and not np.array_equal(many.within.loss[0], many.within.loss[1])
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[:, :, -1], many.within), many.history)


@pytest.mark.parametrize("kw, message", [
    (dict(measures_per_epoch=0), "measures_per_epoch must be a positive integer, got 0"),
    (dict(measures_per_epoch=2.5), "measures_per_epoch must be a positive integer, got 2.5"),
    (dict(measures_per_epoch=2, batch_size=None), "measures_per_epoch > 1 needs online or mini-batch training"),
    (dict(measures_per_epoch=5), "measures_per_epoch = 5 is more than the 4 batches of an epoch; use 1..4"),
    (dict(measures_per_epoch=2, measure_every=3), "give measure_every (got 3) or measures_per_epoch (got 2), not both"),
])
def test_measures_per_epoch_refuses_what_it_cannot_do(kw, message):
    kw = {"batch_size": 1, **kw}
    with pytest.raises(ValueError) as e:
        train(NET, optax.sgd(0.5), P0, XOR_X, XOR_Y, key=KEY, rules=StopRules(max_epochs=3), **kw)
    assert str(e.value).startswith(message)


@pytest.mark.parametrize("shuffle", [False, True])
def test_replicas_train_as_the_stacked_copies_do_and_measure_on_the_data(shuffle):
    # r copies of 10 examples in mini-batches of 4: 30 places, the last batch holds 2.  The stacked
    # copies' row i is example i mod 10, so with the same key (one permutation of 30 places) every
    # batch, and so every update, is the same: the params agree bitwise.  The loss is measured on
    # the 10 examples instead of the 30 rows, the same mean summed another way.
    net, (x, y), r = NET3, data(), 3
    kw = dict(key=KEY, batch_size=4, shuffle=shuffle, rules=StopRules(max_epochs=5, stall_epochs=None),
              measures_per_epoch=3)
    sgd = optim.make("sgd", learning_rate=0.3)
    copies = train(net, sgd, P3, jnp.tile(x, (r, 1)), jnp.tile(y, (r, 1)), **kw)
    replicated = train(net, sgd, P3, x, y, replicas=r, **kw)
    chex.assert_trees_all_equal(copies.params, replicated.params)
    np.testing.assert_allclose(replicated.within.loss, copies.within.loss, rtol=1e-13)
    # An epoch is r passes over the data: r gradients, and within it the passes made so far.
    np.testing.assert_array_equal(replicated.history.grad_evals, r * np.arange(1, 6))
    np.testing.assert_allclose(replicated.within.grad_evals, copies.within.grad_evals * r, rtol=1e-15)


def test_without_the_gradient_norm_a_run_trains_the_same_and_records_it_as_nan():
    sgd = optim.make("sgd", learning_rate=0.3)
    kw = dict(key=KEY, batch_size=3, rules=StopRules(max_epochs=6, stall_epochs=None), measures_per_epoch=2)
    full, lean = (train(NET3, sgd, P3, *data(), grad_norm=g, **kw) for g in (True, False))
    chex.assert_trees_all_equal(full.params, lean.params)
    np.testing.assert_allclose(lean.history.loss, full.history.loss, rtol=1e-14)
    np.testing.assert_array_equal(lean.history.wrong, full.history.wrong)
    assert np.all(np.isfinite(full.history.grad_norm)) and np.all(np.isnan(lean.history.grad_norm))


@pytest.mark.parametrize("source", ["exact", "no_derivative", "fann_clipped"])
def test_batch_mode_with_a_hand_written_rule_takes_the_measured_rule_gradient_as_its_step(source):
    # Batch mode measures the rule's gradient at the epoch's end and the next step takes it (one
    # forward pass serves the measurement, the rule's backward pass and jax.grad's norm).  Against a
    # loop written out here: the rule's gradient (bpkit.backprop) and w - lr g, epoch by epoch.
    from bpkit import backprop

    x, y = data()
    epochs, lr = 8, 0.7
    kw = dict(key=KEY, batch_size=None, source=source, rules=StopRules(max_epochs=epochs, stall_epochs=None))
    got = train(NET3, optim.make("sgd", learning_rate=lr), P3, x, y, **kw)
    lean = train(NET3, optim.make("sgd", learning_rate=lr), P3, x, y, grad_norm=False, **kw)
    p, norms, losses = P3, [], []
    for _ in range(epochs):
        g = backprop(NET3, p, x, y, "mse", source)
        p = jax.tree_util.tree_map(lambda w, d: w - lr * d, p, g)
        losses.append(float(loss_value(NET3, p, x, y)))
        norms.append(float(optax.tree.norm(autodiff(NET3, p, x, y))))  # the true gradient's norm
    chex.assert_trees_all_close(got.params, p, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got.history.loss, losses, rtol=1e-13)
    np.testing.assert_allclose(got.history.grad_norm, norms, rtol=1e-12)
    np.testing.assert_array_equal(got.history.grad_evals, np.arange(1, epochs + 1))  # one gradient an epoch
    # Without the norm: the same steps bitwise, the norm NaN.
    chex.assert_trees_all_equal(lean.params, got.params)
    np.testing.assert_array_equal(lean.history.loss, got.history.loss)
    assert np.all(np.isnan(lean.history.grad_norm))


@pytest.mark.parametrize("kw, message", [
    (dict(replicas=0), "replicas must be a positive integer, got 0"),
    (dict(replicas=2.0), "replicas must be a positive integer, got 2.0"),
    (dict(replicas=2, batch_size=None), "replicas > 1 needs online or mini-batch training"),
    (dict(replicas=2, batch_size=4), "replicas > 1 needs online or mini-batch training"),
    (dict(grad_norm=False, batch_size=None), "grad_norm=False needs online or mini-batch training (a batch_size) "
                                             "or a hand-written gradient source"),
    (dict(grad_norm=False, rules=StopRules(max_epochs=3, min_grad_norm=1e-3)), "the min_grad_norm rule needs"),
])
def test_replicas_and_grad_norm_refuse_what_they_cannot_do(kw, message):
    kw = {"batch_size": 1, "rules": StopRules(max_epochs=3), **kw}
    with pytest.raises(ValueError) as e:
        train(NET, optax.sgd(0.5), P0, XOR_X, XOR_Y, key=KEY, **kw)
    assert str(e.value).startswith(message)


FLOAT32_RUNS = """
import hashlib, sys, jax, jax.numpy as jnp, numpy as np
from bpkit import MLP, optim
from bpkit.stopping import StopRules
from bpkit.lanes import train_many
from bpkit.training import train
x = jnp.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = jnp.array([[0.], [1.], [1.], [0.]])
net = MLP((2, 2, 1), hidden="tanh", output="sigmoid")
rules = StopRules(max_epochs=60)
results = [train(net, optim.make(n), net.init(jax.random.key(0)), x, y, key=jax.random.key(1), rules=rules)
           for n in ("cg", "lbfgs")]
results.append(train_many(net, "cg", np.arange(8), x, y, rules=rules))
for r in results:
    print(hashlib.sha256(b"".join(np.asarray(a).tobytes() for a in jax.tree.leaves(r))).hexdigest())
"""


def test_float32_runs_are_bitwise_the_same_with_jax_64_bit_mode_off():
    # The tests run with 64-bit mode on (conftest), the CLI with it off. optax's zoom line
    # search starts its interval and interpolation scalars as Python floats, float64 under
    # 64-bit mode: a float32 run must still be the one program with the one result.
    off = subprocess.run([sys.executable, "-c", FLOAT32_RUNS], capture_output=True, text=True, check=True,
                         env={**os.environ, "JAX_ENABLE_X64": "0"})
    on = subprocess.run([sys.executable, "-c", FLOAT32_RUNS], capture_output=True, text=True, check=True,
                        env={**os.environ, "JAX_ENABLE_X64": "1"})
    assert len(off.stdout.split()) == 3
    assert off.stdout == on.stdout


@pytest.mark.parametrize("opt, batch_size", [(optax.sgd(0.5), 3), (optim.nonlinear_cg("pr+"), None),
                                             (optim.scg(), None)])
def test_a_compute_budget_stops_a_run_at_the_first_epoch_that_spends_it(opt, batch_size):
    x, y = data()
    budget = 100.0
    r = train(NET3, opt, P3, x, y, key=KEY, batch_size=batch_size,
              rules=StopRules(max_epochs=5000, stall_epochs=None, max_cu=budget))
    e = int(r.epochs)
    cu = np.asarray(r.history.loss_evals[:e]) + 3 * np.asarray(r.history.grad_evals[:e])
    assert r.reason == "max_cu"
    assert cu[-1] >= budget and (e == 1 or cu[-2] < budget)  # brute force: the first epoch end at or past it
    with pytest.raises(ValueError, match="max_cu must be positive or None"):
        StopRules(max_cu=0)
