"""bpkit.analysis against dense computations on tiny nets (jax.jacobian, jax.hessian, numpy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from bpkit import MLP, analysis, datasets, loss_value


@pytest.fixture(scope="module")
def tiny():
    d = datasets.load("parity3")
    net = MLP((3, 4, 1), hidden="tanh", output="sigmoid")
    params = net.init(jax.random.key(3), dtype=jnp.float64)
    x, y = jnp.asarray(d.x_train, jnp.float64), jnp.asarray(d.y_train, jnp.float64)
    return net, params, x, y, (lambda p, x, y: loss_value(net, p, x, y))


def _dense_per_example(net, params, x, y):
    """Row i: the gradient of example i's own loss, from the Jacobian of the vector of per-example losses."""
    losses = lambda p: jnp.stack([loss_value(net, p, x[i:i + 1], y[i:i + 1]) for i in range(len(x))])
    jac = jax.jacobian(losses)(params)
    return np.concatenate([np.asarray(a).reshape(len(x), -1) for a in jax.tree_util.tree_leaves(jac)], axis=1)


def test_per_example_gradients_equal_the_jacobian_of_per_example_losses(tiny):
    net, params, x, y, f = tiny
    per = analysis.per_example_grads(f, params, x, y)
    rows = np.concatenate([np.asarray(a).reshape(len(x), -1) for a in jax.tree_util.tree_leaves(per)], axis=1)
    np.testing.assert_allclose(rows, _dense_per_example(net, params, x, y), rtol=1e-12, atol=1e-15)
    # Their mean is the full-batch gradient (the loss is a mean over examples).
    full = ravel_pytree(jax.grad(f)(params, x, y))[0]
    np.testing.assert_allclose(rows.mean(0), full, rtol=1e-10, atol=1e-14)


def test_gradient_statistics_against_other_formulas(tiny):
    net, params, x, y, f = tiny
    s = analysis.gradient_stats(analysis.per_example_grads(f, params, x, y))
    g = _dense_per_example(net, params, x, y)
    mean = g.mean(0)
    # Variance trace as E|g|^2 - |E g|^2; the ratio from the full-batch gradient; signs example by example.
    assert s.variance_trace == pytest.approx(np.mean(np.sum(g * g, 1)) - mean @ mean, rel=1e-10)
    full = ravel_pytree(jax.grad(f)(params, x, y))[0]
    assert s.norm_of_mean == pytest.approx(float(np.linalg.norm(full)), rel=1e-10)
    assert s.ratio == pytest.approx(np.linalg.norm(full) / np.mean([np.linalg.norm(r) for r in g]), rel=1e-10)
    against = sum(1 for r in g if sum(a * b for a, b in zip(r, mean, strict=True)) < 0)
    assert s.fraction_against == against / len(g)
    cos = sorted(float(r @ mean / (np.linalg.norm(r) * np.linalg.norm(mean))) for r in g)
    assert s.median_cos_to_mean == pytest.approx((cos[3] + cos[4]) / 2, rel=1e-12)  # 8 examples


def test_identical_and_opposed_gradients():
    one = {"w": jnp.ones((4, 2)) * jnp.array([[1.0], [1.0], [1.0], [1.0]])}
    s = analysis.gradient_stats(one)
    assert s.ratio == pytest.approx(1.0) and s.variance_trace == 0 and s.fraction_against == 0
    opposed = {"w": jnp.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])}
    s = analysis.gradient_stats(opposed)
    assert s.ratio == pytest.approx(1 / 3) and s.fraction_against == pytest.approx(1 / 3)


def _dense_hessian(f, params, x, y):
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.hessian(lambda v: f(unravel(v), x, y))(flat))


def test_hvp_equals_the_dense_hessian_times_v(tiny):
    _, params, x, y, f = tiny
    v = jax.tree_util.tree_map(lambda a: jnp.cos(jnp.arange(a.size, dtype=a.dtype).reshape(a.shape)), params)
    hv = ravel_pytree(analysis.hvp(f, params, v, x, y))[0]
    np.testing.assert_allclose(hv, _dense_hessian(f, params, x, y) @ ravel_pytree(v)[0], rtol=1e-10, atol=1e-13)


def test_lanczos_eigenvalues_equal_the_dense_spectrum(tiny):
    _, params, x, y, f = tiny
    dense = np.linalg.eigvalsh(_dense_hessian(f, params, x, y))
    n = dense.size  # 21 params
    full = analysis.hessian_eigenvalues(f, params, x, y, k=n, steps=n, key=jax.random.key(0))
    np.testing.assert_allclose(full, dense[::-1], atol=1e-10 * np.abs(dense).max())
    top = analysis.hessian_eigenvalues(f, params, x, y, k=2, steps=16, key=jax.random.key(1))
    np.testing.assert_allclose(top, dense[::-1][:2], rtol=1e-6)
    low = analysis.hessian_eigenvalues(f, params, x, y, k=1, steps=n, key=jax.random.key(2), which="smallest")
    np.testing.assert_allclose(low, dense[:1], atol=1e-10 * np.abs(dense).max())


def test_lanczos_survives_a_breakdown():
    # A quadratic whose Hessian has 2 distinct eigenvalues: the Krylov space is 2-dimensional,
    # so Lanczos breaks down after 2 steps and must restart to find the rest.
    h = np.diag([3.0, 3.0, 3.0, 1.0, 1.0])
    f = lambda p: 0.5 * p["v"] @ jnp.asarray(h) @ p["v"]
    ev = analysis.hessian_eigenvalues(f, {"v": jnp.zeros(5, jnp.float64)}, k=5, steps=5, key=jax.random.key(0))
    np.testing.assert_allclose(ev, [3, 3, 3, 1, 1], atol=1e-12)


def test_power_iteration_finds_the_eigenvalue_of_largest_magnitude(tiny):
    _, params, x, y, f = tiny
    dense = np.linalg.eigvalsh(_dense_hessian(f, params, x, y))
    biggest = dense[np.argmax(np.abs(dense))]
    assert analysis.power_iteration(f, params, x, y, iters=300, key=jax.random.key(0)) == pytest.approx(biggest,
                                                                                                        rel=1e-6)


def test_angles_and_layer_norms():
    u = [{"w": jnp.array([[1.0, 0.0]]), "b": jnp.array([0.0, 0.0])}, {"w": jnp.array([[0.0]]), "b": jnp.array([2.0])}]
    v = [{"w": jnp.array([[0.0, 3.0]]), "b": jnp.array([0.0, 0.0])}, {"w": jnp.array([[0.0]]), "b": jnp.array([-1.0])}]
    assert analysis.angle(u, u) == pytest.approx(0.0, abs=1e-5)  # arccos near 1: 1 ulp of cos is ~1e-6 deg
    assert analysis.layer_cosines(u, v) == [0.0, -1.0]
    assert analysis.cosine(u, v) == pytest.approx(-2 / (np.sqrt(5) * np.sqrt(10)))
    assert analysis.angle(u, jax.tree_util.tree_map(lambda a: -a, u)) == pytest.approx(180.0)
    assert analysis.layer_norms(u) == {"w": [1.0, 0.0], "b": [0.0, 2.0]}


def test_bad_lanczos_arguments(tiny):
    _, params, x, y, f = tiny
    for kw in ({"k": 0}, {"k": 5, "steps": 3}, {"steps": 999}, {"which": "middle"}):
        with pytest.raises(ValueError):
            analysis.hessian_eigenvalues(f, params, x, y, key=jax.random.key(0), **kw)


def test_least_squares_on_xor_is_mse_a_quarter():
    from bpkit.analysis import least_squares_half_mse

    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    half_mse, coef = least_squares_half_mse(x, y)
    assert abs(half_mse - 0.125) < 1e-15  # MSE 0.25: the best any linear map does on XOR
    np.testing.assert_allclose(coef[:, 0], [0.0, 0.0, 0.5], atol=1e-15)  # predicts 0.5 everywhere


@pytest.mark.parametrize("hidden", [("relu", "relu"), ("relu6", "tanh"), ("hard_tanh", "leaky_relu")])
def test_dead_units_equal_a_count_unit_by_unit(hidden):
    # Brute force: a hidden unit is dead when every example's pre-activation lies where f' is 0.
    flat_zero = {"relu": lambda z: z <= 0, "relu6": lambda z: (z <= 0) | (z >= 6), "tanh": lambda z: z != z,
                 "hard_tanh": lambda z: np.abs(z) > 1, "leaky_relu": lambda z: z != z}
    net = MLP((3, 6, 5, 1), hidden=hidden)
    x = np.asarray(jax.random.normal(jax.random.key(2), (7, 3)))
    from bpkit import activations

    seen = set()
    for seed in range(12):
        params = net.init(jax.random.key(seed), scheme="uniform", scale=1.5)
        u, want = x, 0
        for layer, name in zip(params[:-1], hidden, strict=True):
            z = u @ np.asarray(layer["w"]) + np.asarray(layer["b"])
            want += int(np.sum(np.all(flat_zero[name](z), axis=0)))
            u = np.asarray(activations.get(name).fn(z))
        assert int(analysis.dead_units(net, params, jnp.asarray(x))) == want
        seen.add(want)
    assert len(seen) > 1  # the nets differ in how many units are dead: the count is tested, not only 0
