"""Optimizers as optax transforms: nonlinear CG, Moeller's scaled CG, quickprop.

Everything here is an ``optax.GradientTransformationExtraArgs``, called as
``update(grads, state, params, value=, grad=, value_fn=)`` like ``optax.lbfgs``,
so it drops into any optax pipeline and into bpkit's one training loop.

**Nonlinear conjugate gradient** (:func:`nonlinear_cg`): direction
``d_k = -g_k + beta_k d_{k-1}`` (:func:`scale_by_nonlinear_cg`), then optax's
strong-Wolfe zoom line search picks ``alpha_k``; ``w_{k+1} = w_k + alpha_k d_k``.
With ``y = g_k - g_{k-1}``:

===========  ==========================================
``fr``       ``g_k.g_k / g_{k-1}.g_{k-1}``  (Fletcher-Reeves)
``pr``       ``g_k.y / g_{k-1}.g_{k-1}``    (Polak-Ribiere)
``pr+``      ``max(0, pr)``
``hs``       ``g_k.y / d_{k-1}.y``          (Hestenes-Stiefel)
``dy``       ``g_k.g_k / d_{k-1}.y``        (Dai-Yuan)
===========  ==========================================

It restarts (``d = -g``) every ``restart_every`` steps (default: the number of
parameters), on Powell-Beale's test ``|g_k.g_{k-1}| >= 0.2 |g_k|^2`` (successive
gradients far from orthogonal, as MATLAB's traincgb), and whenever ``d`` is not
a descent direction.  The first trial step is the quadratic-interpolation
guess ``alpha_0 = 2.02 (f_{k-1} - f_k) / -g_k.d_k`` (scipy's, without its cap at 1).

**Scaled conjugate gradient** (:func:`scg`, Moeller 1993): no line search.
Each step estimates the curvature along ``p`` with a Hessian-vector product
(exact, by ``jvp`` of ``grad``, or Moeller's difference of two gradients),
regularises it with a Levenberg-Marquardt ``lambda`` and accepts the step when
the comparison ratio ``Delta >= 0``.

**Quickprop** (:func:`quickprop`, Fahlman 1988): per weight, a secant step
``dw_t = dw_{t-1} g_t / (g_{t-1} - g_t)``, capped at ``mu = 1.75`` times the
last step, plus a gradient step ``-lr g_t`` while the slope keeps its sign
(FANN's formulation).

Each transform counts the loss and gradient evaluations it makes itself in
its state (``value_evals``, ``grad_evals``), so training can report cost.

Example:
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

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bpkit import _validate

tree = optax.tree
Params = Any


def _safe_div(num, den):
    """num / den with den == 0 giving 0 (optimistix's guard)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


# -- beta formulas: plain functions of (g, g_prev, d_prev) ----------------------------


def beta_fr(g, g_prev, d_prev):
    return _safe_div(tree.vdot(g, g), tree.vdot(g_prev, g_prev))


def beta_pr(g, g_prev, d_prev):
    return _safe_div(tree.vdot(g, tree.sub(g, g_prev)), tree.vdot(g_prev, g_prev))


def beta_pr_plus(g, g_prev, d_prev):
    return jnp.maximum(0.0, beta_pr(g, g_prev, d_prev))


def beta_hs(g, g_prev, d_prev):
    y = tree.sub(g, g_prev)
    return _safe_div(tree.vdot(g, y), tree.vdot(d_prev, y))


def beta_dy(g, g_prev, d_prev):
    y = tree.sub(g, g_prev)
    return _safe_div(tree.vdot(g, g), tree.vdot(d_prev, y))


BETAS: dict[str, Callable] = {"fr": beta_fr, "pr": beta_pr, "pr+": beta_pr_plus, "hs": beta_hs, "dy": beta_dy}


def _beta(name: str) -> Callable:
    if name not in BETAS:
        raise ValueError(f"unknown CG beta {name!r}; valid: {', '.join(BETAS)}")
    return BETAS[name]


class NonlinearCGState(NamedTuple):
    # Not named value/grad: optax.value_and_grad_from_state looks those up in the line search's state.
    prev_grad: Params  # g_{k-1}
    prev_direction: Params  # d_{k-1}
    prev_value: jax.Array  # f_{k-1}
    count: jax.Array  # steps since the last restart (0 = restart now)
    restarts: jax.Array  # how many restarts so far


def scale_by_nonlinear_cg(
    beta: str = "pr+", restart_every: int | None = None, powell_beale: bool = False, nu: float = 0.2
) -> optax.GradientTransformationExtraArgs:
    """The CG direction, scaled so that a unit step is the first trial step.

    Chain it with a line search (see :func:`nonlinear_cg`); it needs ``value=``.
    """
    beta_fn = _beta(beta)
    if restart_every is not None and restart_every < 1:
        raise ValueError(f"restart_every must be a positive integer or None, got {restart_every!r}")

    def init(params):
        dt = jnp.result_type(*jax.tree_util.tree_leaves(params))
        return NonlinearCGState(
            prev_grad=tree.zeros_like(params),
            prev_direction=tree.zeros_like(params),
            prev_value=jnp.asarray(jnp.inf, dt),
            count=jnp.zeros((), jnp.int32),
            restarts=jnp.zeros((), jnp.int32),
        )

    def update(grads, state, params=None, *, value=None, **extra):
        if value is None:
            raise ValueError("nonlinear CG needs value= (the loss at params) in update()")
        n = restart_every or sum(x.size for x in jax.tree_util.tree_leaves(grads))
        gg = tree.vdot(grads, grads)
        b = beta_fn(grads, state.prev_grad, state.prev_direction)
        restart = (state.count == 0) | (state.count >= n)
        if powell_beale:
            restart |= jnp.abs(tree.vdot(grads, state.prev_grad)) >= nu * gg
        d = tree.add_scale(tree.scale(-1.0, grads), jnp.where(restart, 0.0, b), state.prev_direction)
        slope = tree.vdot(grads, d)
        not_descent = slope >= 0  # fall back to steepest descent
        d = tree.where(not_descent, tree.scale(-1.0, grads), d)
        slope = jnp.where(not_descent, -gg, slope)
        restart |= not_descent
        # First trial step: the minimiser of the quadratic through f_{k-1}, f_k and
        # the slope, 2 (f_{k-1} - f_k) / -g.d (Nocedal & Wright eq. 3.60), with
        # f_{k-1} = f_k + |g|/2 on the first step as scipy has it. Unlike scipy we
        # do not cap it at 1: a CG direction has no natural unit step (on digits
        # the accepted steps were 4-46x the capped guess, costing ~13 evaluations
        # per iteration instead of ~3).
        prev_value = jnp.where(jnp.isfinite(state.prev_value), state.prev_value, value + jnp.sqrt(gg) / 2)
        alpha0 = _safe_div(2.02 * (prev_value - value), -slope)
        alpha0 = jnp.where(alpha0 > 0, alpha0, _safe_div(1.0, jnp.sqrt(gg)))
        new_state = NonlinearCGState(
            prev_grad=grads,
            prev_direction=d,
            prev_value=jnp.asarray(value, state.prev_value.dtype),
            count=jnp.where(restart, 1, state.count + 1).astype(jnp.int32),
            restarts=state.restarts + restart.astype(jnp.int32),
        )
        return tree.scale(alpha0, d), new_state

    return optax.GradientTransformationExtraArgs(init, update)


class LineNewtonState(NamedTuple):
    value_evals: jax.Array
    grad_evals: jax.Array


def scale_by_line_newton() -> optax.GradientTransformationExtraArgs:
    """One Newton step along the direction: ``alpha = -phi'(0) / phi''(0)``.

    ``phi(alpha) = f(w + alpha d)``; ``phi''(0) = d.H d`` comes from a ``jvp``
    of ``grad``.  On a quadratic this *is* the exact line search (what CG's
    n-step termination assumes); elsewhere it is only a model, falling back
    to ``alpha = 1`` where the curvature along ``d`` is not positive.
    """

    def init(params):
        z = jnp.zeros((), jnp.int32)
        return LineNewtonState(z, z)

    def update(updates, state, params=None, *, grad=None, value_fn=None, **extra):
        if params is None or grad is None or value_fn is None:
            raise ValueError("scale_by_line_newton needs params, grad= and value_fn= in update()")
        slope = tree.vdot(grad, updates)
        curv = tree.vdot(updates, jax.jvp(jax.grad(value_fn), (params,), (updates,))[1])
        alpha = jnp.where(curv > 0, _safe_div(-slope, curv), 1.0)
        return tree.scale(alpha, updates), LineNewtonState(jnp.zeros((), jnp.int32), jnp.full((), 2, jnp.int32))

    return optax.GradientTransformationExtraArgs(init, update)


def nonlinear_cg(
    beta: str = "pr+",
    restart_every: int | None = None,
    powell_beale: bool = False,
    c1: float = 1e-4,
    c2: float = 0.4,
    max_linesearch_steps: int = 20,
    line_search: str = "zoom",
) -> optax.GradientTransformationExtraArgs:
    """Nonlinear CG with a strong-Wolfe zoom line search (c1 = 1e-4, c2 = 0.4, as scipy's CG).

    ``update`` needs ``value=``, ``grad=`` and ``value_fn=``; the line search
    stores the value and gradient at the new point in its state, so
    ``optax.value_and_grad_from_state`` reuses them.  ``line_search="newton"``
    swaps in :func:`scale_by_line_newton` (exact on quadratics).
    """
    for name, v in (("c1", c1), ("c2", c2)):
        if not 0 < v < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {v!r}")
    if not c1 < c2:
        raise ValueError(f"need c1 < c2 for a Wolfe line search, got c1={c1}, c2={c2}")
    if line_search == "zoom":
        search = optax.scale_by_zoom_linesearch(
            max_linesearch_steps=max_linesearch_steps,
            slope_rtol=c1,
            curv_rtol=c2,
            initial_guess_strategy="one",
        )
    elif line_search == "newton":
        search = scale_by_line_newton()
    else:
        raise ValueError(f"line_search must be 'zoom' or 'newton', got {line_search!r}")
    return optax.chain(scale_by_nonlinear_cg(beta, restart_every, powell_beale), search)


# -- Moeller's scaled conjugate gradient ----------------------------------------------------


class SCGState(NamedTuple):
    p: Params  # search direction p_k
    r: Params  # r_k = -E'(w_k) at the last iterate
    mu: jax.Array  # p_k . r_k, for the next beta
    delta_raw: jax.Array  # p_k . s_k before scaling, reused after a rejected step
    lam: jax.Array  # lambda_k
    lam_bar: jax.Array  # lambda-bar_k
    success: jax.Array  # the last step was accepted
    k: jax.Array  # iteration count
    value_evals: jax.Array  # evaluations made inside the last update
    grad_evals: jax.Array


def scg(
    sigma: float = 5e-5, lambda_init: float = 5e-7, hvp: str = "exact", restart_every: int | None = None
) -> optax.GradientTransformationExtraArgs:
    """Moeller's scaled conjugate gradient (1993), one iteration per ``update``.

    Per iteration with ``r = -E'(w)``: ``s = H p`` (``hvp="exact"``: ``jvp`` of
    ``grad``; ``"finite_difference"``: ``(E'(w + sigma_k p) - E'(w)) / sigma_k``,
    ``sigma_k = sigma / |p|``), ``delta = p.s + lambda |p|^2`` (made positive if
    need be), ``alpha = p.r / delta``, comparison ``Delta = 2 delta (E(w) -
    E(w + alpha p)) / (p.r)^2``.  ``Delta >= 0``: accept ``w + alpha p`` (and
    quarter ``lambda`` if ``Delta >= 0.75``); otherwise keep ``w``.  ``Delta <
    0.25``: ``lambda += delta (1 - Delta) / |p|^2``.  After an accepted step
    ``p = r + beta p`` with ``beta = (|r'|^2 - r'.r) / mu``, restarting every
    ``restart_every`` (default: number of parameters) steps.

    Cost per iteration: one ``E`` evaluation and one Hessian-vector product
    (counted as 1 gradient for the finite difference, 2 for the exact jvp).
    """
    if hvp not in ("exact", "finite_difference"):
        raise ValueError(f"hvp must be 'exact' or 'finite_difference', got {hvp!r}")
    if not (sigma > 0 and lambda_init > 0):
        raise ValueError(f"sigma and lambda_init must be positive, got {sigma!r}, {lambda_init!r}")

    def init(params):
        dt = jnp.result_type(*jax.tree_util.tree_leaves(params))
        z = jnp.zeros((), dt)
        return SCGState(
            p=tree.zeros_like(params), r=tree.zeros_like(params), mu=z, delta_raw=z,
            lam=jnp.asarray(lambda_init, dt), lam_bar=z, success=jnp.asarray(True),
            k=jnp.zeros((), jnp.int32), value_evals=jnp.zeros((), jnp.int32), grad_evals=jnp.zeros((), jnp.int32),
        )

    def update(grads, state, params=None, *, value=None, value_fn=None, **extra):
        if params is None or value is None or value_fn is None:
            raise ValueError("scg needs params, value= and value_fn= in update()")
        n = restart_every or sum(x.size for x in jax.tree_util.tree_leaves(grads))
        r = tree.scale(-1.0, grads)
        first = state.k == 0
        # A new direction after an accepted step (Moeller step 7), r at the first step.
        beta = _safe_div(tree.vdot(r, r) - tree.vdot(r, state.r), state.mu)
        restart = first | (state.k % n == 0)
        p_new = tree.add_scale(r, jnp.where(restart, 0.0, beta), state.p)
        p = tree.where(state.success, p_new, state.p)
        pp = tree.vdot(p, p)

        def curvature(_):
            if hvp == "exact":
                s = jax.jvp(jax.grad(value_fn), (params,), (p,))[1]
            else:
                sig = _safe_div(sigma, jnp.sqrt(pp))
                g2 = jax.grad(value_fn)(tree.add_scale(params, sig, p))
                s = tree.scale(_safe_div(1.0, sig), tree.sub(g2, grads))
            return tree.vdot(p, s).astype(state.delta_raw.dtype)

        delta_raw = jax.lax.cond(state.success & (pp > 0), curvature, lambda _: state.delta_raw, None)
        lam, lam_bar = state.lam, state.lam_bar
        delta = delta_raw + (lam - lam_bar) * pp  # step 3
        neg = delta <= 0  # step 4: make the Hessian estimate positive definite
        lam_bar = jnp.where(neg, 2.0 * (lam - _safe_div(delta, pp)), lam_bar)
        delta = jnp.where(neg, -delta + lam * pp, delta)
        lam = jnp.where(neg, lam_bar, lam)
        mu = tree.vdot(p, r)  # step 5
        alpha = _safe_div(mu, delta)
        new_value = value_fn(tree.add_scale(params, alpha, p))  # step 6
        cmp = _safe_div(2.0 * delta * (value - new_value), mu * mu)
        cmp = jnp.where(jnp.isfinite(cmp), cmp, -1.0)
        ok = (cmp >= 0) & (pp > 0)
        lam = jnp.where(ok & (cmp >= 0.75), 0.25 * lam, lam)  # step 7
        lam_bar = jnp.where(ok, 0.0, lam)
        lam = jnp.where(cmp < 0.25, lam + _safe_div(delta * (1.0 - cmp), pp), lam)  # step 8
        updates = tree.where(ok, tree.scale(alpha, p), tree.zeros_like(p))
        hvp_cost = jnp.where(state.success & (pp > 0), 2 if hvp == "exact" else 1, 0).astype(jnp.int32)
        new_state = SCGState(
            p=p, r=r, mu=mu.astype(state.mu.dtype), delta_raw=delta_raw, lam=lam.astype(state.lam.dtype),
            lam_bar=lam_bar.astype(state.lam.dtype), success=ok, k=state.k + (ok | first).astype(jnp.int32),  # accepted steps (>= 1 after the first)
            value_evals=jnp.ones((), jnp.int32), grad_evals=hvp_cost,
        )
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init, update)


# -- Quickprop ---------------------------------------------------------------------------------


class QuickpropState(NamedTuple):
    prev_step: Params
    prev_grad: Params


def quickprop(
    learning_rate: float = 0.7, mu: float = 1.75, decay: float = 0.0
) -> optax.GradientTransformationExtraArgs:
    """Fahlman's quickprop, per weight, as FANN implements it.

    With slope ``S = -(g + decay w)`` and the previous step ``dw'`` and slope ``S'``:
    if ``dw' > 0``: ``dw = lr S [if S > 0] + (mu dw' if S > mu/(1+mu) S' else dw' S / (S' - S))``
    (mirrored for ``dw' < 0``); if ``dw' == 0``: ``dw = lr S``.
    """
    # Checked when concrete; a sweep passes traced (vmapped) learning rates, validated beforehand.
    if _validate.is_concrete(learning_rate) and _validate.is_concrete(mu) and not (learning_rate > 0 and mu > 0):
        raise ValueError(f"learning_rate and mu must be positive, got {learning_rate!r}, {mu!r}")
    shrink = mu / (1.0 + mu)

    def init(params):
        return QuickpropState(tree.zeros_like(params), tree.zeros_like(params))

    def update(grads, state, params=None, **extra):
        if decay and params is None:
            raise ValueError("quickprop with decay needs params in update()")

        def one(g, w, dw0, g0):
            s = -(g + decay * w) if decay else -g
            s0 = -g0
            quad = _safe_div(dw0 * s, s0 - s)
            pos = jnp.where(s > 0, learning_rate * s, 0.0) + jnp.where(s > shrink * s0, mu * dw0, quad)
            neg = jnp.where(s < 0, learning_rate * s, 0.0) + jnp.where(s < shrink * s0, mu * dw0, quad)
            step = jnp.where(dw0 > 0, pos, jnp.where(dw0 < 0, neg, learning_rate * s))
            return step.astype(g.dtype)

        w = params if params is not None else grads
        steps = jax.tree_util.tree_map(one, grads, w, state.prev_step, state.prev_grad)
        return steps, QuickpropState(steps, grads)

    return optax.GradientTransformationExtraArgs(init, update)


# -- a registry, for configs ------------------------------------------------------------------


def _sgd(learning_rate: float = 0.1, momentum: float = 0.0, nesterov: bool = False):
    # A concrete 0 means plain GD (no trace state); a traced (vmapped) momentum keeps
    # the trace, which with momentum 0 computes v = g: the same step.
    plain = _validate.is_concrete(momentum) and not momentum
    return optax.sgd(learning_rate, momentum=None if plain else momentum, nesterov=nesterov)


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": _sgd,
    "rprop": lambda learning_rate=0.1, **kw: optax.rprop(learning_rate, **kw),
    "adam": lambda learning_rate=1e-3, **kw: optax.adam(learning_rate, **kw),
    "lbfgs": lambda **kw: optax.lbfgs(**kw),
    "cg": nonlinear_cg,
    "scg": scg,
    "quickprop": quickprop,
}
# The hyperparameters each optimizer takes from a config's [optimizer] table.
HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "sgd": ("learning_rate", "momentum"),
    "rprop": ("learning_rate",),
    "adam": ("learning_rate",),
    "lbfgs": (),
    "cg": ("beta", "powell_beale"),
    "scg": ("hvp",),
    "quickprop": ("learning_rate", "mu"),
}
LINE_SEARCH = {"cg", "lbfgs", "scg"}  # batch methods: they evaluate the loss themselves


def make(name: str, **hyper: Any) -> optax.GradientTransformationExtraArgs:
    """An optimizer by name with its hyperparameters, e.g. ``make("cg", beta="fr")``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    try:
        tx = OPTIMIZERS[name](**hyper)
    except TypeError as e:
        raise ValueError(f"bad hyperparameters for optimizer {name!r}: {e}") from None
    return optax.with_extra_args_support(tx)
