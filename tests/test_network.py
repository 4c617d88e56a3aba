"""Bad input gets one-line ValueErrors; the Flax model equals the pure MLP."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpkit import MLP, autodiff, backprop, losses
from bpkit.flax_model import FlaxMLP, from_flax, to_flax

NET = MLP((2, 3, 1), hidden="tanh", output="sigmoid")
P = NET.init(jax.random.key(0))
X = jnp.zeros((4, 2))
Y = jnp.zeros((4, 1))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: NET.apply(P, jnp.zeros((4, 3))), r"^input x has width 3 but the network has 2 inputs$"),
        (lambda: NET.apply(P, jnp.zeros(2)), r"^input x must be a 2-D array \(examples, inputs\), got shape \(2,\)$"),
        (lambda: backprop(NET, P, X, jnp.zeros((4, 2))), r"^targets y has width 2 but the network has 1 outputs$"),
        (lambda: backprop(NET, P, X, jnp.zeros((5, 1))),
         r"^input x has 4 examples but targets y has 5; they must match$"),
        (lambda: MLP((2, 3, 1), hidden="sigmod"), r"^unknown activation 'sigmod'; valid: identity, step, sigmoid,"),
        (lambda: backprop(NET, P, X, Y, loss="hinge"), r"^unknown loss 'hinge'; valid: mse, bce, softmax_ce"),
        (lambda: backprop(NET, P, X, Y, rule="guess"), r"^unknown rule 'guess'; valid: exact, output_form,"),
        (lambda: backprop(NET, P, X.at[0, 0].set(jnp.inf), Y),
         r"^input x holds 1 non-finite value\(s\) \(first: inf at index \(0, 0\)\)"),
        (lambda: backprop(NET, P, X, Y.at[2, 0].set(jnp.nan), "bce"), r"^targets y holds 1 non-finite"),
        (lambda: backprop(MLP((2, 1), output="tanh"), P[1:], X, Y, "bce"),
         r"^loss 'bce' needs output activation 'sigmoid', got 'tanh'"),
        (lambda: NET.apply(P[:1], X), r"^params must be a list of 2 layer dicts for sizes \(2, 3, 1\), got 1$"),
        (lambda: MLP((2, 0, 1)), r"^sizes must be at least two positive integers"),
        (lambda: MLP((2, 3, 3, 1), hidden=("tanh",)), r"^hidden names 1 activation\(s\) but sizes"),
        (lambda: NET.init(jax.random.key(0), scheme="zeros"), r"^unknown init scheme 'zeros'; valid: lecun_normal,"),
        (lambda: NET.apply(P, jnp.zeros((0, 2))), r"^input x is empty \(0 examples\)"),
    ],
)
def test_bad_input_is_a_one_line_value_error(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_shape_errors_also_fire_inside_jit():
    with pytest.raises(ValueError, match="input x has width 3"):
        jax.jit(NET.apply)(P, jnp.zeros((4, 3)))


@pytest.mark.parametrize("loss, out", [("mse", "tanh"), ("bce", "sigmoid"), ("softmax_ce", "softmax")])
def test_flax_model_equals_pure_mlp(loss, out):
    net = MLP((3, 5, 4, 3), hidden=("relu", "gelu"), output=out)
    params = net.init(jax.random.key(1), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(2), (6, 3), jnp.float64)
    y = jax.nn.one_hot(jnp.arange(6) % 3, 3, dtype=jnp.float64)
    module = FlaxMLP(net)
    # Identical outputs, bit for bit.
    np.testing.assert_array_equal(module.apply(to_flax(params), x), net.apply(params, x))
    # Flax's own init has the same structure; conversion is lossless both ways.
    v = module.init(jax.random.key(0), x)
    chex.assert_trees_all_equal_structs(from_flax(v), params)
    chex.assert_trees_all_equal(from_flax(to_flax(params)), params)
    chex.assert_trees_all_equal(to_flax(from_flax(v)), v)

    lobj = losses.get(loss)

    def flax_loss(v):
        a, z = module.apply(v, x, with_logits=True)
        return lobj.value(z, a, y)

    chex.assert_trees_all_close(from_flax(jax.grad(flax_loss)(to_flax(params))), backprop(net, params, x, y, loss),
                                rtol=1e-10, atol=1e-14)
    chex.assert_trees_all_close(autodiff(net, params, x, y, loss), from_flax(jax.grad(flax_loss)(to_flax(params))),
                                rtol=1e-12, atol=1e-15)


def test_from_flax_rejects_foreign_params():
    with pytest.raises(ValueError, match="Flax params must hold layers layer_0"):
        from_flax({"params": {"Dense_0": {}}})


def test_losses_are_stable_from_logits():
    z = jnp.array([[800.0], [-800.0]])
    a = jax.nn.sigmoid(z)
    y = jnp.array([[0.0], [1.0]])
    v = losses.get("bce").value(z, a, y)
    assert float(v) == pytest.approx(800.0)  # (800 + 800) / 2, no log(0)


def test_bias_init_shifts_every_bias_and_nothing_else():
    net = MLP((2, 4, 3, 1), hidden="relu")
    key = jax.random.key(7)
    base, shifted = net.init(key), net.init(key, bias=0.1)
    for a, b in zip(base, shifted, strict=True):
        np.testing.assert_array_equal(a["w"], b["w"])
        np.testing.assert_array_equal(b["b"], np.full(a["b"].shape, 0.1, np.float32))
    uniform, moved = net.init(key, scheme="uniform"), net.init(key, scheme="uniform", bias=-0.25)
    for a, b in zip(uniform, moved, strict=True):
        np.testing.assert_allclose(b["b"], a["b"] - 0.25, rtol=0, atol=1e-7)
