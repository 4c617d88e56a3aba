"""The studies' own computations, checked cheaply (the studies themselves run as scripts)."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bpkit import MLP

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_linear_collapse_product_map_equals_the_deep_net():
    lc = load("linear_collapse")
    net = MLP((3, 5, 4, 2), hidden="identity", output="identity")
    p = net.init(jax.random.key(0), scheme="uniform", dtype=jnp.float64)
    x = np.asarray(jax.random.normal(jax.random.key(1), (7, 3), jnp.float64))
    w, b = lc.collapse(p)
    np.testing.assert_allclose(x @ w + b, np.asarray(net.apply(p, x)), rtol=1e-13, atol=1e-14)


def test_least_squares_on_xor_is_mse_a_quarter():
    lc = load("linear_collapse")
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    half_mse, coef = lc.least_squares_half_mse(x, y)
    assert abs(half_mse - 0.125) < 1e-15  # MSE 0.25: the best any linear map does on XOR
    np.testing.assert_allclose(coef[:, 0], [0.0, 0.0, 0.5], atol=1e-15)  # predicts 0.5 everywhere
