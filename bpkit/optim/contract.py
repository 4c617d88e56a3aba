"""The contract between an optimizer and bpkit's training loop: typed, and found by type.

Besides its updates, the loop needs three things from an optimizer's last ``update``:

* **what it cost**: loss-only evaluations and gradient evaluations it made
  itself, counted as Moeller (1993) counts complexity units (cu): a loss
  evaluation is 1 cu, a gradient (its loss included) 3 cu, and a
  Hessian-vector product stands in for the one extra gradient of Moeller's
  finite difference, so it is one gradient evaluation;
* **the loss and gradient at the params it returned**, when it computed them,
  so that the loop does not evaluate that point again;
* **whether its line search failed**, which ends the run with the status
  ``line_search_failed``.

An optimizer reports them with one :class:`Evaluations` node anywhere in its
state.  The loop finds such nodes by their *type*, never by a field name, so
a user's state with a field called ``value`` means nothing to it.  It also
reads optax's own line searches by their state types
(``optax.ScaleByZoomLinesearchState``, ``ScaleByBacktrackingLinesearchState``),
so ``optax.lbfgs`` and any chain with those searches report their cost too.
An optimizer with neither costs exactly the loop's one gradient per update.

``Evaluations`` names its cached point ``value`` and ``grad`` (``value = +inf``
when unknown), optax's own convention, so ``optax.value_and_grad_from_state``
reuses it in optax's documented L-BFGS loop.

Writing your own optimizer::

    class MyState(NamedTuple):
        velocity: Params
        evals: Evaluations            # what this update cost, and what it knows

    def init(params):
        return MyState(optax.tree.zeros_like(params), contract.initial(params))

    def update(grads, state, params=None, **extra):
        ...                            # made one extra loss evaluation at new_params:
        evals = contract.initial(params)._replace(value_evals=jnp.int32(1))
        return updates, MyState(velocity, evals)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

Params = Any


class Evaluations(NamedTuple):
    """What an optimizer's last update cost and knows (bpkit's optimizer contract).

    Attributes:
        value: the loss at the params the update returned; ``+inf`` when not known.
        grad: the gradient there where ``value`` is finite, else the latest gradient seen.
        value_evals: loss-only evaluations made inside the update (int32; 1 cu each).
        grad_evals: gradient evaluations made inside the update, each with its
            loss; a Hessian-vector product counts as one (int32; 3 cu each).
        failed: the update's line search found no step with sufficient decrease (bool).
    """

    value: jax.Array
    grad: Params
    value_evals: jax.Array
    grad_evals: jax.Array
    failed: jax.Array


def initial(params: Params, grad: Params | None = None) -> Evaluations:
    """An :class:`Evaluations` that knows nothing and cost nothing, in the params' dtype."""
    dt = jnp.result_type(*jax.tree_util.tree_leaves(params))
    zero = jnp.zeros((), jnp.int32)
    return Evaluations(
        value=jnp.asarray(jnp.inf, dt), grad=optax.tree.zeros_like(params) if grad is None else grad,
        value_evals=zero, grad_evals=zero, failed=jnp.asarray(False),
    )


class Report(NamedTuple):
    """All reporting nodes of a state, combined: counts add up, failures or together."""

    known: jax.Array  # the loss and gradient at the returned params are in value, grad
    value: jax.Array
    grad: Params | None
    value_evals: jax.Array
    grad_evals: jax.Array
    failed: jax.Array


_ZOOM = optax.ScaleByZoomLinesearchState
_BACKTRACK = optax.ScaleByBacktrackingLinesearchState
_TYPES = (Evaluations, _ZOOM, _BACKTRACK)


def _as_evaluations(node: Any) -> Evaluations:
    if isinstance(node, Evaluations):
        return node
    steps = jnp.asarray(node.info.num_linesearch_steps, jnp.int32)
    failed = jnp.asarray(node.info.decrease_error) > 0  # optax: positive = no sufficient decrease found
    if isinstance(node, _ZOOM):  # each step evaluates the loss and its gradient
        return Evaluations(node.value, node.grad, jnp.zeros((), jnp.int32), steps, failed)
    if node.grad is None:  # backtracking without store_grad: each step a loss only
        return Evaluations(jnp.asarray(jnp.inf, node.value.dtype), None, steps, jnp.zeros((), jnp.int32), failed)
    return Evaluations(node.value, node.grad, jnp.zeros((), jnp.int32), steps, failed)


def reports(state: Any) -> bool:
    """Whether ``state`` holds any reporting node (known at trace time: by type)."""
    return any(isinstance(n, _TYPES) for n in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, _TYPES)))


def report(state: Any) -> Report:
    """Combine every reporting node of ``state`` (found by type) into one :class:`Report`."""
    nodes = [_as_evaluations(n) for n in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, _TYPES))
             if isinstance(n, _TYPES)]
    zero = jnp.zeros((), jnp.int32)
    known, value, grad = jnp.asarray(False), jnp.asarray(jnp.inf), None
    for e in nodes:
        if e.grad is None:
            continue
        k = jnp.isfinite(e.value)  # the last node that knows its point wins
        value = e.value if grad is None else jnp.where(k, e.value, value)
        grad = e.grad if grad is None else optax.tree.where(k, e.grad, grad)
        known = known | k
    return Report(
        known, value, grad,
        sum((e.value_evals for e in nodes), zero), sum((e.grad_evals for e in nodes), zero),
        jnp.any(jnp.stack([jnp.asarray(False)] + [e.failed for e in nodes])),
    )
