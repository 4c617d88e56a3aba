"""Every activation's hand-written derivative against jax.grad on a dense grid."""

import chex
import jax
import jax.numpy as jnp
import pytest

from bpkit import activations as acts
from bpkit import check_activation

ELEMENTWISE = acts.names(elementwise_only=True)
REQUIRED = {
    "identity", "step", "sigmoid", "tanh", "scaled_tanh", "hard_tanh", "relu", "leaky_relu",
    "elu", "selu", "softplus", "softsign", "gelu", "gelu_tanh", "silu", "mish", "gaussian", "sine",
}


def test_registry_has_the_required_activations():
    assert set(acts.names()) >= REQUIRED


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_jax_grad_on_grid(name, dtype):
    report = check_activation(name, dtype)
    assert report.passed, str(report)
    assert report.points > 8000


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if acts.get(n).kinks])
def test_kink_convention_is_jax_s(name):
    for z, ours, ref in check_activation(name).kinks:
        assert ours == ref, f"{name}'({z}) = {ours}, jax.grad gives {ref}"


def test_known_kink_values():
    assert float(acts.get("relu").deriv(0.0)) == 0.0
    assert float(acts.get("leaky_relu").deriv(0.0)) == 1.0
    assert float(acts.get("hard_tanh").deriv(1.0)) == 1.0


def test_a_wrong_derivative_is_caught_and_located():
    bad = acts.Activation("bad_tanh", jnp.tanh, lambda z: 1 - jnp.tanh(z))  # forgot the square
    report = check_activation(bad)
    assert not report.passed
    assert abs(report.worst_ours - report.worst_reference) == pytest.approx(report.max_abs_error)


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if acts.get(n).has_output_form])
def test_output_form_equals_exact_away_from_saturation(name):
    act = acts.get(name)
    z = jnp.linspace(-3.0, 3.0, 601, dtype=jnp.float64)
    z = z[jnp.all(jnp.abs(z[:, None] - jnp.asarray(act.kinks or (99.0,))[None, :]) > 1e-3, axis=1)]
    chex.assert_trees_all_close(act.output_deriv(act.fn(z)), act.deriv(z), rtol=1e-9, atol=1e-12)


def test_output_form_underflows_before_exact_derivative():
    # REFERENCES: s(1-s) hits exactly 0 in saturation while s(z)s(-z) does not.
    report = check_activation("sigmoid", "float32")
    assert report.output_form_zero_from is not None and report.output_form_zero_from < 20
    z = jnp.float32(30.0)
    act = acts.get("sigmoid")
    assert float(act.output_deriv(act.fn(z))) == 0.0
    assert float(act.deriv(z)) > 0.0


def test_scaled_tanh_facts():
    act = acts.get("scaled_tanh")
    chex.assert_trees_all_close(act.fn(jnp.array([1.0, -1.0])), jnp.array([1.0, -1.0]), atol=1e-4)
    # max |f''| where tanh^2(2x/3) = 1/3, x = 0.9877 (LeCun et al. 1998)
    z = jnp.linspace(0.0, 3.0, 30001, dtype=jnp.float64)
    f2 = jax.vmap(jax.grad(act.deriv))(z)
    assert float(z[jnp.argmax(jnp.abs(f2))]) == pytest.approx(0.9877, abs=1e-3)


def test_softmax_vjp_matches_jax():
    act = acts.get("softmax")
    z = jax.random.normal(jax.random.key(0), (5, 4), jnp.float64)
    g = jax.random.normal(jax.random.key(1), (5, 4), jnp.float64)
    _, vjp = jax.vjp(act.fn, z)
    chex.assert_trees_all_close(act.vjp(z, act.fn(z), g), vjp(g)[0], rtol=1e-12)


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown activation 'sigmoidd'; valid: identity, step, sigmoid"):
        acts.get("sigmoidd")


def test_aliases_resolve():
    assert acts.get("linear") is acts.get("identity")
    assert acts.get("lecun_tanh") is acts.get("scaled_tanh")
