"""Resilient backpropagation: Rprop+, Rprop-, iRprop+, iRprop- and FANN's iRPROP-.

Each weight has its own step ``Delta``; only the sign of its gradient is used.
With ``c = g_{t-1} g_t`` per weight (Igel & Huesken 2000, "Improving the Rprop
learning algorithm", their pseudo-code):

* ``c > 0``: ``Delta = min(eta_plus Delta, max_step)``, ``w -= sign(g_t) Delta``.
* ``c < 0``: ``Delta = max(eta_minus Delta, min_step)``, and then
    - ``rprop+`` (Riedmiller & Braun 1993): undo the last step, ``w -= dw_{t-1}``, and set ``g_t = 0``;
    - ``irprop+``: undo the last step only if the loss rose, ``E_t > E_{t-1}``; ``g_t = 0``;
    - ``irprop-``: no step, ``g_t = 0``;
    - ``rprop-``: ``w -= sign(g_t) Delta``.
* ``c = 0``: ``w -= sign(g_t) Delta`` with ``Delta`` unchanged.

``optax.rprop`` is iRprop- (a test checks them step for step).  ``"fann"`` is
FANN 2.2's ``fann_update_weights_irpropm``, which departs from iRprop- in
three ways: ``c = 0`` also grows the step (so FANN's first step is
``eta_plus Delta_0``), each step is at least 1e-4 before it is scaled, and
after a sign change (and wherever ``g = 0``) the weight still moves, by
``+Delta``.  FANN also clips weights to +-1500: ``weight_limit=1500``.

Example:
    >>> import jax.numpy as jnp
    >>> opt = rprop(0.1, variant="irprop-")
    >>> w = jnp.zeros(2); s = opt.init(w)
    >>> u, s = opt.update(jnp.array([3.0, -1e-9]), s, w)
    >>> [float(v) for v in u]
    [-0.1, 0.1]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bpkit import _validate
from bpkit.optim import clip, contract

tree = optax.tree
Params = Any
VARIANTS = ("irprop-", "rprop+", "irprop+", "rprop-", "fann")


# The hyperparameters a config's [optimizer] table passes (bpkit.spec declares each key's type and role).
HYPERPARAMETERS = ("learning_rate", "variant", "eta_minus", "eta_plus", "min_step", "max_step", "weight_limit")


class RpropState(NamedTuple):
    step: Params  # Delta per weight
    prev_grad: Params  # g_{t-1}, zeroed after a sign change (all variants but rprop-)
    prev_update: Params  # dw_{t-1}
    prev_value: jax.Array  # E_{t-1}, for irprop+
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's states do
    evals: contract.Evaluations


def rprop(
    learning_rate: float = 0.1,
    variant: str = "irprop-",
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step: float = 1e-6,
    max_step: float = 50.0,
    weight_limit: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    """RPROP with initial step ``learning_rate`` (Riedmiller & Braun's Delta_0 = 0.1).

    ``learning_rate``, ``eta_minus`` and ``eta_plus`` may be traced (data of a compiled program).

    ``irprop+`` needs ``value=`` (the loss at params) in ``update``.  FANN's
    defaults for ``"fann"`` are ``min_step = 0`` and ``max_step = 50``, and FANN keeps every weight
    within ``weight_limit = 1500`` (:mod:`bpkit.optim.clip`; None: no limit).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown RPROP variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if _validate.is_concrete(learning_rate) and not learning_rate > 0:
        raise ValueError(f"learning_rate (the initial step) must be positive, got {learning_rate!r}")
    concrete = _validate.is_concrete(eta_minus) and _validate.is_concrete(eta_plus)  # traced: data, checked upstream
    if concrete and not 0 < eta_minus < 1 < eta_plus or not 0 <= min_step <= max_step:
        raise ValueError("need 0 < eta_minus < 1 < eta_plus and 0 <= min_step <= max_step, got "
                         f"{eta_minus}, {eta_plus}, {min_step}, {max_step}")
    clip.check(weight_limit)

    def init(params):
        dt = jnp.result_type(*jax.tree_util.tree_leaves(params))
        z = tree.zeros_like(params)
        step = jax.tree_util.tree_map(lambda w: jnp.full_like(w, learning_rate), params)
        return RpropState(step, z, z, jnp.asarray(jnp.inf, dt), jnp.zeros((), jnp.int32), contract.initial(params))

    def update(grads, state, params=None, *, value=None, **extra):
        if variant == "irprop+" and value is None:
            raise ValueError("irprop+ needs value= (the loss at params) in update()")
        worse = (value > state.prev_value) if variant == "irprop+" else jnp.asarray(False)
        factors = (eta_minus, eta_plus, min_step, max_step)
        out = jax.tree_util.tree_map(lambda g, s, g0, dw0: _rule(variant, factors, g, s, g0, dw0, worse),
                                     grads, state.step, state.prev_grad, state.prev_update)
        pick = lambda i: jax.tree_util.tree_map(lambda _, t: t[i].astype(_.dtype), grads, out)
        step, prev_grad, updates = pick(0), pick(1), pick(2)
        updates = clip.within(updates, params, weight_limit)  # kept as dw_{t-1}: what the weight moved
        prev_value = state.prev_value if value is None else jnp.asarray(value, state.prev_value.dtype)
        new_state = RpropState(step, prev_grad, updates, prev_value, state.count + 1, contract.initial(grads, grads))
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init, update)


def _rule(variant: str, factors: tuple, g: jax.Array, step: jax.Array, g0: jax.Array, dw0: jax.Array,
          worse: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One weight's ``(new step, gradient kept for next time, update)`` under ``variant``, with
    ``factors = (eta_minus, eta_plus, min_step, max_step)``."""
    eta_minus, eta_plus, min_step, max_step = factors
    c = g0 * g
    if variant == "fann":
        step = jnp.maximum(step, 1e-4)
        new = jnp.where(c >= 0, jnp.minimum(step * eta_plus, max_step), jnp.maximum(step * eta_minus, min_step))
        g = jnp.where(c < 0, 0.0, g)
        dw = jnp.where(g > 0, -new, new)
        return new, g, dw
    new = jnp.where(c > 0, jnp.minimum(step * eta_plus, max_step),
                    jnp.where(c < 0, jnp.maximum(step * eta_minus, min_step), step))
    dw = -jnp.sign(g) * new
    if variant == "rprop-":
        return new, g, dw
    if variant == "rprop+":
        dw = jnp.where(c < 0, -dw0, dw)
    elif variant == "irprop+":
        dw = jnp.where(c < 0, jnp.where(worse, -dw0, 0.0), dw)
    else:  # irprop-
        dw = jnp.where(c < 0, 0.0, dw)
    return new, jnp.where(c < 0, 0.0, g), dw
