"""Looking inside gradient learning: per-example gradients, Hessian spectra, angles, per-layer norms.

What BackPACK offers PyTorch users, for any pure JAX loss ``f(params, *args)``:

* :func:`per_example_grads`: the gradient of every example's own loss,
  ``g_i = d C(x_i, y_i) / dw``, stacked along a new leading axis (``jax.vmap``
  of ``jax.grad``);
* :func:`gradient_stats`: how the ``g_i`` agree, computed in float64: the norm
  of their mean over their mean norm (1 when all point one way, about
  ``1/sqrt(n)`` for random directions), the trace of their covariance, and
  the fraction of examples whose gradient points against the mean
  (``g_i . mean < 0``): the redundancy that makes online learning work;
* :func:`hvp`: a Hessian-vector product ``H v`` (forward-over-reverse:
  ``jvp`` of ``grad``), never forming ``H``;
* :func:`hessian_eigenvalues`: the extreme eigenvalues of ``H`` by Lanczos
  with full reorthogonalisation on :func:`hvp` (``m`` steps give the Ritz
  values of a Krylov space of dimension ``m``; with ``m`` = the number of
  params they are all of ``H``'s eigenvalues); :func:`power_iteration` for the
  eigenvalue of largest magnitude, as LeCun et al. (1998, section 5.3) use
  it for ``eta_max = 2 / lambda_max``;
* :func:`cosine` and :func:`angle`: between any update and the true gradient;
* :func:`layer_norms`: ``|dC/dW_l|`` and ``|dC/db_l|`` per layer;
* :func:`dead_units`: the hidden units that pass no gradient on any example (``f'(z) = 0`` on
  every row: a ReLU unit whose input is never positive).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from bpkit import MLP, loss_value, analysis
    >>> net = MLP((2, 3, 1), hidden="tanh")
    >>> p = net.init(jax.random.key(0))
    >>> x = jnp.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = jnp.array([[0.], [1.], [1.], [0.]])
    >>> f = lambda p, x, y: loss_value(net, p, x, y)
    >>> s = analysis.gradient_stats(analysis.per_example_grads(f, p, x, y))
    >>> lam = analysis.hessian_eigenvalues(f, p, x, y, k=2, key=jax.random.key(1))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

Params = Any


def per_example_grads(loss_fn: Callable[..., jax.Array], params: Params, x: jax.Array, y: jax.Array) -> Params:
    """``g_i = grad loss_fn(params, x[i:i+1], y[i:i+1])`` for every example, stacked on axis 0."""
    one = lambda p, xi, yi: jax.grad(loss_fn)(p, xi[None], yi[None])
    return jax.vmap(one, in_axes=(None, 0, 0))(params, x, y)


class GradientStats(NamedTuple):
    """How the per-example gradients ``g_i`` of one point agree (float64)."""

    norm_of_mean: float  # |mean_i g_i|, the full-batch gradient's norm
    mean_norm: float  # mean_i |g_i|
    ratio: float  # norm_of_mean / mean_norm, in [0, 1]
    variance_trace: float  # sum over params of the variance of g_i (population, 1/n)
    median_cos_to_mean: float  # median over examples of cos(g_i, mean)
    fraction_against: float  # share of examples with g_i . mean < 0


def _rows(per_example: Params) -> np.ndarray:
    """The stacked per-example gradients as an (n, params) float64 matrix."""
    leaves = jax.tree_util.tree_leaves(per_example)
    n = leaves[0].shape[0]
    return np.concatenate([np.asarray(a, np.float64).reshape(n, -1) for a in leaves], axis=1)


def gradient_stats(per_example: Params) -> GradientStats:
    """Statistics of stacked per-example gradients (:func:`per_example_grads`)."""
    g = _rows(per_example)
    mean = g.mean(0)
    norms = np.linalg.norm(g, axis=1)
    cos = g @ mean / (norms * np.linalg.norm(mean) + 1e-300)
    return GradientStats(float(np.linalg.norm(mean)), float(norms.mean()), float(np.linalg.norm(mean) / norms.mean()),
                         float(np.sum(g.var(0))), float(np.median(cos)), float(np.mean(g @ mean < 0)))


def hvp(f: Callable[..., jax.Array], params: Params, v: Params, *args: Any) -> Params:
    """``H v`` with ``H`` the Hessian of ``f(., *args)`` at ``params``: ``jvp`` of ``grad``."""
    return jax.jvp(lambda p: jax.grad(f)(p, *args), (params,), (v,))[1]


def _flat_hvp(f, params, args):
    flat, unravel = ravel_pytree(params)
    return flat, jax.jit(lambda v: ravel_pytree(hvp(f, params, unravel(v), *args))[0])


def power_iteration(f: Callable[..., jax.Array], params: Params, *args: Any, iters: int = 100,
                    key: jax.Array) -> float:
    """The Hessian eigenvalue of largest magnitude (it may be negative away from a minimum),
    by ``iters`` steps of power iteration from a random start drawn from ``key``."""
    flat, mv = _flat_hvp(f, params, args)
    v = jax.random.normal(key, flat.shape, flat.dtype)
    v = v / jnp.linalg.norm(v)
    lam = 0.0
    for _ in range(iters):
        hv = mv(v)
        lam = float(v @ hv)
        v = hv / jnp.linalg.norm(hv)
    return lam


def hessian_eigenvalues(f: Callable[..., jax.Array], params: Params, *args: Any, k: int = 1,
                        steps: int | None = None, key: jax.Array, which: str = "largest") -> np.ndarray:
    """The ``k`` largest (``which="largest"``) or smallest (``"smallest"``) Hessian eigenvalues, descending
    or ascending, as Ritz values of ``steps`` Lanczos steps (default: min(params, 100)).

    Lanczos builds an orthonormal basis ``Q`` of the Krylov space of ``H`` from
    a random start and the tridiagonal ``T = Q^T H Q``; every new vector is
    orthogonalised against all earlier ones (twice), and a breakdown
    (an invariant subspace found) restarts from a fresh random vector, so ``T``
    stays exact.  The extreme eigenvalues of ``T`` converge first.

    Raises:
        ValueError: ``k`` or ``steps`` out of range, or an unknown ``which``.
    """
    flat, mv = _flat_hvp(f, params, args)
    n = flat.size
    m = min(n, 100) if steps is None else steps
    if not (1 <= m <= n) or not (1 <= k <= m) or which not in ("largest", "smallest"):
        raise ValueError(f"need 1 <= k <= steps <= {n} (the number of params) and which 'largest' or "
                         f"'smallest', got k={k}, steps={steps}, which={which!r}")
    starts = np.asarray(jax.random.normal(key, (m, n), jnp.float64 if flat.dtype == jnp.float64 else jnp.float32),
                        np.float64)
    q = np.zeros((m, n))
    alpha, beta = np.zeros(m), np.zeros(max(m - 1, 0))
    v = starts[0] / np.linalg.norm(starts[0])
    for j in range(m):
        q[j] = v
        w = np.asarray(mv(jnp.asarray(v, flat.dtype)), np.float64)
        alpha[j] = v @ w
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - q[: j + 1].T @ (q[: j + 1] @ w)
        if j == m - 1:
            break
        b = np.linalg.norm(w)
        if b <= 1e-10 * max(1.0, np.abs(alpha[: j + 1]).max()):  # breakdown: restart orthogonal to Q
            w = starts[j + 1]
            for _ in range(2):
                w = w - q[: j + 1].T @ (q[: j + 1] @ w)
            beta[j], v = 0.0, w / np.linalg.norm(w)
        else:
            beta[j], v = b, w / b
    ritz = np.linalg.eigvalsh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
    return ritz[::-1][:k] if which == "largest" else ritz[:k]


def cosine(u: Params, v: Params) -> float:
    """``u.v / (|u| |v|)`` over all leaves of two pytrees of one structure (float64)."""
    a, b = (np.concatenate([np.ravel(np.asarray(t, np.float64)) for t in jax.tree_util.tree_leaves(x)]) for x in (u, v))
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def angle(u: Params, v: Params) -> float:
    """The angle between two pytrees in degrees: 0 along, 90 orthogonal, 180 opposed."""
    return float(np.degrees(np.arccos(np.clip(cosine(u, v), -1.0, 1.0))))


def layer_cosines(u: Params, v: Params) -> list[float]:
    """:func:`cosine` per layer (weights and bias together) of two bpkit gradients."""
    return [cosine(a, b) for a, b in zip(u, v, strict=True)]


def layer_norms(grads: Params) -> dict[str, list[float]]:
    """``{"w": [|dC/dW_l|], "b": [|dC/db_l|]}`` per layer of a bpkit gradient (a list of {"w", "b"})."""
    return {"w": [float(np.linalg.norm(np.asarray(g["w"], np.float64))) for g in grads],
            "b": [float(np.linalg.norm(np.asarray(g["b"], np.float64))) for g in grads]}


def least_squares_half_mse(x: Any, y: Any) -> tuple[float, np.ndarray]:
    """The best an affine map ``[x, 1] @ coef`` does on ``(x, y)`` under half MSE, by least squares
    (NumPy, float64): the loss of a net without hidden units at its optimum, and ``coef``.

    Example:
        >>> x = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([[0.], [1.], [1.], [0.]])
        >>> least_squares_half_mse(x, y)[0]  # XOR: 0.5 everywhere, MSE 1/4
        0.125
    """
    a = np.hstack([np.asarray(x, np.float64), np.ones((len(x), 1))])
    coef, *_ = np.linalg.lstsq(a, np.asarray(y, np.float64), rcond=None)
    return float(0.5 * np.mean(np.sum((a @ coef - y) ** 2, axis=1))), coef


def dead_units(net: Any, params: Params, x: jax.Array) -> jax.Array:
    """How many hidden units of ``net`` are dead on the examples ``x``: ``f'(z) = 0`` exactly on every row
    (``z`` the unit's pre-activation).  Such a unit passes no gradient back and its incoming weights and
    bias get none, so under full-batch training on ``x`` it never revives.  An int32 count over every
    hidden layer; a ReLU unit is dead when its input is never positive, a sigmoid's only when ``f'``
    underflows.

    Example:
        >>> import jax.numpy as jnp
        >>> from bpkit import MLP
        >>> net = MLP((1, 2, 1), hidden="relu")
        >>> p = [{"w": jnp.array([[1.0, -1.0]]), "b": jnp.zeros(2)}, {"w": jnp.ones((2, 1)), "b": jnp.zeros(1)}]
        >>> int(dead_units(net, p, jnp.array([[0.5], [2.0]])))   # the second unit's input is never positive
        1
    """
    _, cache = net.forward(params, x)
    counts = [jnp.sum(jnp.all(act.deriv(z) == 0, axis=0)) for act, z in zip(net.activations[:-1], cache.zs[:-1],
                                                                            strict=True)]
    return sum(counts, jnp.int32(0)).astype(jnp.int32)
