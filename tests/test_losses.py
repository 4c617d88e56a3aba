"""bpkit.losses: each loss against its formula written out in NumPy, and its hand-written output delta
against jax.grad of the value (float64); weights, aliases and misuse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpkit import activations, losses

RNG = np.random.default_rng(3)
Z = RNG.normal(size=(5, 3)) * 3  # some saturated units
Y01 = (RNG.uniform(size=(5, 3)) > 0.5).astype(np.float64)
ONE_HOT = np.eye(3)[RNG.integers(0, 3, size=5)]
W = RNG.uniform(size=5)
W /= W.sum()


def _reference(name: str, z: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """The loss as its docstring writes it, in NumPy: weights per example, summing to 1."""
    if name == "mse":
        a = 1 / (1 + np.exp(-z))
        return float(np.sum(w[:, None] * 0.5 * (a - y) ** 2))
    if name.startswith("atanh"):  # r * sum w * (2 e artanh(e) + log(1 - e^2)), e = (y - a)/r, inside the cap
        r = 2.0 if name == "atanh_symmetric" else 1.0
        e = (y - np.tanh(z) if r == 2 else y - 1 / (1 + np.exp(-z))) / r
        assert np.all(np.abs(e) < 0.9999999)
        return float(r * np.sum(w[:, None] * (2 * e * np.arctanh(e) + np.log(1 - e * e))))
    if name == "bce":
        a = 1 / (1 + np.exp(-z))
        return float(-np.sum(w[:, None] * (y * np.log(a) + (1 - y) * np.log(1 - a))))
    a = np.exp(z - z.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    return float(-np.sum(w * np.sum(y * np.log(a), 1)))


CASES = [("mse", "sigmoid", Y01), ("bce", "sigmoid", Y01), ("softmax_ce", "softmax", ONE_HOT),
         ("atanh", "sigmoid", Y01), ("atanh_symmetric", "tanh", 2 * Y01 - 1)]


@pytest.mark.parametrize("name, output, y", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_each_loss_is_its_formula(name, output, y, weighted):
    loss, act = losses.get(name), activations.get(output)
    z = jnp.asarray(Z)
    w = W if weighted else np.full(len(Z), 1 / len(Z))
    got = float(loss.value(z, act.fn(z), jnp.asarray(y), jnp.asarray(w) if weighted else None))
    assert got == pytest.approx(_reference(name, Z, y, w), rel=1e-12)


@pytest.mark.parametrize("name, output, y", CASES)
def test_each_hand_written_delta_is_the_gradient_of_its_value(name, output, y):
    loss, act = losses.get(name), activations.get(output)
    z, y, w = jnp.asarray(Z), jnp.asarray(y), jnp.asarray(W)

    hand = loss.delta(z, act.fn(z), y, act.vjp, w)  # dC/da pulled back by the activation's own derivative
    auto = jax.grad(lambda z_: loss.value(z_, act.fn(z_), y, w))(z)
    np.testing.assert_allclose(np.asarray(hand), np.asarray(auto), rtol=1e-12, atol=1e-15)


def test_cross_entropy_needs_its_own_output_and_mse_takes_any():
    with pytest.raises(ValueError, match="loss 'bce' needs output activation 'sigmoid', got 'tanh'"):
        losses.get("bce").check_output_activation("tanh")
    losses.get("mse").check_output_activation("tanh")
    assert losses.get("squared_error") is losses.get("mse") and losses.get("cross_entropy").name == "softmax_ce"
    with pytest.raises(ValueError, match="unknown loss 'l1'; valid: mse, bce, softmax_ce, atanh, atanh_symmetric"):
        losses.get("l1")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_atanh_error_is_fanns_on_both_sides_of_its_cap(dtype):
    # fann_compute_MSE: log((1 + e)/(1 - e)) for |e| <= 0.9999999, +-17 beyond; the value's slope is the same
    e = np.array([-1.0, -0.99999995, -0.9, -0.3, 0.0, 0.5, 0.9999, 0.99999995, 1.0])
    e = e.astype(dtype).astype(np.float64)  # the error the run's dtype holds
    with np.errstate(divide="ignore"):
        want = np.where(e > 0.9999999, 17.0, np.where(e < -0.9999999, -17.0, np.log((1 + e) / (1 - e))))
    got = losses.atanh_error(jnp.asarray(e, dtype))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12 if dtype == "float64" else 1e-5)
    loss = losses.get("fann_tanh")
    a = jnp.zeros(len(e), dtype)[:, None]  # identity output: dC/da = -L(e)/N, by jax.grad of the value
    slope = jax.grad(lambda a_: loss.value(a_, a_, jnp.asarray(e, dtype)[:, None]))(a)
    assert bool(jnp.all(jnp.isfinite(slope)))
    if dtype == "float64":
        np.testing.assert_allclose(-np.asarray(slope)[:, 0] * len(e), want, rtol=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_atanh_value_is_right_inside_a_compiled_sum(dtype):
    # A large batch, jitted with the sigmoid before it: XLA's CPU compiler once fused this sum wrongly (jax 0.10.2
    # took log1p(-x) for log1p(x) in one fusion; the value came out negative).  Against NumPy in float64.
    rng = np.random.default_rng(5)
    z = rng.normal(size=(3600, 3)) * 2
    y = (rng.uniform(size=(3600, 3)) > 0.8).astype(np.float64)
    loss, act = losses.get("atanh"), activations.get("sigmoid")
    got = jax.jit(lambda z_, y_: loss.value(z_, act.fn(z_), y_))(jnp.asarray(z, dtype), jnp.asarray(y, dtype))
    e = y - 1 / (1 + np.exp(-np.asarray(z, dtype).astype(np.float64)))
    want = np.mean(np.sum(2 * e * np.arctanh(e) + np.log(1 - e * e), axis=1))
    assert float(got) == pytest.approx(want, rel=1e-5 if dtype == "float32" else 1e-12)
