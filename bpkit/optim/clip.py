"""FANN's weight clip: iRPROP- and quickprop in FANN 2.2 keep every weight within +-1500.

``fann_update_weights_irpropm`` and ``fann_update_weights_quickprop`` set a weight that a step
took beyond +-1500 to +-1500, after the step and outside the optimizer's memory (the stored
step is the unclipped one).  :func:`within` does that to an update: ``w + u`` becomes
``clip(w + u, -limit, limit)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

FANN_WEIGHT_LIMIT = 1500.0  # fann_train.c


def check(limit: float | None) -> None:
    """Raise a one-line ValueError unless ``limit`` is None or positive."""
    if limit is not None and not limit > 0:
        raise ValueError(f"weight_limit must be positive (FANN's is 1500), got {limit!r}")


def within(updates: Any, params: Any, limit: float | None) -> Any:
    """The updates that leave every weight of ``params + updates`` inside ``[-limit, limit]``
    (``limit=None``: ``updates`` unchanged).  An update that stays inside is returned as it is, bit
    for bit; one that crosses becomes ``+-limit - w``.

    Example:
        >>> import jax.numpy as jnp
        >>> within(jnp.array([5.0, 1.0]), jnp.array([1498.0, 0.0]), 1500.0).tolist()
        [2.0, 1.0]
    """
    if limit is None:
        return updates
    if params is None:
        raise ValueError("a weight limit needs params in update()")

    def one(u, w):
        target = w + u
        edge = jnp.clip(target, -limit, limit)
        return jnp.where(target == edge, u, edge - w).astype(u.dtype)

    return jax.tree_util.tree_map(one, updates, params)
