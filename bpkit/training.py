"""One training loop, compiled end to end, for every optimizer and gradient source.

Online, mini-batch and batch learning are this same loop with a batch size:
``batch_size=1`` is online (one update per example), ``None`` (or N) is batch.
Each epoch draws the order of the examples from the key (``shuffle=True``) or
keeps it fixed (FANN's incremental mode), cuts it into batches of
``batch_size``, and for each batch computes ``(C, dC/dw)`` with the chosen
gradient source and applies ``optimizer.update``.  A last, partial batch is
padded with zero-weight examples, so every batch averages over its real
examples only.

The update rule is any optax transform; line-search methods (CG, SCG,
L-BFGS) get ``value=``, ``grad=`` and ``value_fn=`` like ``optax.lbfgs`` wants,
and in batch mode the value and gradient the line search stored are reused.

Epochs run in ``lax.while_loop`` and batches in ``lax.scan``: no Python loop
over steps and no host sync until the end.  The history is recorded inside
the compiled program, per epoch: training loss, norm of the true gradient
(jax.grad, whatever the source), loss and gradient evaluations so far in
full-data equivalents (a batch of B examples counts B/N), the 40-20-40
fraction of right outputs and, given a validation set, its loss.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from bpkit import MLP
    >>> from bpkit.training import train
    >>> from bpkit.stopping import StopRules
    >>> net = MLP((2, 2, 1), hidden="tanh", output="sigmoid")
    >>> x = jnp.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = jnp.array([[0.], [1.], [1.], [0.]])
    >>> r = train(net, optax.sgd(0.5), net.init(jax.random.key(0)), x, y, key=jax.random.key(1),
    ...           batch_size=1, rules=StopRules(max_epochs=50))
    >>> int(r.epochs)
    50
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bpkit import _validate
from bpkit import losses as losses_
from bpkit import stopping
from bpkit.gradients import check_targets, objective
from bpkit.network import MLP, Params

Array = jax.Array


class History(NamedTuple):
    """Per-epoch records, length ``max_epochs``; entries past the stop are NaN."""

    loss: Array
    grad_norm: Array
    val_loss: Array
    fraction_right: Array
    loss_evals: Array
    grad_evals: Array


class TrainResult(NamedTuple):
    params: Params  # after the last epoch
    best_params: Params  # with the best validation loss (the last params without validation)
    history: History
    epochs: Array  # epochs run
    stop_reason: Array  # a stopping.REASONS index
    initial_loss: Array

    @property
    def reason(self) -> str:
        return stopping.reason_name(self.stop_reason)

    @property
    def final_loss(self) -> Array:
        return self.history.loss[jnp.maximum(self.epochs - 1, 0)]


def _extra_evals(opt_state: Any) -> tuple[Array, Array]:
    """Loss and gradient evaluations an optimizer made itself in its last update."""
    ls = optax.tree.get(opt_state, "num_linesearch_steps")  # optax's zoom: value and grad each step
    v = optax.tree.get(opt_state, "value_evals")  # bpkit's SCG
    g = optax.tree.get(opt_state, "grad_evals")
    zero = jnp.zeros((), jnp.int32)
    ls = zero if ls is None else ls
    return (ls + (zero if v is None else v), ls + (zero if g is None else g))


def make_trainer(
    net: MLP,
    optimizer: optax.GradientTransformation,
    *,
    loss: str = "mse",
    source: str = "autodiff",
    batch_size: int | None = None,
    shuffle: bool = True,
    rules: stopping.StopRules = stopping.StopRules(),
) -> Callable[..., TrainResult]:
    """The pure training function ``run(params, x, y, key, x_val=None, y_val=None)``.

    Everything passed here is static (it shapes the compiled program); what
    ``run`` takes is data, so ``run`` can be jitted and vmapped over seeds.
    """
    f = objective(net, loss, source)
    value_and_grad = jax.value_and_grad(f)
    loss_obj = losses_.get(loss)

    def loss_and_outputs(p, x, y):
        out, cache = net.forward(p, x)
        return loss_obj.value(cache.zs[-1], out, y), out

    # The epoch-end measurement: true loss and gradient (jax.grad), and the outputs.
    measure_vg = jax.value_and_grad(loss_and_outputs, has_aux=True)
    optimizer = optax.with_extra_args_support(optimizer)
    # In batch mode the measurement at the end of one epoch is the value and
    # gradient the next epoch's step needs: reuse it instead of recomputing.
    reuse_measurement = batch_size is None and source == "autodiff"

    def run(params, x, y, key, x_val=None, y_val=None) -> TrainResult:
        n = x.shape[0]
        b = n if batch_size is None else batch_size
        full = b == n
        n_batches = math.ceil(n / b)
        pad = n_batches * b - n
        dt = jax.tree_util.tree_leaves(params)[0].dtype
        y = jnp.asarray(y, dt)
        lo, hi = jnp.min(y), jnp.max(y)
        mask = (jnp.arange(n_batches * b) < n).reshape(n_batches, b).astype(dt)

        def batch_step(carry, batch, measured=None):
            params, opt_state, evals = carry
            idx, m = batch
            # Full batch: the data in their own order, weights 1/N, as loss_value has them.
            # Without padding, every batch is a plain mean (weights 1/b): no weights needed.
            if full:
                xb, yb, wb = x, y, None
            else:
                xb, yb, wb = x[idx], y[idx], (m / jnp.sum(m) if pad else None)
            fresh = jnp.ones((), jnp.int32)
            cached = optax.tree.get(opt_state, "value") if full else None
            if cached is not None:  # the line search already evaluated this point
                fresh = (~jnp.isfinite(cached)).astype(jnp.int32)
                value, grads = jax.lax.cond(
                    fresh > 0,
                    lambda p: value_and_grad(p, xb, yb, wb),
                    lambda p: (cached.astype(dt), optax.tree.get(opt_state, "grad")),
                    params,
                )
            elif reuse_measurement:
                value, grads = measured
            else:
                value, grads = value_and_grad(params, xb, yb, wb)
            updates, opt_state = optimizer.update(
                grads, opt_state, params, value=value, grad=grads, value_fn=lambda p: f(p, xb, yb, wb)
            )
            params = optax.apply_updates(params, updates)
            extra_v, extra_g = _extra_evals(opt_state)
            frac = jnp.sum(m) / n
            evals = evals + frac * jnp.stack([fresh + extra_v, fresh + extra_g]).astype(dt)
            return (params, opt_state, evals), None

        def measure(p):
            (value, out), grads = measure_vg(p, x, y)
            gnorm = optax.tree.norm(grads)
            right = stopping.fraction_right_40_20_40(out, y, lo, hi)
            val = f(p, x_val, jnp.asarray(y_val, dt)) if x_val is not None else jnp.asarray(jnp.nan, dt)
            return (value, grads), gnorm, right, val

        def epoch(state):
            params, opt_state, key, ep, evals, hist, best_val, best_params, since_best, unchanged, measured, _ = state
            key, sub = jax.random.split(key)
            order = jax.random.permutation(sub, n) if (shuffle and not full) else jnp.arange(n)
            idx = jnp.concatenate([order, order[:pad]]).reshape(n_batches, b)
            if reuse_measurement:  # one full batch: no scan, and the step reuses the measurement
                (new_params, opt_state, evals), _ = batch_step((params, opt_state, evals), (idx[0], mask[0]), measured)
            else:
                (new_params, opt_state, evals), _ = jax.lax.scan(batch_step, (params, opt_state, evals), (idx, mask))
            measured, gnorm, right, val = measure(new_params)
            value = measured[0]
            same = jnp.all(jnp.stack([jnp.all(u == v) for u, v in zip(
                jax.tree_util.tree_leaves(new_params), jax.tree_util.tree_leaves(params))]))
            unchanged = jnp.where(same, unchanged + 1, 0)
            better = val < best_val if x_val is not None else jnp.asarray(True)
            best_val = jnp.where(better, val, best_val)
            best_params = jax.tree_util.tree_map(lambda a, c: jnp.where(better, a, c), new_params, best_params)
            since_best = jnp.where(better, 0, since_best + 1)
            hist = History(*(
                h.at[ep].set(v.astype(dt)) for h, v in zip(hist, (value, gnorm, val, right, evals[0], evals[1]))
            ))
            ep = ep + 1
            reason = stopping.stop_reason(rules, ep, value, gnorm, right, since_best, unchanged)
            return (new_params, opt_state, key, ep, evals, hist, best_val, best_params, since_best, unchanged,
                    measured, reason)

        nan = jnp.full((rules.max_epochs,), jnp.nan, dt)
        measured = measure(params)[0]
        init = (
            params, optimizer.init(params), key, jnp.zeros((), jnp.int32), jnp.zeros((2,), dt),
            History(nan, nan, nan, nan, nan, nan), jnp.asarray(jnp.inf, dt), params,
            jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), measured, jnp.int32(stopping.RUNNING),
        )
        out = jax.lax.while_loop(lambda s: s[-1] == stopping.RUNNING, epoch, init)
        params, _, _, ep, _, hist, _, best_params, _, _, _, reason = out
        initial_loss = measured[0]
        return TrainResult(params, best_params, hist, ep, reason, initial_loss)

    return run


@partial(jax.jit, static_argnames=("net", "optimizer", "loss", "source", "batch_size", "shuffle", "rules"))
def _train_jit(params, x, y, key, x_val, y_val, *, net, optimizer, loss, source, batch_size, shuffle, rules):
    run = make_trainer(
        net, optimizer, loss=loss, source=source, batch_size=batch_size, shuffle=shuffle, rules=rules
    )
    return run(params, x, y, key, x_val, y_val)


def train(
    net: MLP,
    optimizer: optax.GradientTransformation,
    params: Params,
    x: Array,
    y: Array,
    *,
    key: Array,
    loss: str = "mse",
    source: str = "autodiff",
    batch_size: int | None = None,
    shuffle: bool = True,
    rules: stopping.StopRules = stopping.StopRules(),
    x_val: Array | None = None,
    y_val: Array | None = None,
) -> TrainResult:
    """Train ``net`` from ``params`` on ``(x, y)``; see the module docstring.

    Compiles once per (net, optimizer object, loss, source, batch size,
    shuffle, rules) and data shapes; reuse the same optimizer object to reuse
    the compiled program.

    Raises:
        ValueError: on bad shapes, names or ranges (one line each).
    """
    check_targets(net, x, y, loss)
    objective(net, loss, source)  # rejects an unknown source, before anything compiles
    net.check_params(params)
    n = x.shape[0]
    if batch_size is not None and not (isinstance(batch_size, int) and 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be an integer in 1..{n} (the number of examples) or None, got {batch_size!r}")
    if batch_size == n:
        batch_size = None  # the same program as batch mode
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__}")
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    if x_val is not None:
        check_targets(net, x_val, y_val, loss)
    if rules.patience is not None and x_val is None:
        raise ValueError("the patience rule needs a validation set (x_val, y_val)")
    _validate.require_finite("params", params)
    return _train_jit(
        params, x, y, key, x_val, y_val, net=net, optimizer=optimizer, loss=loss, source=source,
        batch_size=batch_size, shuffle=shuffle, rules=rules,
    )
