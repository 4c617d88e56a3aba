"""The central test: hand-written backprop == jax.grad == finite differences.

Property-based over architectures (depth 1-4, widths, one activation per
layer), losses, batch sizes and seeds, through jax.jit.  Tolerances:
float64 1e-10 relative (worst measured by `bpkit check`: 1.3e-14), float32
1e-4 relative (worst measured: 1.7e-6); see bpkit.gradcheck.
"""

from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpkit import MLP, activations, autodiff, backprop, check_gradient, loss_value
from bpkit.gradients import value_and_backprop

SMOOTH = [n for n in activations.names(elementwise_only=True) if not activations.get(n).kinks]
ALL = list(activations.names(elementwise_only=True))
LOSS_OUT = {"mse": None, "bce": "sigmoid", "softmax_ce": "softmax", "atanh": None, "atanh_symmetric": None}
TOL = {"float64": dict(rtol=1e-10, atol=1e-14), "float32": dict(rtol=1e-4, atol=1e-7)}


# One compiled program per (net, loss, rule): shared by every test below.
@partial(jax.jit, static_argnums=(0, 4, 5))
def jit_backprop(net, params, x, y, loss, rule="exact"):
    return backprop(net, params, x, y, loss, rule)


@partial(jax.jit, static_argnums=(0, 4))
def jit_autodiff(net, params, x, y, loss):
    return autodiff(net, params, x, y, loss)


def make_problem(draw_or_args):
    (depth, widths, hidden, loss, out_act, batch, seed, dtype) = draw_or_args
    names = tuple(hidden[: depth - 1]) + (out_act or hidden[depth - 1],)
    # A softmax layer of one unit is constant, and MLP refuses it: such layers get 2 units.
    sizes = (widths[0], *(max(w, 2) if a == "softmax" else w for w, a in zip(widths[1: depth + 1], names, strict=True)))
    net = MLP(sizes, hidden=names[:-1], output=names[-1])
    kp, kx, ky = jax.random.split(jax.random.key(seed), 3)
    params = net.init(kp, scheme="uniform", scale=0.8, dtype=dtype)
    x = jax.random.normal(kx, (batch, sizes[0]), dtype)
    k = sizes[-1]
    if loss == "softmax_ce":
        y = jax.nn.one_hot(jax.random.randint(ky, (batch,), 0, k), k, dtype=dtype)
    elif loss == "bce":
        y = jax.random.bernoulli(ky, 0.5, (batch, k)).astype(dtype)
    else:
        y = jax.random.normal(ky, (batch, k), dtype)
    return net, params, x, y


@st.composite
def problems(draw, acts=ALL, dtypes=("float64", "float32")):
    depth = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 5), min_size=5, max_size=5))
    hidden = draw(st.lists(st.sampled_from(acts), min_size=4, max_size=4))
    loss = draw(st.sampled_from(list(LOSS_OUT)))
    batch = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from(dtypes))
    return loss, dtype, make_problem((depth, widths, hidden, loss, LOSS_OUT[loss], batch, seed, jnp.dtype(dtype)))


@given(problems())
def test_backprop_equals_jax_grad(problem):
    loss, dtype, (net, params, x, y) = problem
    hand = jit_backprop(net, params, x, y, loss)
    auto = jit_autodiff(net, params, x, y, loss)
    chex.assert_trees_all_equal_structs(hand, auto)
    chex.assert_trees_all_equal_dtypes(hand, params)
    chex.assert_tree_all_finite(hand)
    chex.assert_trees_all_close(hand, auto, **TOL[dtype])


@settings(max_examples=15)
@given(problems(acts=SMOOTH, dtypes=("float64",)))
def test_backprop_equals_finite_differences(problem):
    loss, _, (net, params, x, y) = problem
    report = check_gradient(
        lambda p, x, y: loss_value(net, p, x, y, loss),
        lambda p, x, y: jit_backprop(net, p, x, y, loss),
        params, x, y,
    )
    assert report.passed, str(report)
    assert report.max_rel_error < 1e-7


@settings(max_examples=20)
@given(problems(acts=[n for n in ALL if activations.get(n).has_output_form]))
def test_output_form_rule_is_a_gradient(problem):
    loss, dtype, (net, params, x, y) = problem
    hand = jit_backprop(net, params, x, y, loss, "output_form")
    chex.assert_trees_all_close(hand, jit_autodiff(net, params, x, y, loss), **TOL[dtype])


def _xor_net(hidden="sigmoid", loss="mse"):
    net = MLP((2, 3, 1), hidden=hidden, output="sigmoid")
    params = net.init(jax.random.key(3), scheme="uniform", dtype=jnp.float64)
    x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = jnp.array([[0.0], [1.0], [1.0], [0.0]])
    return net, params, x, y


@pytest.mark.parametrize("rule", ["no_derivative", "constant_derivative"])
def test_ablations_are_flagged_as_not_gradients(rule):
    net, params, x, y = _xor_net()
    report = check_gradient(
        lambda p, x, y: loss_value(net, p, x, y), lambda p, x, y: backprop(net, p, x, y, rule=rule), params, x, y
    )
    assert not report.passed
    assert {leaf.path for _, leaf in report.failures} >= {"[0]['w']", "[1]['w']"}


def test_ablation_is_harmless_at_a_sigmoid_output_with_cross_entropy():
    # No hidden layer: delta_L = a - y has no f' to omit (REFERENCES: the factor cancels).
    net = MLP((2, 1), output="sigmoid")
    p = net.init(jax.random.key(0), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (5, 2), jnp.float64)
    y = jnp.array([[0.0], [1.0], [1.0], [0.0], [1.0]])
    chex.assert_trees_all_close(backprop(net, p, x, y, "bce", "no_derivative"), autodiff(net, p, x, y, "bce"),
                                rtol=1e-12)
    # ...but with mse the output delta keeps s'(z), and omitting it is wrong.
    assert not np.allclose(backprop(net, p, x, y, "mse", "no_derivative")[0]["w"], autodiff(net, p, x, y,
                                                                                            "mse")[0]["w"])


def test_fann_clipped_rule_floors_the_derivative_in_saturation():
    # One sigmoid unit, mse: delta = (a - y) * f'(...), so the weight gradient shows which f' was used.
    net = MLP((1, 1), output="sigmoid")
    x = jnp.array([[1.0]], jnp.float64)
    y = jnp.array([[0.0]], jnp.float64)
    for w, clipped in ((0.5, False), (12.0, True)):  # sigmoid(0.5) = 0.62 is inside [0.01, 0.99]; sigmoid(12) is not
        p = [{"w": jnp.array([[w]], jnp.float64), "b": jnp.zeros(1, jnp.float64)}]
        a = float(jax.nn.sigmoid(w))
        g = float(backprop(net, p, x, y, "mse", "fann_clipped")[0]["w"][0, 0])
        ac = min(max(a, float(np.float32(0.01))), float(np.float32(0.99)))  # FANN: C floats 0.01f, 0.99f
        np.testing.assert_allclose(g, a * ac * (1 - ac), rtol=1e-13)
        exact = float(autodiff(net, p, x, y, "mse")[0]["w"][0, 0])
        assert (abs(g - exact) > 1e-3 * abs(exact)) == clipped
    # tanh hidden: clipped to [-0.98, 0.98]; identity output: no clipping, same as the output form.
    net = MLP((2, 3, 1), hidden="tanh", output="identity")
    p = net.init(jax.random.key(0), dtype=jnp.float64)
    x = 0.3 * jax.random.normal(jax.random.key(1), (6, 2), jnp.float64)
    y = jnp.ones((6, 1), jnp.float64)
    assert float(jnp.max(jnp.abs(net.forward(p, x)[1].activations[1]))) < 0.98  # every unit inside the clip range
    chex.assert_trees_all_close(backprop(net, p, x, y, rule="fann_clipped"), autodiff(net, p, x, y), rtol=1e-12)
    big = [{"w": 20 * p[0]["w"], "b": p[0]["b"]}, p[1]]
    assert not np.allclose(backprop(net, big, x, y, rule="fann_clipped")[0]["w"], autodiff(net, big, x, y)[0]["w"])


def test_value_and_backprop_returns_the_loss():
    net, params, x, y = _xor_net()
    value, grads = value_and_backprop(net, params, x, y)
    assert float(value) == pytest.approx(float(loss_value(net, params, x, y)), rel=1e-15)
    chex.assert_trees_all_close(grads, autodiff(net, params, x, y), rtol=1e-12)


def test_compiles_once_per_static_configuration():
    net, params, x, y = _xor_net("tanh")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(p, x, y):
        return backprop(net, p, x, y)

    for seed in range(3):
        p = net.init(jax.random.key(seed), dtype=jnp.float64)
        step(p, x + seed, y)


def test_bitwise_deterministic():
    net, params, x, y = _xor_net("tanh")
    a = jax.tree.leaves(jit_backprop(net, params, x, y, "mse"))
    b = jax.tree.leaves(jit_backprop(net, jax.tree.map(jnp.copy, params), jnp.copy(x), y, "mse"))
    for u, v in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(u), np.asarray(v))


def test_mlp_shapes_and_init_schemes():
    net = MLP((4, 7, 3), hidden="relu", output="identity")
    for scheme in ("lecun_normal", "glorot_uniform", "he_normal", "uniform"):
        p = net.init(jax.random.key(0), scheme=scheme)
        chex.assert_shape([p[0]["w"], p[0]["b"], p[1]["w"], p[1]["b"]], [(4, 7), (7,), (7, 3), (3,)])
        assert p[0]["w"].dtype == jnp.float32
    big = MLP((400, 300, 1)).init(jax.random.key(0))
    assert float(jnp.std(big[0]["w"])) == pytest.approx(400 ** -0.5, rel=0.05)  # LeCun: std fan_in^-1/2
    assert net.num_params == 4 * 7 + 7 + 7 * 3 + 3


@pytest.mark.parametrize("rule", ["constant_derivative", "fann_clipped", "no_derivative"])
def test_every_rule_runs_under_jit(rule):
    # The constant f'(0) is a Python float even inside a trace (regression: it was a tracer under jit).
    net, params, x, y = _xor_net()
    eager = backprop(net, params, x, y, rule=rule)
    chex.assert_trees_all_close(jax.jit(lambda p: backprop(net, p, x, y, rule=rule))(params), eager, rtol=1e-6)


@pytest.mark.parametrize("loss, output", [("mse", "tanh"), ("bce", "sigmoid"), ("softmax_ce", "softmax"),
                                          ("atanh", "sigmoid")])
@pytest.mark.parametrize("steepness", [1.0, (0.5, 3.0)])
def test_a_clipped_sum_is_differentiated_by_hand_as_by_jax_grad(loss, output, steepness):
    # FANN's neuron-sum clip: |z| <= limit, derivative 0 beyond; a third of the sums are cut here.  With FANN's
    # steepness k the layer computes z = clip(k s): its delta takes a factor k.
    net = MLP((3, 4, 3), hidden="tanh", output=output, sum_limit=1.5, steepness=steepness)
    params = net.init(jax.random.key(1), scheme="uniform", scale=2.0, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(2), (6, 3), jnp.float64)
    y = jax.nn.one_hot(jnp.arange(6) % 3, 3, dtype=jnp.float64)
    _, cache = net.forward(params, x)
    assert all(0 < float(jnp.mean(jnp.abs(z) >= 1.5)) < 1 for z in cache.zs[:1])
    hand = jit_backprop(net, params, x, y, loss)
    chex.assert_trees_all_close(hand, jit_autodiff(net, params, x, y, loss), **TOL["float64"])
    unclipped = MLP((3, 4, 3), hidden="tanh", output=output, steepness=steepness)
    assert not np.allclose(hand[0]["w"], jit_backprop(unclipped, params, x, y, loss)[0]["w"])
    report = check_gradient(lambda p, x, y: loss_value(net, p, x, y, loss),
                            lambda p, x, y: jit_backprop(net, p, x, y, loss), params, x, y)
    assert report.passed, str(report)


@pytest.mark.parametrize("rule", ["exact", "no_derivative", "fann_clipped"])
def test_measure_with_rule_is_the_rule_and_jax_grad_from_one_forward_pass(rule):
    # The loop's batch-mode measurement with a hand-written source: the loss, the outputs, the rule's
    # gradient and jax.grad's, each equal to the function that computes it alone.
    from bpkit.gradients import measure_with_rule

    net = MLP((3, 5, 4, 2), hidden=("tanh", "sigmoid"), output="sigmoid")
    params = net.init(jax.random.key(3), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(4), (7, 3), jnp.float64)
    y = (jax.random.uniform(jax.random.key(5), (7, 2)) > 0.5).astype(jnp.float64)
    value, out, grads, true = jax.jit(measure_with_rule, static_argnums=(0, 4, 5))(net, params, x, y, "mse", rule)
    np.testing.assert_allclose(value, loss_value(net, params, x, y, "mse"), rtol=1e-15)
    np.testing.assert_allclose(out, net.apply(params, x), rtol=1e-15)
    chex.assert_trees_all_close(grads, backprop(net, params, x, y, "mse", rule), rtol=1e-14, atol=1e-16)
    chex.assert_trees_all_close(true, autodiff(net, params, x, y, "mse"), rtol=1e-14, atol=1e-16)
    if rule == "no_derivative":  # an ablation: not the gradient, so the two must differ
        assert not np.allclose(grads[0]["w"], true[0]["w"])
    lean = measure_with_rule(net, params, x, y, "mse", rule, autodiff=False)
    assert lean[3] is None
    chex.assert_trees_all_close(lean[2], grads, rtol=1e-14, atol=1e-16)
