"""Nonlinear conjugate gradient as optax transforms: a direction, then any line search.

Direction ``d_k = -g_k + beta_k d_{k-1}`` (:func:`scale_by_nonlinear_cg`), then a
line search picks ``alpha_k`` and ``w_{k+1} = w_k + alpha_k d_k``.  With
``y = g_k - g_{k-1}``:

===========  ==========================================
``fr``       ``g_k.g_k / g_{k-1}.g_{k-1}``  (Fletcher-Reeves)
``pr``       ``g_k.y / g_{k-1}.g_{k-1}``    (Polak-Ribiere)
``pr+``      ``max(0, pr)``
``hs``       ``g_k.y / d_{k-1}.y``          (Hestenes-Stiefel)
``dy``       ``g_k.g_k / d_{k-1}.y``        (Dai-Yuan)
===========  ==========================================

It restarts (``d = -g``) every ``restart_every`` steps (default: the number of
parameters), on Powell-Beale's test ``|g_k.g_{k-1}| >= nu |g_k|^2`` (successive
gradients far from orthogonal, as MATLAB's traincgb), and whenever ``d`` is not
a descent direction.  The first trial step is the quadratic-interpolation
guess ``alpha_0 = 2.02 (f_{k-1} - f_k) / -g_k.d_k`` (scipy's, without its cap at 1).

Example (optax's own loop for ``optax.lbfgs``, unchanged):
    >>> import jax.numpy as jnp, optax
    >>> f = lambda w: jnp.sum((w - 3.0) ** 2)
    >>> opt = nonlinear_cg("pr+")
    >>> w = jnp.zeros(2); state = opt.init(w)
    >>> for _ in range(3):
    ...     v, g = optax.value_and_grad_from_state(f)(w, state=state)
    ...     u, state = opt.update(g, state, w, value=v, grad=g, value_fn=f)
    ...     w = optax.apply_updates(w, u)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bpkit import _validate
from bpkit.optim import contract

tree = optax.tree
Params = Any


def safe_div(num, den):
    """num / den with den == 0 giving 0 (optimistix's guard)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


# -- beta formulas: plain functions of (g, g_prev, d_prev) ----------------------------


def beta_fr(g, g_prev, d_prev):
    return safe_div(tree.vdot(g, g), tree.vdot(g_prev, g_prev))


def beta_pr(g, g_prev, d_prev):
    return safe_div(tree.vdot(g, tree.sub(g, g_prev)), tree.vdot(g_prev, g_prev))


def beta_pr_plus(g, g_prev, d_prev):
    return jnp.maximum(0.0, beta_pr(g, g_prev, d_prev))


def beta_hs(g, g_prev, d_prev):
    y = tree.sub(g, g_prev)
    return safe_div(tree.vdot(g, y), tree.vdot(d_prev, y))


def beta_dy(g, g_prev, d_prev):
    y = tree.sub(g, g_prev)
    return safe_div(tree.vdot(g, g), tree.vdot(d_prev, y))


BETAS: dict[str, Callable] = {"fr": beta_fr, "pr": beta_pr, "pr+": beta_pr_plus, "hs": beta_hs, "dy": beta_dy}


BETA_NAMES: tuple[str, ...] = tuple(BETAS)  # a beta given as data is an index into this


def _beta(beta: str | int | jax.Array) -> Callable:
    """The beta formula by name, or by index into :data:`BETA_NAMES` (data: a traced index
    selects among the formulas' dot products, so one compiled program runs every formula)."""
    if isinstance(beta, str):
        if beta not in BETAS:
            raise ValueError(f"unknown CG beta {beta!r}; valid: {', '.join(BETAS)}")
        return BETAS[beta]
    if _validate.is_concrete(beta) and not 0 <= int(beta) < len(BETAS):
        raise ValueError(f"a CG beta index must lie in 0..{len(BETAS) - 1} ({', '.join(BETA_NAMES)}), got {beta!r}")
    index = jnp.asarray(beta, jnp.int32)
    is_ = {name: index == i for i, name in enumerate(BETA_NAMES)}

    def beta_by_index(g, g_prev, d_prev):
        # Each formula is num / den over four dot products: select scalars, not lax.switch
        # (under vmap it runs every branch).  Equal to the named formula up to rounding.
        y = tree.sub(g, g_prev)
        gg, gy, pp, dy = tree.vdot(g, g), tree.vdot(g, y), tree.vdot(g_prev, g_prev), tree.vdot(d_prev, y)
        num = jnp.where(is_["fr"] | is_["dy"], gg, gy)
        den = jnp.where(is_["hs"] | is_["dy"], dy, pp)
        b = safe_div(num, den)
        return jnp.where(is_["pr+"], jnp.maximum(0.0, b), b)

    return beta_by_index


# The hyperparameters a config's [optimizer] table passes (bpkit.spec declares each key's type and role).
HYPERPARAMETERS = ("beta", "powell_beale", "c1", "c2")


class NonlinearCGState(NamedTuple):
    # Not named value/grad: optax.value_and_grad_from_state looks those up in the line search's state.
    prev_grad: Params  # g_{k-1}
    prev_direction: Params  # d_{k-1}
    prev_value: jax.Array  # f_{k-1}
    since_restart: jax.Array  # steps since the last restart (0 = restart now)
    restarts: jax.Array  # how many restarts so far
    count: jax.Array  # type: ignore[assignment]  # iterations so far (optax's loops read it; shadows tuple.count)


def scale_by_nonlinear_cg(
    beta: str | int | jax.Array = "pr+", restart_every: int | None = None,
    powell_beale: bool | jax.Array = False, nu: float = 0.2,
) -> optax.GradientTransformationExtraArgs:
    """The CG direction in optax's sign convention: returns ``-alpha_0 d_k``.

    Like every optax ``scale_by_*`` transform it returns a gradient-like vector,
    so ``optax.chain(scale_by_nonlinear_cg(), optax.scale_by_learning_rate(lr))``
    steps ``lr alpha_0`` along ``d_k`` and descends.  It needs ``value=``.
    ``beta`` (a name, or an index into :data:`BETA_NAMES`) and ``powell_beale`` may be
    traced, so a sweep runs every variant through one compiled program.
    """
    beta_fn = _beta(beta)
    if restart_every is not None and restart_every < 1:
        raise ValueError(f"restart_every must be a positive integer or None, got {restart_every!r}")

    def init(params):
        dt = jnp.result_type(*jax.tree_util.tree_leaves(params))
        z = jnp.zeros((), jnp.int32)
        return NonlinearCGState(
            prev_grad=tree.zeros_like(params), prev_direction=tree.zeros_like(params),
            prev_value=jnp.asarray(jnp.inf, dt), since_restart=z, restarts=z, count=z,
        )

    def update(grads, state, params=None, *, value=None, **extra):
        if value is None:
            raise ValueError("nonlinear CG needs value= (the loss at params) in update()")
        n = restart_every or sum(x.size for x in jax.tree_util.tree_leaves(grads))
        d, slope, restart, gg = _cg_direction(grads, state, beta_fn, n, powell_beale, nu)
        alpha0 = _first_trial_step(state.prev_value, value, slope, gg)
        new_state = NonlinearCGState(
            prev_grad=grads,
            prev_direction=d,
            prev_value=jnp.asarray(value, state.prev_value.dtype),
            since_restart=jnp.where(restart, 1, state.since_restart + 1).astype(jnp.int32),
            restarts=state.restarts + restart.astype(jnp.int32),
            count=state.count + 1,
        )
        return tree.scale(-alpha0, d), new_state

    return optax.GradientTransformationExtraArgs(init, update)


def scale_by_line_newton() -> optax.GradientTransformationExtraArgs:
    """One Newton step along the direction: ``alpha = -phi'(0) / phi''(0)``.

    ``phi(alpha) = f(w + alpha d)``; ``phi''(0) = d.H d`` comes from a ``jvp``
    of ``grad`` (one gradient evaluation in the cost count).  On a quadratic
    this *is* the exact line search (what CG's n-step termination assumes);
    elsewhere it is only a model, falling back to ``alpha = 1`` where the
    curvature along ``d`` is not positive.
    """

    def init(params):
        return contract.initial(params)

    def update(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        if params is None or grad is None or value_fn is None:
            raise ValueError("scale_by_line_newton needs params, grad= and value_fn= in update()")
        slope = tree.vdot(grad, updates)
        g = jax.grad(lambda p: value_fn(p, **extra))
        curv = tree.vdot(updates, jax.jvp(g, (params,), (updates,))[1])
        alpha = jnp.where(curv > 0, safe_div(-slope, curv), 1.0)
        evals = contract.initial(params, grad)._replace(grad_evals=jnp.ones((), jnp.int32))
        return tree.scale(alpha, updates), evals

    return optax.GradientTransformationExtraArgs(init, update)


def zoom(c1: float = 1e-4, c2: float = 0.4, max_linesearch_steps: int = 20) -> optax.GradientTransformationExtraArgs:
    """optax's strong-Wolfe zoom search, first trial step 1 (c1 = 1e-4, c2 = 0.4: scipy's CG).

    The accepted step satisfies ``f(w + a d) <= f(w) + c1 a g.d`` (sufficient
    decrease) and ``|g(w + a d).d| <= c2 |g.d|`` (curvature).  ``c1`` and ``c2``
    may be traced (a sweep vmaps them); concrete ones are checked here.
    """
    concrete = [(name, v) for name, v in (("c1", c1), ("c2", c2)) if _validate.is_concrete(v)]
    for name, v in concrete:
        if not 0 < v < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {v!r}")
    if len(concrete) == 2 and not c1 < c2:
        raise ValueError(f"need c1 < c2 for a Wolfe line search, got c1={c1}, c2={c2}")
    return optax.scale_by_zoom_linesearch(
        max_linesearch_steps=max_linesearch_steps, slope_rtol=c1, curv_rtol=c2, initial_guess_strategy="one",
    )


_DEFAULT = object()


def _cg_direction(grads: Params, state: NonlinearCGState, beta_fn: Callable, n: int, powell_beale: Any,
                  nu: float) -> tuple[Params, jax.Array, jax.Array, jax.Array]:
    """``(d, g.d, restarted, g.g)``: ``d = -g + beta d'``, restarted to ``-g`` every ``n`` steps, on
    Powell-Beale's test where it is on, and wherever ``d`` would not descend."""
    gg = tree.vdot(grads, grads)
    b = beta_fn(grads, state.prev_grad, state.prev_direction)
    restart = (state.since_restart == 0) | (state.since_restart >= n)
    if not isinstance(powell_beale, bool):  # data: the test runs, and counts where it is on
        restart |= jnp.asarray(powell_beale, bool) & (jnp.abs(tree.vdot(grads, state.prev_grad)) >= nu * gg)
    elif powell_beale:
        restart |= jnp.abs(tree.vdot(grads, state.prev_grad)) >= nu * gg
    d = tree.add_scale(tree.scale(-1.0, grads), jnp.where(restart, 0.0, b), state.prev_direction)
    slope = tree.vdot(grads, d)
    not_descent = slope >= 0  # fall back to steepest descent
    d = tree.where(not_descent, tree.scale(-1.0, grads), d)
    slope = jnp.where(not_descent, -gg, slope)
    return d, slope, restart | not_descent, gg


def _first_trial_step(prev_value: jax.Array, value: jax.Array, slope: jax.Array, gg: jax.Array) -> jax.Array:
    """The minimiser of the quadratic through f_{k-1}, f_k and the slope, ``2 (f_{k-1} - f_k) / -g.d``
    (Nocedal & Wright eq. 3.60), with ``f_{k-1} = f_k + |g|/2`` on the first step as scipy has it.
    Unlike scipy's, it is not capped at 1: a CG direction has no natural unit step."""
    prev_value = jnp.where(jnp.isfinite(prev_value), prev_value, value + jnp.sqrt(gg) / 2)
    alpha0 = safe_div(2.02 * (prev_value - value), -slope)
    return jnp.where(alpha0 > 0, alpha0, safe_div(1.0, jnp.sqrt(gg)))


def nonlinear_cg(
    beta: str | int | jax.Array = "pr+",
    restart_every: int | None = None,
    powell_beale: bool | jax.Array = False,
    *,
    nu: float = 0.2,
    learning_rate: float | None = None,
    c1: float = 1e-4,
    c2: float = 0.4,
    linesearch: optax.GradientTransformationExtraArgs | None = _DEFAULT,
) -> optax.GradientTransformationExtraArgs:
    """Nonlinear CG, built as ``optax.lbfgs`` is: direction, scaling, line search.

    ``chain(scale_by_nonlinear_cg(...), scale(-1) or scale_by_learning_rate(lr), linesearch)``.
    The default line search is :func:`zoom` with Wolfe constants ``c1``, ``c2``
    (scipy's CG: 1e-4, 0.4; they may be traced); ``linesearch`` takes any optax transform
    (``None``: no search, a fixed step of ``learning_rate`` times the first trial step).  ``update`` needs
    ``value=``, ``grad=`` and ``value_fn=``; extra keyword arguments reach
    ``value_fn`` as in optax.  The zoom search stores the loss and gradient at
    the new point, which ``optax.value_and_grad_from_state`` reuses.
    """
    scaling = optax.scale(-1.0) if learning_rate is None else optax.scale_by_learning_rate(learning_rate)
    search = zoom(c1, c2) if linesearch is _DEFAULT else (optax.identity() if linesearch is None else linesearch)
    return optax.chain(scale_by_nonlinear_cg(beta, restart_every, powell_beale, nu), scaling, search)
