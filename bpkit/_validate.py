"""Shared input checks: one-line ValueErrors, raised at trace time or eagerly."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def require_finite(what: str, tree: Any) -> None:
    """Raise if any concrete floating leaf of ``tree`` holds NaN or inf.

    Tracers are skipped: inside ``jit`` values are unknown, and runtime
    non-finiteness is reported as a status by the training loop instead.
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    for path, leaf in leaves:
        if not is_concrete(leaf):
            continue
        arr = np.asarray(leaf)
        if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.complexfloating):
            continue
        bad = ~np.isfinite(arr)
        if bad.any():
            where = jax.tree_util.keystr(path)
            first = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
            kind = "NaN" if np.isnan(arr[first] if arr.ndim else arr) else "inf"
            raise ValueError(
                f"{what}{where} holds {int(bad.sum())} non-finite value(s) "
                f"(first: {kind} at index {first}); all values must be finite"
            )


def require_matrix(what: str, x: Any, width: int, width_name: str) -> None:
    """Raise unless ``x`` is a 2-D array ``(N, width)`` with ``N >= 1``."""
    shape = jnp.shape(x)
    if len(shape) != 2:
        raise ValueError(
            f"{what} must be a 2-D array (examples, {width_name}), got shape {tuple(shape)}"
        )
    if shape[1] != width:
        raise ValueError(
            f"{what} has width {shape[1]} but the network has {width} {width_name}"
        )
    if shape[0] < 1:
        raise ValueError(f"{what} is empty (0 examples); give at least one")


def output_range(act: Any) -> tuple[float, float]:
    """The closed range of an elementwise activation's outputs, measured on a dense grid of z
    (|z| <= 50, kinks included) and at z = +-1e30, in float32."""
    z = np.concatenate([np.linspace(-50, 50, 20001), [-1e30, 1e30], np.asarray(act.kinks, float)])
    with jax.ensure_compile_time_eval():
        a = np.asarray(act.fn(jnp.asarray(z, jnp.float32)), np.float64)
    a = a[np.isfinite(a)]
    return float(a.min()), float(a.max())


def require_reachable_targets(act: Any, width: int, y: np.ndarray, data_name: str) -> None:
    """Raise unless an output layer ``act`` of ``width`` units can produce the targets ``y``:
    each target within the activation's range, and for softmax, rows of a distribution."""
    y = np.asarray(y, np.float64)
    if not act.elementwise:
        sums = y.sum(axis=1)
        if y.min() < 0 or not np.allclose(sums, 1.0, atol=1e-6):
            raise ValueError(
                f"a {act.name} output sums to 1 over its {width} units, but the targets of {data_name} "
                f"are not rows of non-negative numbers summing to 1; use an elementwise output activation"
            )
        return
    lo, hi = output_range(act)
    if y.min() < lo - 1e-6 * max(1.0, abs(lo)) or y.max() > hi + 1e-6 * max(1.0, abs(hi)):
        raise ValueError(
            f"output activation {act.name!r} ranges over [{lo:.6g}, {hi:.6g}], but the targets of {data_name} "
            f"span [{y.min():.6g}, {y.max():.6g}]; choose an output activation that reaches them "
            f"(identity reaches any) or set data.target_range"
        )
