"""Fahlman's quickprop (1988), per weight, as FANN 2.2 implements it (``fann_update_weights_quickprop``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bpkit import _validate
from bpkit.optim import clip, contract
from bpkit.optim.cg import safe_div

tree = optax.tree
Params = Any


# The hyperparameters a config's [optimizer] table passes (bpkit.spec declares each key's type and role).
HYPERPARAMETERS = ("learning_rate", "mu", "decay", "weight_limit", "step_threshold", "split_epsilon")


class QuickpropState(NamedTuple):
    prev_step: Params
    prev_slope: Params  # S' of the last update (decay included)
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's states do
    evals: contract.Evaluations


def quickprop(
    learning_rate: float = 0.7, mu: float = 1.75, decay: float = 0.0, step_threshold: float = 0.001,
    weight_limit: float | None = None, split_epsilon: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """Quickprop: a secant step per weight, capped at ``mu`` times the last step.

    With slope ``S = -(g + decay w)``, the previous step ``dw'`` and slope ``S'``:

    * ``dw' > t``: ``dw = lr S [if S > 0] + (mu dw' if S > mu/(1+mu) S' else dw' S / (S' - S))``;
    * ``dw' < -t``: the mirror image (``lr S`` if ``S < 0``; ``S < mu/(1+mu) S'``);
    * otherwise: ``dw = lr S``.

    ``t = step_threshold`` is FANN's 0.001 (a smaller last step counts as
    none); 0 gives the exact sign test.  ``g`` is the mean gradient, so FANN's
    ``epsilon = learning_rate / num_data`` on summed slopes is this
    ``learning_rate``, and FANN's decay ``d`` on summed slopes is ``decay =
    -d / num_data`` here.  FANN also keeps every weight within +-1500: ``weight_limit=1500``
    (:mod:`bpkit.optim.clip`; the next step's ``dw'`` is the unclipped step, as in FANN).

    ``split_epsilon``: quickprop1.c's ``SplitEpsilon``: each unit's ``lr`` is divided by its fan-in
    (its incoming weights, bias included).  It needs bpkit's MLP parameters (a list of layers
    ``{"w": (fan_in - 1, units), "b": (units,)}``).  Fahlman's quickprop1.c on summed slopes
    (``Epsilon``, ``Decay`` there) is ``learning_rate = Epsilon N``, ``decay = -Decay / N`` here on
    ``N`` examples, with ``step_threshold=0`` (its ``ModeSwitchThreshold``).

    Example:
        >>> import jax.numpy as jnp
        >>> opt = quickprop(learning_rate=0.1)
        >>> w = jnp.zeros(1); s = opt.init(w)
        >>> step, s = opt.update(jnp.array([2.0]), s, w)
        >>> float(step[0])
        -0.2
    """
    # Checked when concrete; a sweep passes traced (vmapped) learning rates, validated beforehand.
    if _validate.is_concrete(learning_rate) and _validate.is_concrete(mu) and not (learning_rate > 0 and mu > 0):
        raise ValueError(f"learning_rate and mu must be positive, got {learning_rate!r}, {mu!r}")
    if not step_threshold >= 0:
        raise ValueError(f"step_threshold must be >= 0, got {step_threshold!r}")
    clip.check(weight_limit)
    shrink = mu / (1.0 + mu)

    def init(params):
        z = tree.zeros_like(params)
        return QuickpropState(z, z, jnp.zeros((), jnp.int32), contract.initial(params))

    def update(grads, state, params=None, **extra):
        if decay and params is None:
            raise ValueError("quickprop with decay needs params in update()")

        def one(g, w, dw0, s0, fan=None):
            s = -(g + decay * w) if decay else -g
            eps = learning_rate * s if fan is None else learning_rate * s / fan
            quad = safe_div(dw0 * s, s0 - s)
            pos = jnp.where(s > 0, eps, 0.0) + jnp.where(s > shrink * s0, mu * dw0, quad)
            neg = jnp.where(s < 0, eps, 0.0) + jnp.where(s < shrink * s0, mu * dw0, quad)
            step = jnp.where(dw0 > step_threshold, pos, jnp.where(dw0 < -step_threshold, neg, eps))
            return step.astype(g.dtype), s.astype(g.dtype)

        w = params if params is not None else grads
        trees = (grads, w, state.prev_step, state.prev_slope) + ((_fan_ins(grads),) if split_epsilon else ())
        both = jax.tree_util.tree_map(one, *trees)
        steps = jax.tree_util.tree_map(lambda _, t: t[0], grads, both)
        slopes = jax.tree_util.tree_map(lambda _, t: t[1], grads, both)
        evals = contract.initial(grads, grads)
        return clip.within(steps, params, weight_limit), QuickpropState(steps, slopes, state.count + 1, evals)

    return optax.GradientTransformationExtraArgs(init, update)


def _fan_ins(grads: Params) -> Params:
    """Each weight's and bias's unit fan-in in bpkit's MLP layers (the layer's inputs plus its bias),
    quickprop1.c's ``Nconnections``, which ``SplitEpsilon`` divides epsilon's step by."""
    if not isinstance(grads, list | tuple) or not all(isinstance(l, dict) and set(l) == {"w", "b"} for l in grads):
        raise ValueError("quickprop's split_epsilon needs bpkit's MLP parameters: a list of {'w', 'b'} layers")
    return [{k: float(layer["w"].shape[-2] + 1) for k in layer} for layer in grads]
