"""Losses, each beside its hand-written output delta ``dC/dz_L``.

With ``N`` examples (rows), output pre-activations ``z`` and outputs ``a = f(z)``
(every loss also takes per-example weights ``w`` summing to 1, default ``1/N``,
so a padded mini-batch averages over its real examples only):

* ``mse`` (half mean squared error): ``C = 1/(2N) sum_i ||a_i - y_i||^2``,
  ``dC/da = (a - y) / N`` and ``delta_L = (a - y) / N * f'(z)``.  Works with any
  output activation; the factor ``f'(z)`` stays.
* ``bce`` (binary cross-entropy on a sigmoid output):
  ``C = -1/N sum_i sum_k [y log a + (1 - y) log(1 - a)]``, computed from the
  logits ``z`` as ``softplus(z) - y z`` so it never takes ``log(0)``.
  ``delta_L = (a - y) / N``: the sigmoid's ``s'(z) = a(1 - a)`` cancels against
  ``dC/da = (a - y) / (a(1 - a))``.
* ``softmax_ce`` (softmax cross-entropy): ``C = -1/N sum_i sum_k y log softmax(z)``,
  from logits via log-sum-exp; ``delta_L = (a - y) / N`` (the softmax Jacobian
  cancels the same way).

* ``atanh`` (Fahlman's hyperbolic-arctangent error, FANN's ``FANN_ERRORFUNC_TANH``,
  its default for batch and iRPROP- training): with the error ``e = (y - a) / r``
  (``r = 1``; ``atanh_symmetric`` has ``r = 2``, FANN's halving for an output in
  ``[-1, 1]``), ``dC/da = -L(e) / N`` where ``L(e) = log((1 + e)/(1 - e)) = 2 atanh(e)``
  for ``|e| <= c = 0.9999999`` and ``+-17`` beyond (FANN's and quickprop1.c's cap).
  Its value is the antiderivative, ``C = r/N sum_i sum_k phi(e)`` with
  ``phi(e) = e L(e) + log(1 - e^2)`` inside the cap, continued with slope 17
  beyond it.  Near ``e = 0`` it is ``e^2``: the squared error for small errors,
  a steeper slope for large ones, which drives saturated wrong outputs hard.

The cross-entropies require their canonical output activation (sigmoid,
softmax); ``mse`` and the atanh errors take any.

Example:
    >>> import jax.numpy as jnp
    >>> from bpkit import losses
    >>> float(losses.get("mse").value(None, jnp.array([[1.0]]), jnp.array([[0.0]])))
    0.5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from bpkit import activations as acts

Array = jax.Array
Pullback = Callable[[Array, Array, Array], Array]  # (z, a, g=dC/da) -> dC/dz


@dataclasses.dataclass(frozen=True)
class Loss:
    """A loss over a batch, with its value and its hand-written output delta.

    Attributes:
        name: registry name.
        output_activation: the output activation this loss needs, or None for any.
        description: one line for tables.
    """

    name: str
    output_activation: str | None
    description: str

    def value(self, z: Array, a: Array, y: Array, w: Array | None = None) -> Array:
        """The scalar loss from output pre-activations ``z``, outputs ``a``, targets ``y``."""
        raise NotImplementedError

    def delta(self, z: Array, a: Array, y: Array, pullback: Pullback, w: Array | None = None) -> Array:
        """``dC/dz_L``; ``pullback`` carries ``dC/da`` through the output activation."""
        raise NotImplementedError

    def check_output_activation(self, name: str) -> None:
        """Raise a one-line ValueError if this loss cannot sit on ``name``."""
        if self.output_activation is not None and acts.get(name).name != self.output_activation:
            raise ValueError(
                f"loss {self.name!r} needs output activation {self.output_activation!r}, "
                f"got {name!r} (use 'mse' for any other output activation)"
            )


def _weights(y: Array, w: Array | None) -> Array:
    """Per-example weights as a column ``(N, 1)``: ``1/N`` unless given."""
    if w is None:
        return jnp.full((y.shape[0], 1), 1.0 / y.shape[0], y.dtype)
    return jnp.asarray(w, y.dtype)[:, None]


class _HalfMSE(Loss):
    def value(self, z, a, y, w=None):
        return jnp.sum(_weights(y, w) * optax.l2_loss(a, y))

    def delta(self, z, a, y, pullback, w=None):
        return pullback(z, a, (a - y) * _weights(y, w))


class _BinaryCrossEntropy(Loss):
    def value(self, z, a, y, w=None):
        return jnp.sum(_weights(y, w) * optax.sigmoid_binary_cross_entropy(z, y))

    def delta(self, z, a, y, pullback, w=None):
        del z, pullback  # s'(z) cancels: the delta holds no activation derivative.
        return (a - y) * _weights(y, w)


class _SoftmaxCrossEntropy(Loss):
    def value(self, z, a, y, w=None):
        return jnp.sum(_weights(y, w)[:, 0] * optax.softmax_cross_entropy(z, y))

    def delta(self, z, a, y, pullback, w=None):
        del z, pullback  # The softmax Jacobian cancels: delta = a - y per example.
        return (a - y) * _weights(y, w)


ATANH_CAP, ATANH_SLOPE = 0.9999999, 17.0  # fann_compute_MSE; quickprop1.c's errors beyond it


@dataclasses.dataclass(frozen=True)
class _AtanhError(Loss):
    span: float = 1.0  # r: the error is (y - a) / r

    def _error(self, a, y):
        return (y - a) / jnp.asarray(self.span, a.dtype)

    def value(self, z, a, y, w=None):
        e = self._error(a, y)
        c = jnp.asarray(ATANH_CAP, e.dtype)
        inside = jnp.clip(e, -c, c)  # the log branch never sees |e| = 1, so its gradient stays finite
        # phi = e L(e) + log(1 - e^2), written so that its derivative L(e) has no cancelling terms.  With log, not
        # log1p: XLA's CPU compiler (jax 0.10.2) fuses a sum of log1p(x) and log1p(-x) as if both were log1p(x)
        # (tests/test_losses.py::test_the_atanh_value_is_right_inside_a_compiled_sum).
        phi = (1 + inside) * jnp.log(1 + inside) + (1 - inside) * jnp.log(1 - inside)
        phi = phi + ATANH_SLOPE * (jnp.abs(e) - jnp.abs(inside))  # slope 17 beyond the cap
        return self.span * jnp.sum(_weights(y, w) * phi)

    def delta(self, z, a, y, pullback, w=None):
        return pullback(z, a, -atanh_error(self._error(a, y)) * _weights(y, w))


def atanh_error(e: Array) -> Array:
    """FANN's output error for ``FANN_ERRORFUNC_TANH``: ``log((1 + e)/(1 - e))``, capped at +-17 beyond
    ``|e| > 0.9999999``, written as ``fann_compute_MSE`` writes it."""
    c = jnp.asarray(ATANH_CAP, e.dtype)
    inside = jnp.clip(e, -c, c)
    cap = jnp.asarray(ATANH_SLOPE, e.dtype)
    return jnp.where(e > c, cap, jnp.where(e < -c, -cap, jnp.log((1 + inside) / (1 - inside))))


REGISTRY: dict[str, Loss] = {
    "mse": _HalfMSE("mse", None, "half mean squared error 1/(2N) sum ||a - y||^2"),
    "bce": _BinaryCrossEntropy("bce", "sigmoid", "binary cross-entropy on a sigmoid output"),
    "softmax_ce": _SoftmaxCrossEntropy(
        "softmax_ce", "softmax", "softmax cross-entropy on one-hot (or soft) targets"
    ),
    "atanh": _AtanhError("atanh", None, "Fahlman's and FANN's hyperbolic-arctangent error on e = y - a"),
    "atanh_symmetric": _AtanhError(
        "atanh_symmetric", None, "the atanh error on e = (y - a)/2, FANN's form for an output in [-1, 1]", span=2.0
    ),
}

ALIASES = {
    "squared_error": "mse",
    "binary_cross_entropy": "bce",
    "cross_entropy": "softmax_ce",
    "fann_tanh": "atanh",
}


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str | Loss) -> Loss:
    """Look up a loss by name (or pass one through); unknown names list the valid ones."""
    if isinstance(name, Loss):
        return name
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in REGISTRY:
        raise ValueError(
            f"unknown loss {name!r}; valid: {', '.join(REGISTRY)} (aliases: {', '.join(ALIASES)})"
        )
    return REGISTRY[key]
