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
    if name == "bce":
        a = 1 / (1 + np.exp(-z))
        return float(-np.sum(w[:, None] * (y * np.log(a) + (1 - y) * np.log(1 - a))))
    a = np.exp(z - z.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    return float(-np.sum(w * np.sum(y * np.log(a), 1)))


CASES = [("mse", "sigmoid", Y01), ("bce", "sigmoid", Y01), ("softmax_ce", "softmax", ONE_HOT)]


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
    with pytest.raises(ValueError, match="unknown loss 'l1'; valid: mse, bce, softmax_ce"):
        losses.get("l1")
