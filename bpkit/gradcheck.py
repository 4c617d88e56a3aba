"""A gradient checker that says which leaf and which entry of a gradient is wrong.

:func:`check_gradient` takes any pure loss ``loss_fn(params, *args) -> scalar``
and any hand-written ``grad_fn(params, *args) -> grads`` over the same params
pytree, and compares ``grad_fn`` against two independent references:

1. ``jax.grad(loss_fn)`` in the params' own dtype;
2. central finite differences of ``loss_fn`` computed in float64, with the
   fourth-order stencil ``[f(x-2h) - 8f(x-h) + 8f(x+h) - f(x+2h)] / (12h)``
   (truncation error O(h^4)), ``h = fd_step * max(1, |theta_i|)`` with ``fd_step = 1e-4``.

Per leaf, the error is measured against the leaf's own scale
``s = max_i |exp_i|``: ``max_abs = max_i |got_i - exp_i|``,
``max_rel = max_abs / max(s, atol / rtol)``, and the leaf passes when
``max_abs <= atol + rtol * s``.

Default tolerances (``bpkit check`` prints the worst errors its matrix reaches, well inside them):

============  ======================  ===================================
params dtype  vs jax.grad (rtol/atol)  vs finite differences (rtol/atol)
============  ======================  ===================================
float64       1e-10 / 1e-14           1e-7 / 1e-11
float32       1e-4  / 1e-7            1e-3 / 1e-6
============  ======================  ===================================

The finite-difference tolerance is looser in float64 because even the
fourth-order stencil is accurate to about 1e-10 only.  Its absolute floor
also grows with rounding noise: two evaluations of ``C`` that should be equal
can differ by an ulp, which the stencil divides by ``h``, so the effective
``atol`` is ``fd_atol + 64 eps |C| / h``.

Finite differences are meaningless *at* a kink: where a pre-activation sits
exactly on ReLU's 0 (a dead unit's zero output times a zero bias does that),
the central difference returns the mean of the two one-sided slopes, while
any derivative convention picks one.  Check at points off the kinks (non-zero
biases, e.g. ``init(..., scheme="uniform")``) and, for kinked activations,
use ``fd_order=2`` with a small ``fd_step`` (1e-6) so that a perturbation
rarely crosses a kink.

Example:
    >>> import jax.numpy as jnp
    >>> from bpkit import check_gradient
    >>> loss = lambda p, x: jnp.sum((p["w"] * x) ** 2)
    >>> wrong = lambda p, x: {"w": 2 * p["w"] * x}       # forgot one factor x
    >>> report = check_gradient(loss, wrong, {"w": jnp.array([1.0, 2.0])}, jnp.array([3.0, 4.0]))
    >>> report.passed
    False
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bpkit import _validate
from bpkit import activations as acts

TOLERANCES = {
    # dtype: (rtol, atol) vs jax.grad, (rtol, atol) vs finite differences
    "float64": ((1e-10, 1e-14), (1e-7, 1e-11)),
    "float32": ((1e-4, 1e-7), (1e-3, 1e-6)),
}
# Default h per stencil order (float64). O(h^4) with h = 1e-4: truncation
# ~1e-16 times the fifth derivative, rounding ~1e-12; h = 1e-3 was off by 7e-6
# on inputs of size 3, where the fifth derivative is large.
FD_STEPS = {4: 1e-4, 2: 1e-6}


@dataclasses.dataclass(frozen=True)
class LeafComparison:
    """One leaf of one comparison."""

    path: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    scale: float
    worst_index: tuple[int, ...]
    expected: float
    got: float
    passed: bool


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``grad_fn`` against one reference, leaf by leaf."""

    reference: str
    rtol: float
    atol: float
    leaves: tuple[LeafComparison, ...]

    @property
    def passed(self) -> bool:
        return all(leaf.passed for leaf in self.leaves)

    @property
    def max_rel_error(self) -> float:
        return max((leaf.max_rel_error for leaf in self.leaves), default=0.0)


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """Result of :func:`check_gradient`; ``str(report)`` is a readable table."""

    comparisons: tuple[Comparison, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.comparisons), default=0.0)

    @property
    def failures(self) -> list[tuple[str, LeafComparison]]:
        return [(c.reference, leaf) for c in self.comparisons for leaf in c.leaves if not leaf.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "max_rel_error": _json_float(self.max_rel_error),
            "comparisons": [
                {
                    "reference": c.reference,
                    "rtol": c.rtol,
                    "atol": c.atol,
                    "passed": c.passed,
                    "leaves": [
                        {k: _json_float(v) for k, v in dataclasses.asdict(leaf).items()}
                        for leaf in c.leaves
                    ],
                }
                for c in self.comparisons
            ],
        }

    def __str__(self) -> str:
        head = f"gradient check {'PASSED' if self.passed else 'FAILED'}: max relative error {self.max_rel_error:.2e}"
        cols = ("reference", "leaf", "shape", "max abs err", "max rel err", "worst entry", "expected", "got", "")
        rows = [
            (
                c.reference, leaf.path, str(leaf.shape), f"{leaf.max_abs_error:.2e}",
                f"{leaf.max_rel_error:.2e}", str(leaf.worst_index), f"{leaf.expected:.6g}",
                f"{leaf.got:.6g}", "ok" if leaf.passed else "<-- WRONG",
            )
            for c in self.comparisons
            for leaf in c.leaves
        ]
        widths = [max(len(str(r[i])) for r in rows + [cols]) for i in range(len(cols))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [head, fmt.format(*cols).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
        lines += [fmt.format(*r).rstrip() for r in rows]
        for ref, leaf in self.failures[:3]:
            lines.append(
                f"wrong: {leaf.path} entry {leaf.worst_index}: {ref} gives {leaf.expected:.6g}, "
                f"grad_fn gives {leaf.got:.6g}"
            )
        return "\n".join(lines)


def _json_float(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _compare_leaf(path: str, got: np.ndarray, exp: np.ndarray, rtol: float, atol: float) -> LeafComparison:
    got = np.asarray(got, np.float64)
    exp = np.asarray(exp, np.float64)
    err = np.abs(got - exp)
    if not np.all(np.isfinite(got)):
        err = np.where(np.isfinite(got), err, np.inf)
    scale = float(np.max(np.abs(exp))) if exp.size else 0.0
    max_abs = float(np.max(err)) if err.size else 0.0
    # Relative to the leaf's largest entry, with the scale floored where atol
    # takes over, so an all-zero leaf with rounding noise does not read as 100%.
    floor = float(max(scale, atol / rtol)) if rtol > 0 else scale
    max_rel = max_abs / floor if floor > 0 else (0.0 if max_abs == 0 else math.inf)
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape)) if err.size else ()
    return LeafComparison(
        path=path,
        shape=tuple(exp.shape),
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        scale=scale,
        worst_index=idx,
        expected=float(exp[idx]) if err.size else 0.0,
        got=float(got[idx]) if err.size else 0.0,
        passed=bool(max_abs <= atol + rtol * scale),
    )


def _compare(reference: str, got: Any, exp: Any, rtol: float, atol: float) -> Comparison:
    got_leaves = jax.tree_util.tree_leaves_with_path(got)
    exp_leaves = jax.tree_util.tree_leaves(exp)
    return Comparison(
        reference,
        rtol,
        atol,
        tuple(
            _compare_leaf(jax.tree_util.keystr(path), np.asarray(g), np.asarray(e), rtol, atol)
            for (path, g), e in zip(got_leaves, exp_leaves, strict=True)
        ),
    )


def _check_same_structure(params: Any, grads: Any) -> None:
    p_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    g_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(grads)]
    structure = jax.tree_util.tree_structure
    if structure(params) != structure(grads):  # type: ignore[operator]  # PyTreeDef compares; its stub says not
        missing = [p for p in p_paths if p not in g_paths]
        extra = [p for p in g_paths if p not in p_paths]
        detail = "; ".join(
            s for s in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(extra)}" if extra else "",
            ) if s
        ) or f"params are {jax.tree_util.tree_structure(params)}, grads are {jax.tree_util.tree_structure(grads)}"
        raise ValueError(f"grad_fn's pytree does not match params: {detail}")
    for path, p, g in zip(p_paths, jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(grads), strict=True):
        if jnp.shape(p) != jnp.shape(g):
            raise ValueError(
                f"grad_fn's leaf {path} has shape {tuple(jnp.shape(g))}, params' has {tuple(jnp.shape(p))}"
            )


def _dtype_key(params: Any) -> str:
    dtypes = {jnp.result_type(leaf) for leaf in jax.tree_util.tree_leaves(params)}
    if not dtypes or not all(jnp.issubdtype(d, jnp.floating) for d in dtypes):
        raise ValueError(f"params must be a pytree of floating arrays, got dtypes {sorted(map(str, dtypes))}")
    return "float64" if all(d == jnp.float64 for d in dtypes) else "float32"


def _to64(tree: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, jnp.float64) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x,
        tree,
    )


def finite_difference_grad(
    loss_fn: Callable[..., Any], params: Any, *args: Any, step: float | None = None, order: int = 4,
    chunk: int = 256, compile: bool = True,
) -> Any:
    """Central finite-difference gradient of ``loss_fn`` w.r.t. ``params``, in float64.

    One perturbed evaluation per stencil point and parameter, vmapped over
    chunks of ``chunk`` parameters.  ``compile=True`` jit-compiles the stencil
    (best for a one-off check); ``False`` runs it op by op, which is faster
    when many checks share shapes, since JAX caches each op's kernel.
    """
    if order not in FD_STEPS:
        raise ValueError(f"fd_order must be one of {sorted(FD_STEPS)}, got {order!r}")
    step = FD_STEPS[order] if step is None else step
    if not step > 0:
        raise ValueError(f"fd_step must be positive, got {step!r}")
    with jax.enable_x64(True):
        p64, a64 = _to64(params), _to64(args)
        flat, unravel = ravel_pytree(p64)
        coef = {2: ((-1, -0.5), (1, 0.5)), 4: ((-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12), (2, -1 / 12))}[order]

        def partials(flat, idx, a64):
            h = step * jnp.maximum(1.0, jnp.abs(flat[idx]))

            def one(i, hi):
                def at(k):
                    return loss_fn(unravel(flat.at[i].add(k * hi)), *a64)

                return sum(w * at(k) for k, w in coef) / hi

            return jax.vmap(one)(idx, h)

        if compile:
            partials = jax.jit(partials)
        n = flat.size
        pieces = [partials(flat, jnp.arange(s, min(s + chunk, n)), a64) for s in range(0, n, chunk)]
        return unravel(jnp.concatenate(pieces) if pieces else flat)


def check_gradient(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    rtol: float | None = None,
    atol: float | None = None,
    fd_rtol: float | None = None,
    fd_atol: float | None = None,
    fd_step: float | None = None,
    fd_order: int = 4,
    finite_differences: bool = True,
    compile: bool = True,
    fuse: bool = False,
) -> GradientReport:
    """Compare a hand-written ``grad_fn`` against ``jax.grad`` and finite differences.

    Args:
        loss_fn: pure, JAX-traceable ``(params, *args) -> scalar``.
        grad_fn: ``(params, *args) -> grads`` with exactly the params' pytree.
        params: the point to check at (a pytree of floating arrays).
        *args: the rest of ``loss_fn``'s arguments (data, targets).
        rtol, atol: tolerance against ``jax.grad``; default by dtype (module docstring).
        fd_rtol, fd_atol: tolerance against finite differences; default by dtype.
        fd_step, fd_order: finite-difference step and stencil order (2 or 4).
        finite_differences: False skips the (slower) finite-difference reference.
        compile: jit-compile the finite differences (see :func:`finite_difference_grad`).
        fuse: compute ``grad_fn``, ``jax.grad`` and the finite differences in one compiled
            program, traced in 64-bit mode (``grad_fn`` must then be JAX-traceable too): one
            executable per check instead of one per operation, which holds less memory over many
            checks (each CPU executable stays resident) but shares no kernel between checks.

    Returns:
        A :class:`GradientReport`; ``passed`` is True when every leaf agrees.

    Raises:
        ValueError: if the pytrees or shapes differ, or params/args hold NaN or inf.
    """
    _validate.require_finite("params", params)
    _validate.require_finite("args", args)
    (ad_rtol, ad_atol), (fd_rtol0, fd_atol0) = TOLERANCES[_dtype_key(params)]
    ad_rtol = ad_rtol if rtol is None else rtol
    ad_atol = ad_atol if atol is None else atol
    fd_rtol = fd_rtol0 if fd_rtol is None else fd_rtol
    fd_atol = fd_atol0 if fd_atol is None else fd_atol
    fd = (fd_step, fd_order, compile and not fuse) if finite_differences else None
    got, ref, fd_grad, c = _gradients(loss_fn, grad_fn, params, args, fd, fuse)
    comparisons = [_compare("jax.grad", got, ref, ad_rtol, ad_atol)]
    if finite_differences:
        h = FD_STEPS[fd_order] if fd_step is None else fd_step
        fd_atol += 64 * np.finfo(np.float64).eps * abs(float(c)) / h  # rounding noise of the stencil
        comparisons.append(_compare(f"finite diff (f64, O(h^{fd_order}), h={h:g})", got, fd_grad, fd_rtol, fd_atol))
    return GradientReport(tuple(comparisons))


def _gradients(loss_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any, args: tuple,
               fd: tuple | None, fuse: bool) -> tuple:
    """``(grad_fn's, jax.grad's, the finite differences, the loss in float64)`` at ``params`` (the last
    two None without ``fd = (step, order, compile)``), op by op or in one program (``fuse``)."""

    def references(p, a):
        ref = jax.grad(loss_fn)(p, *a)
        if fd is None:
            return ref, None, None
        grads = finite_difference_grad(loss_fn, p, *a, step=fd[0], order=fd[1], compile=fd[2])
        with jax.enable_x64(True):
            return ref, grads, loss_fn(_to64(p), *_to64(a))

    if fuse:
        with jax.enable_x64(True):
            got, refs = jax.jit(lambda p, a: (grad_fn(p, *a), references(p, a)))(params, args)
        _check_same_structure(params, got)
        return (got, *refs)
    got = grad_fn(params, *args)
    _check_same_structure(params, got)
    return (got, *references(params, args))


# -- one activation's derivative ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ActivationReport:
    """Hand-written ``f'`` against ``jax.grad(f)`` (in float64) over a dense grid."""

    name: str
    dtype: str
    points: int
    passed: bool
    max_abs_error: float
    worst_z: float
    worst_ours: float
    worst_reference: float
    kinks: tuple[tuple[float, float, float], ...]  # (z, ours, jax.grad)
    output_form_max_abs_diff: float | None  # max |f'(from a) - f'(z)|
    output_form_zero_from: float | None  # smallest |z| where the output form is 0 but f'(z) is not

    def __str__(self) -> str:
        s = (
            f"{self.name:<18} {self.dtype:<8} {'ok' if self.passed else 'WRONG':<6} "
            f"max abs err {self.max_abs_error:.2e} at z={self.worst_z:.6g} "
            f"(ours {self.worst_ours:.6g}, jax.grad {self.worst_reference:.6g})"
        )
        if self.output_form_zero_from is not None:
            s += f"; output form underflows to 0 from |z|={self.output_form_zero_from:.4g}"
        return s


def activation_grid(act: acts.Activation, lo: float = -40.0, hi: float = 40.0, n: int = 8001) -> np.ndarray:
    """A dense float64 grid over ``[lo, hi]`` with every kink and its neighbours added."""
    pts = [np.linspace(lo, hi, n)]
    for k in act.kinks:
        pts.append(np.array([k, np.nextafter(k, -np.inf), np.nextafter(k, np.inf), k - 1e-6, k + 1e-6]))
    return np.unique(np.concatenate(pts))


def check_activation(
    name: str | acts.Activation,
    dtype: Any = jnp.float64,
    rtol: float | None = None,
    atol: float | None = None,
    grid: np.ndarray | None = None,
) -> ActivationReport:
    """Check one activation's hand-written derivative against ``jax.grad`` in float64.

    The grid spans deep saturation (|z| up to 40) and each kink exactly.  A
    point passes when ``|ours - ref| <= atol + rtol * |ref|``; ``atol`` absorbs
    the reference's own loss of precision in saturation (``jax.grad`` of tanh
    is ``(1 + t)(1 - t)`` and rounds there: for gelu_tanh at z = -7.3 it is
    off by 3.5e-14).  Default tolerances: float64 rtol 1e-12, atol 1e-13;
    float32 rtol 1e-5, atol 1e-6.  The reference is evaluated at exactly the
    (rounded) points the checked dtype represents.
    """
    act = acts.get(name)
    if not act.elementwise:
        raise ValueError(f"activation {act.name!r} is not elementwise; check it through check_gradient")
    dt = np.dtype(dtype).name
    default = {"float64": (1e-12, 1e-13), "float32": (1e-5, 1e-6)}
    if dt not in default:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    rtol = default[dt][0] if rtol is None else rtol
    atol = default[dt][1] if atol is None else atol
    z64 = activation_grid(act) if grid is None else np.asarray(grid, np.float64)
    with jax.enable_x64(True):
        z = jnp.asarray(z64, dt)
        z64 = np.asarray(z, np.float64)  # the reference sees exactly the points ours sees
        ref = np.asarray(jax.vmap(jax.grad(lambda z: act.fn(z)))(jnp.asarray(z64)), np.float64)
        ours = np.asarray(act.deriv(z), np.float64)
        err = np.abs(ours - ref)
        bad = err > atol + rtol * np.abs(ref)
        i = int(np.argmax(np.where(bad, err, -1.0))) if bad.any() else int(np.argmax(err))
        kinks = tuple(
            (k, float(act.deriv(jnp.asarray(k, dt))), float(jax.grad(act.fn)(jnp.asarray(k, jnp.float64))))
            for k in act.kinks
        )
        of_diff = of_zero = None
        if act.output_deriv is not None:
            exact = np.asarray(act.deriv(z), np.float64)
            from_a = np.asarray(act.output_deriv(act.fn(z)), np.float64)
            of_diff = float(np.max(np.abs(from_a - exact)))
            under = (from_a == 0) & (exact != 0)
            of_zero = float(np.min(np.abs(z64[under]))) if under.any() else None
    return ActivationReport(
        name=act.name,
        dtype=dt,
        points=int(z64.size),
        passed=not bad.any(),
        max_abs_error=float(err.max()),
        worst_z=float(z64[i]),
        worst_ours=float(ours[i]),
        worst_reference=float(ref[i]),
        kinks=kinks,
        output_form_max_abs_diff=of_diff,
        output_form_zero_from=of_zero,
    )
