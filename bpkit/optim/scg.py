"""Moeller's scaled conjugate gradient (Neural Networks 6:525-533, 1993), one iteration per update.

No line search: each iteration estimates the curvature along ``p`` with a
Hessian-vector product, regularises it with a Levenberg-Marquardt ``lambda``
and accepts the step when the comparison ratio ``Delta >= 0``.  With
``r_k = -E'(w_k)`` and ``|p|^2 = p.p``, the paper's steps 2-9:

2. if the last step succeeded: ``s_k = H p_k`` (``hvp="finite_difference"``:
   ``(E'(w_k + sigma_k p_k) - E'(w_k)) / sigma_k``, ``sigma_k = sigma / |p_k|``;
   ``"exact"``: a ``jvp`` of ``grad``), ``delta_k = p_k.s_k``; otherwise
   ``delta_k`` is the *scaled* delta carried over from the last iteration;
3. ``delta_k += (lambda_k - lambda_bar_k) |p_k|^2``;
4. if ``delta_k <= 0``: ``lambda_bar_k = 2 (lambda_k - delta_k / |p_k|^2)``,
   ``delta_k = -delta_k + lambda_k |p_k|^2``, ``lambda_k = lambda_bar_k``;
5. ``mu_k = p_k.r_k``, ``alpha_k = mu_k / delta_k``;
6. ``Delta_k = 2 delta_k (E(w_k) - E(w_k + alpha_k p_k)) / mu_k^2``;
7. if ``Delta_k >= 0``: accept ``w_k + alpha_k p_k``, ``lambda_bar_k = 0``, and if
   ``Delta_k >= 0.75``: ``lambda_k /= 4``; the next direction (computed at the
   start of the next update, from its gradient) is ``r_{k+1}`` every N-th
   iteration, else ``r_{k+1} + beta_k p_k``, ``beta_k = (|r_{k+1}|^2 -
   r_{k+1}.r_k) / mu_k``.  Otherwise keep ``w_k`` and set ``lambda_bar_k = lambda_k``;
8. if ``Delta_k < 0.25``: ``lambda_k += delta_k (1 - Delta_k) / |p_k|^2``;
9. ``k += 1`` (every iteration, accepted or not).

Cost, in Moeller's units: an accepted iteration is 7 cu (the Hessian-vector
product as one gradient, 3 cu; ``E(w_k + alpha_k p_k)``, 1 cu; the gradient
at the new point, 3 cu, which the caller computes); a rejected one is 1 cu
(the gradient at the unchanged point is reported back, so nobody recomputes it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bpkit import _validate
from bpkit.optim import contract
from bpkit.optim.cg import safe_div

tree = optax.tree
Params = Any


# The hyperparameters a config's [optimizer] table passes (bpkit.spec declares each key's type and role).
HYPERPARAMETERS = ("hvp", "lambda_init", "sigma")


class SCGState(NamedTuple):
    p: Params  # p_k, the search direction of the last iteration
    r: Params  # r_k = -E'(w_k) of the last iteration
    mu: jax.Array  # mu_k = p_k.r_k, for the next beta
    delta: jax.Array  # delta_k after steps 3-4, carried over after a rejected step
    lam: jax.Array  # lambda
    lam_bar: jax.Array  # lambda-bar
    success: jax.Array  # the last step was accepted (or this is the first iteration)
    count: jax.Array  # type: ignore[assignment]  # k - 1: iterations so far (shadows tuple.count, as optax's)
    evals: contract.Evaluations


def scg(
    sigma: float = 5e-5, lambda_init: float = 5e-7, hvp: str = "exact", restart_every: int | None = None
) -> optax.GradientTransformationExtraArgs:
    """Moeller's SCG; ``update`` needs ``params``, ``value=`` and ``value_fn=``.

    ``sigma`` (the finite-difference step, Moeller's ``0 < sigma <= 1e-4``) and
    ``lambda_init`` (his ``lambda_1``, ``0 < lambda_1 <= 1e-6``) may be traced.

    ``restart_every`` is the paper's N (default: the number of parameters).
    Extra keyword arguments of ``update`` reach ``value_fn``, as in optax.
    The state's ``evals`` holds the loss and gradient at the returned params
    after a rejected step (the params did not move), and costs as above.
    """
    if hvp not in ("exact", "finite_difference"):
        raise ValueError(f"hvp must be 'exact' or 'finite_difference', got {hvp!r}")
    for name, v in (("sigma", sigma), ("lambda_init", lambda_init)):  # traced ones (vmapped) are data
        if _validate.is_concrete(v) and not v > 0:
            raise ValueError(f"{name} must be positive, got {v!r}")

    def init(params):
        dt = jnp.result_type(*jax.tree_util.tree_leaves(params))
        z = jnp.zeros((), dt)
        return SCGState(
            p=tree.zeros_like(params), r=tree.zeros_like(params), mu=z, delta=z,
            lam=jnp.asarray(lambda_init, dt), lam_bar=z, success=jnp.asarray(True),
            count=jnp.zeros((), jnp.int32), evals=contract.initial(params),
        )

    def update(grads, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        if params is None or value is None or value_fn is None:
            raise ValueError("scg needs params, value= and value_fn= in update()")
        n = restart_every or sum(x.size for x in jax.tree_util.tree_leaves(grads))
        return _update(grads, state, params, value, lambda w: value_fn(w, **extra), n, hvp, sigma)

    return optax.GradientTransformationExtraArgs(init, update)


def _direction(r: Params, state: SCGState, n: int) -> Params:
    """Step 1 at the first iteration, else step 7's new direction after an accepted step."""
    first = state.count == 0
    beta = safe_div(tree.vdot(r, r) - tree.vdot(r, state.r), state.mu)
    restart = first | (state.count % n == 0)
    p_new = tree.add_scale(r, jnp.where(restart, 0.0, beta), state.p)
    return tree.where(state.success, p_new, state.p)


def _p_dot_s(loss: Callable, params: Params, grads: Params, p: Params, pp: jax.Array, hvp: str,
             sigma: Any) -> jax.Array:
    """Step 2: ``p . s`` with ``s = H p``, exact (a jvp of the gradient) or Moeller's finite difference."""
    if hvp == "exact":
        s = jax.jvp(jax.grad(loss), (params,), (p,))[1]
    else:
        sig = safe_div(sigma, jnp.sqrt(pp))
        s = tree.scale(safe_div(1.0, sig), tree.sub(jax.grad(loss)(tree.add_scale(params, sig, p)), grads))
    return tree.vdot(p, s)


def _positive(delta: jax.Array, lam: jax.Array, lam_bar: jax.Array, pp: jax.Array) -> tuple:
    """Steps 3-4: scale ``delta`` by ``lambda``, and raise ``lambda`` until the estimate is positive."""
    delta = delta + (lam - lam_bar) * pp  # step 3
    neg = delta <= 0  # step 4
    lam_bar = jnp.where(neg, 2.0 * (lam - safe_div(delta, pp)), lam_bar)
    delta = jnp.where(neg, -delta + lam * pp, delta)
    lam = jnp.where(neg, lam_bar, lam)
    return delta, lam, lam_bar


def _adapt(ok: jax.Array, cmp: jax.Array, lam: jax.Array, delta: jax.Array, pp: jax.Array) -> tuple:
    """Steps 7-8: lower ``lambda`` after a good step, raise it after a poor one."""
    lam = jnp.where(ok & (cmp >= 0.75), 0.25 * lam, lam)  # step 7
    lam_bar = jnp.where(ok, 0.0, lam)
    lam = jnp.where(cmp < 0.25, lam + safe_div(delta * (1.0 - cmp), pp), lam)  # step 8
    return lam, lam_bar


def _update(grads: Params, state: SCGState, params: Params, value: jax.Array, loss: Callable, n: int, hvp: str,
            sigma: Any) -> tuple[Params, SCGState]:
    """One SCG iteration, Moeller's steps 1-8 (step 9, the stop, is the caller's)."""
    r = tree.scale(-1.0, grads)
    p = _direction(r, state, n)
    pp = tree.vdot(p, p)
    curve = state.success & (pp > 0)
    step2 = lambda _: _p_dot_s(loss, params, grads, p, pp, hvp, sigma).astype(state.delta.dtype)
    delta = jax.lax.cond(curve, step2, lambda _: state.delta, None)
    delta, lam, lam_bar = _positive(delta, state.lam, state.lam_bar, pp)
    mu = tree.vdot(p, r)  # step 5
    alpha = safe_div(mu, delta)
    new_value = loss(tree.add_scale(params, alpha, p))  # step 6
    cmp = safe_div(2.0 * delta * (value - new_value), mu * mu)
    cmp = jnp.where(jnp.isfinite(cmp), cmp, -1.0)
    ok = (cmp >= 0) & (pp > 0)
    lam, lam_bar = _adapt(ok, cmp, lam, delta, pp)
    updates = tree.where(ok, tree.scale(alpha, p), tree.zeros_like(p))
    dt = state.delta.dtype
    # After a rejected step the params stand still: their loss and gradient are the caller's.
    evals = contract.Evaluations(
        value=jnp.where(ok, jnp.inf, value).astype(dt), grad=grads,
        value_evals=jnp.ones((), jnp.int32), grad_evals=curve.astype(jnp.int32), failed=jnp.asarray(False),
    )
    return updates, SCGState(p=p, r=r, mu=mu.astype(dt), delta=delta.astype(dt), lam=lam.astype(dt),
                             lam_bar=lam_bar.astype(dt), success=ok, count=state.count + 1, evals=evals)
