"""Gradients of a network's loss, two independent ways, same pytree out.

* :func:`autodiff`: ``jax.grad`` of :func:`loss_value`.
* :func:`backprop`: the hand-written rules, no autodiff anywhere:

  .. code-block:: text

      delta_L = dC/da_L * f_L'(z_L)       (mse; = a_L - y for bce/softmax_ce: f' cancels)
      delta_l = (delta_{l+1} W_{l+1}^T) * f_l'(z_l)       hidden layers, l = L-1 .. 1
      dC/dW_l = a_{l-1}^T delta_l
      dC/db_l = sum over examples of delta_l

  so one weight's update is ``w_new = w_old - lr * dC/da * f'(z) * input``: the
  chain rule puts ``f'(z)`` there because ``z`` reaches ``C`` only through ``f``.
  With shortcut connections (``MLP(..., shortcuts=True)``) a layer's output
  feeds every later layer, and its ``dC/da_l`` is the sum over all of them:
  ``dC/da_l = sum_{m > l} delta_m W_m[rows of a_l]^T``; ``dC/dW_m = u_m^T delta_m``
  with ``u_m = [a_0, ..., a_{m-1}]``.  A layer with steepness ``k`` (``z = k s``, ``s = W u + b``)
  multiplies its delta by ``k``: ``dC/ds = k dC/dz``.

``rule`` selects what stands in for ``f'(z)`` (the ablations are deliberately
*not* gradients; :func:`bpkit.check_gradient` says so):

* ``"exact"``: ``f'(z)`` from the pre-activation, written to stay accurate in saturation;
* ``"output_form"``: ``f'`` from the output ``a`` (``a(1-a)``, ``1-a^2``), as classic code does;
* ``"no_derivative"``: ``f'(z)`` omitted (taken as 1): ``delta = dC/da`` only;
* ``"constant_derivative"``: ``f'(z)`` replaced by a constant, ``f'(0)`` unless given;
* ``"fann_clipped"``: the output form with FANN's clipping: ``a`` is clipped to
  ``[0.01, 0.99]`` for the sigmoid and ``[-0.98, 0.98]`` for tanh before
  ``a(1-a)`` or ``1-a^2`` (:data:`FANN_CLIP`); other activations as
  ``"output_form"``.  Equal to the gradient inside the clip range, a floor on
  ``f'`` outside it (FANN keeps saturated units learning this way);
* ``"fahlman_offset"``: ``f'(z) + 0.1`` in every layer (or ``+ constant``),
  Fahlman's "sigmoid-prime offset" (quickprop1.c's ``ACTIVATION_PRIME``, 1988),
  which keeps saturated units learning ("kills flat spots").  Not a gradient.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from bpkit import MLP, backprop, autodiff
    >>> net = MLP((2, 3, 1), hidden="tanh", output="sigmoid")
    >>> p = net.init(jax.random.key(0))
    >>> x, y = jnp.ones((4, 2)), jnp.zeros((4, 1))
    >>> g1 = backprop(net, p, x, y, loss="bce")
    >>> g2 = autodiff(net, p, x, y, loss="bce")
    >>> bool(jnp.allclose(g1[0]["w"], g2[0]["w"], atol=1e-6))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np

from bpkit import _validate
from bpkit import activations as acts
from bpkit import losses as losses_
from bpkit.network import MLP, Cache, Params

Array = jax.Array

RULES: dict[str, str] = {
    "exact": "f'(z), the true gradient",
    "output_form": "f' computed from the output a, the true gradient up to rounding",
    "no_derivative": "ablation: f'(z) omitted (taken as 1); not a gradient",
    "constant_derivative": "ablation: f'(z) replaced by f'(0) (or a given constant); not a gradient",
    "fann_clipped": "f' from the output clipped as FANN does (sigmoid [0.01, 0.99], tanh [-0.98, 0.98]); "
                    "not the gradient in saturation",
    "fahlman_offset": "f'(z) + 0.1, Fahlman's sigmoid-prime offset (or + a given constant); not a gradient",
}
FAHLMAN_OFFSET = 0.1  # quickprop1.c: SigmoidPrimeOffset = 0.1
# FANN's fann_activation_derived clips the output before the output-form derivative, with C float
# literals (0.01f, 0.99f, 0.98f): the float32-rounded values, so that bpkit matches FANN to rounding.
_F = lambda v: float(np.float32(v))
FANN_CLIP: dict[str, tuple[float, float]] = {
    "sigmoid": (_F(0.01), _F(0.99)), "sigmoid_symmetric": (_F(-0.98), _F(0.98)), "tanh": (_F(-0.98), _F(0.98))}
GRADIENT_RULES = ("exact", "output_form")  # the rules that are true gradients


def _pullback(rule: str, constant: float | None) -> Callable[[acts.Activation, Array, Array, Array], Array]:
    """``(act, z, a, g) -> dC/dz`` for one rule: what multiplies ``g = dC/da``."""
    if rule == "exact":
        return lambda act, z, a, g: act.vjp(z, a, g)
    if rule == "output_form":
        return lambda act, z, a, g: act.vjp_from_output(a, g)
    if rule == "no_derivative":
        return lambda act, z, a, g: g
    if rule == "fann_clipped":
        def pull_clipped(act, z, a, g):
            lo, hi = FANN_CLIP.get(act.name, (None, None))
            return act.vjp_from_output(a if lo is None else jnp.clip(a, lo, hi), g)

        return pull_clipped
    if rule == "fahlman_offset":
        offset = FAHLMAN_OFFSET if constant is None else constant
        return lambda act, z, a, g: act.vjp(z, a, g) + g * jnp.asarray(offset, g.dtype)
    if rule == "constant_derivative":
        def pull(act, z, a, g):
            c = act.deriv_at_zero() if constant is None else constant
            return g * jnp.asarray(c, g.dtype)

        return pull
    raise ValueError(f"unknown rule {rule!r}; valid: {', '.join(RULES)}")


def check_targets(
    net: MLP, x: Array, y: Array, loss: str | losses_.Loss, weights: Array | None = None
) -> losses_.Loss:
    """Validate a (net, x, y, loss, weights) combination; return the loss object."""
    loss_obj = losses_.get(loss)
    loss_obj.check_output_activation(net.output)
    _validate.require_matrix("input x", x, net.sizes[0], "inputs")
    _validate.require_matrix("targets y", y, net.sizes[-1], "outputs")
    if jnp.shape(x)[0] != jnp.shape(y)[0]:
        raise ValueError(
            f"input x has {jnp.shape(x)[0]} examples but targets y has {jnp.shape(y)[0]}; they must match"
        )
    if weights is not None and jnp.shape(weights) != (jnp.shape(x)[0],):
        raise ValueError(
            f"weights must have shape ({jnp.shape(x)[0]},), one per example, got {tuple(jnp.shape(weights))}"
        )
    _validate.require_finite("input x", x)
    _validate.require_finite("targets y", y)
    return loss_obj


def loss_value(
    net: MLP, params: Params, x: Array, y: Array, loss: str = "mse", weights: Array | None = None
) -> Array:
    """The scalar loss ``C(params)`` on the batch ``(x, y)`` (examples weighted 1/N unless given)."""
    loss_obj = check_targets(net, x, y, loss, weights)
    out, cache = net.forward(params, x)
    return loss_obj.value(cache.zs[-1], out, jnp.asarray(y, out.dtype), weights)


def autodiff(
    net: MLP, params: Params, x: Array, y: Array, loss: str = "mse", weights: Array | None = None
) -> Params:
    """``jax.grad`` of :func:`loss_value` with respect to ``params``."""
    return jax.grad(loss_value, argnums=1)(net, params, x, y, loss, weights)


def backward(
    net: MLP,
    params: Params,
    cache: Cache,
    y: Array,
    loss: str | losses_.Loss = "mse",
    rule: str = "exact",
    constant: float | None = None,
    weights: Array | None = None,
) -> Params:
    """Hand-written backward pass from a forward ``cache``; see the module docstring."""
    loss_obj = losses_.get(loss)
    pull = _pullback(rule, constant)
    layer_acts = net.activations
    zs, outs = cache.zs, cache.activations
    y = jnp.asarray(y, outs[-1].dtype)

    keep = _through_preactivation(net, rule)
    out_delta = loss_obj.delta(zs[-1], outs[-1], y, lambda z, a, g: pull(layer_acts[-1], z, a, g), weights)
    delta = keep(len(zs) - 1, out_delta, zs[-1])
    grads: list[dict[str, Array]] = [None] * net.num_layers  # type: ignore[list-item]
    # dC/da_k summed over every later layer that a_k feeds (one layer, or all of them with shortcuts).
    upstream: list[Array | None] = [None] * (net.num_layers + 1)
    for l in range(net.num_layers - 1, -1, -1):
        # Weight layer l reads u = net.layer_input(outs, l): a_{l-1} = outs[l], or outs[0..l] side by side.
        grads[l] = {"w": net.layer_input(outs, l).T @ delta, "b": jnp.sum(delta, axis=0)}
        if l > 0:
            g_in = delta @ params[l]["w"].T  # dC/du, one column block per layer that u holds
            first = 0 if net.shortcuts else l
            for k, g_k in zip(range(first, l + 1), _blocks(g_in, net.sizes[first: l + 1]), strict=True):
                prev = upstream[k]
                upstream[k] = g_k if prev is None else prev + g_k
            done = cast(Array, upstream[l])  # dC/da_{l-1} is now complete: this loop wrote it
            delta = keep(l - 1, pull(layer_acts[l - 1], zs[l - 1], outs[l], done), zs[l - 1])
    return grads


def _through_preactivation(net: MLP, rule: str) -> Callable[[int, Array, Array], Array]:
    """``(l, dC/dz_l, z_l) -> dC/ds_l`` through layer ``l``'s ``z = clip(steepness * s)``: times the
    steepness, and 0 where ``|z|`` reached ``sum_limit`` (the clip's derivative).  The ``fann_clipped``
    rule keeps FANN's backprop, which ignores the clip."""
    limit = None if rule == "fann_clipped" else net.sum_limit

    def through(l: int, delta: Array, z: Array) -> Array:
        k = net.gains[l]
        if k != 1.0:
            delta = delta * jnp.asarray(k, delta.dtype)
        return delta if limit is None else jnp.where(jnp.abs(z) < limit, delta, jnp.zeros_like(delta))

    return through


def _blocks(m: Array, widths: tuple[int, ...]) -> list[Array]:
    """``m``'s columns cut into consecutive blocks of ``widths``."""
    edges = np.cumsum((0,) + tuple(widths))
    return [m[:, a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


def value_and_backprop(
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    loss: str = "mse",
    rule: str = "exact",
    constant: float | None = None,
    weights: Array | None = None,
) -> tuple[Array, Params]:
    """Loss and hand-written gradients from one forward pass (:func:`measure_with_rule` without
    jax.grad's)."""
    value, _, grads, _ = measure_with_rule(net, params, x, y, loss, rule, False, constant, weights)
    return value, grads


def measure_with_rule(
    net: MLP, params: Params, x: Array, y: Array, loss: str = "mse", rule: str = "exact", autodiff: bool = True,
    constant: float | None = None, weights: Array | None = None,
) -> tuple[Array, Array, Params, Params | None]:
    """``(loss, outputs, rule's gradients, jax.grad's gradients)`` of ``(x, y)`` (examples weighted
    1/N unless ``weights``) from one forward pass: the hand-written backward pass from its cache, and
    ``jax.grad``'s (a VJP of the same pass; None where ``autodiff`` is False).  The training loop's
    batch-mode measurement with a hand-written source: the rule's gradient is the next step's,
    jax.grad's gives the true norm.

    Example:
        >>> v, out, g, true = measure_with_rule(net, params, x, y, "mse", "no_derivative")  # doctest: +SKIP
    """
    loss_obj = check_targets(net, x, y, loss, weights)
    _pullback(rule, constant)  # validate the rule name before tracing further

    def forward(p: Params) -> tuple[Array, tuple[Array, Cache]]:
        out, cache = net.forward(p, x)
        return loss_obj.value(cache.zs[-1], out, jnp.asarray(y, out.dtype), weights), (out, cache)

    if autodiff:
        value, pull, (out, cache) = jax.vjp(forward, params, has_aux=True)
        true = pull(jnp.ones_like(value))[0]
    else:
        value, (out, cache) = forward(params)
        true = None
    return value, out, backward(net, params, cache, y, loss_obj, rule, constant, weights), true


def backprop(
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    loss: str = "mse",
    rule: str = "exact",
    constant: float | None = None,
    weights: Array | None = None,
) -> Params:
    """Hand-written gradients ``dC/dparams`` (same pytree as ``jax.grad``'s)."""
    return value_and_backprop(net, params, x, y, loss, rule, constant, weights)[1]


SOURCES = ("autodiff",) + tuple(RULES)


def objective(
    net: MLP, loss: str = "mse", source: str = "autodiff", constant: float | None = None
) -> Callable[[Params, Array, Array, Array | None], Array]:
    """The loss ``f(params, x, y, weights)`` whose ``jax.grad`` is the chosen gradient source.

    ``source="autodiff"`` is :func:`loss_value` itself.  Any rule name gives a
    ``jax.custom_vjp`` function whose backward pass *is* the hand-written rule,
    so everything that differentiates it (a training step, optax's line
    search) trains with that rule, ablations included.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from bpkit import MLP
        >>> net = MLP((2, 1), output="sigmoid")
        >>> f = objective(net, "mse", "no_derivative")
        >>> g = jax.grad(f)(net.init(jax.random.key(0)), jnp.ones((3, 2)), jnp.zeros((3, 1)), None)
    """
    if source not in SOURCES:
        raise ValueError(f"unknown gradient source {source!r}; valid: {', '.join(SOURCES)}")
    if source == "autodiff":
        def plain(p: Params, x: Array, y: Array, w: Array | None = None) -> Array:
            return loss_value(net, p, x, y, loss, w)

        return plain

    @jax.custom_vjp
    def f(p, x, y, w):
        return loss_value(net, p, x, y, loss, w)

    def fwd(p, x, y, w):
        value, grads = value_and_backprop(net, p, x, y, loss, source, constant, w)
        return value, (grads, x, y, w)

    def bwd(res, g):
        grads, x, y, w = res
        zeros = jax.tree_util.tree_map(jnp.zeros_like, (x, y, w))
        return (jax.tree_util.tree_map(lambda t: g * t, grads),) + zeros

    f.defvjp(fwd, bwd)

    def ruled(p: Params, x: Array, y: Array, w: Array | None = None) -> Array:
        return f(p, x, y, w)

    return ruled
