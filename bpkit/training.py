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
L-BFGS) get ``value=``, ``grad=`` and ``value_fn=`` like ``optax.lbfgs`` wants.
The loop reads nothing from an optimizer's state by field name: what an
update cost, the loss and gradient it already knows at the new params (in
batch mode reused, not recomputed) and whether its line search failed come
through the typed contract of :mod:`bpkit.optim.contract`.

Epochs run in ``lax.while_loop`` and batches in ``lax.scan``: no Python loop
over steps and no host sync until the end.  The history is recorded inside
the compiled program, per epoch: training loss, norm of the true gradient
(jax.grad, whatever the source), loss-only and gradient evaluations so far
in full-data equivalents (a batch of B examples counts B/N; cu = loss_evals +
3 grad_evals), the integer count of outputs wrong by 40-20-40 and, given a
validation set, its loss.

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

import contextlib
import math
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bpkit import _validate
from bpkit import losses as losses_
from bpkit import optim, stopping
from bpkit.gradients import check_targets, objective
from bpkit.network import MLP, Params
from bpkit.optim import contract

Array = jax.Array


def x64_mode(dtype: Any) -> contextlib.AbstractContextManager:
    """The JAX 64-bit mode a run in ``dtype`` is traced and run under, whatever the process's.

    A float64 run needs the mode on (its callers check it); anything narrower runs with it
    off, so a float32 run is one program with the same numbers, bitwise, whether or not the
    process enabled 64-bit mode.  Without this, optax's zoom line search (CG, L-BFGS), whose
    interval ends and interpolation scalars start as Python floats (``jnp.asarray(0.0)``),
    interpolated in float64 under 64-bit mode and in float32 without: other last bits,
    which chaotic runs amplify into other epochs and stop reasons.

    Example:
        >>> with x64_mode("float32"):
        ...     jnp.asarray(0.0).dtype
        dtype('float32')
    """
    return contextlib.nullcontext() if jnp.dtype(dtype) == jnp.float64 else jax.enable_x64(False)


class History(NamedTuple):
    """Per-epoch records, length ``max_epochs``; entries past the stop are NaN (``wrong``: -1)."""

    loss: Array
    grad_norm: Array
    val_loss: Array
    wrong: Array  # int32: outputs wrong by 40-20-40 (0: every output of every pattern right)
    loss_evals: Array  # loss-only evaluations so far, in full-data equivalents (1 cu each)
    grad_evals: Array  # gradient evaluations so far (each with its loss; 3 cu each)


def _blank(shape: tuple[int, ...], dt: Any) -> History:
    """A history of ``shape`` per field with nothing recorded yet: NaN (``wrong``: -1)."""
    nan = jnp.full(shape, jnp.nan, dt)
    return History(nan, nan, nan, jnp.full(shape, -1, jnp.int32), nan, nan)


def _write(h: History, i: Array, values: tuple) -> History:
    """``h`` with entry ``i`` of each field set to ``values`` (an ``i`` past the end writes nothing)."""
    return History(*(a.at[i].set(jnp.asarray(v).astype(a.dtype), mode="drop") for a, v in zip(h, values)))


class TrainResult(NamedTuple):
    params: Params  # after the last epoch
    best_params: Params  # with the best validation loss (the last params without validation)
    history: History
    epochs: Array  # epochs run
    stop_reason: Array  # a stopping.REASONS index
    initial_loss: Array
    checkpoints: Params | None = None  # params at each checkpoint epoch, stacked (see make_trainer)
    met: Array | None = None  # int32 (2,): 1-based epoch the loss goal, 40-20-40 first held; 0: never (or off)
    within: History | None = None  # measures_per_epoch > 1: the records within epochs, (max_epochs, m) each

    @property
    def reason(self) -> str:
        return stopping.reason_name(self.stop_reason)

    @property
    def final_loss(self) -> Array:
        """The training loss after the last epoch (one per run for stacked results)."""
        last = jnp.maximum(jnp.asarray(self.epochs) - 1, 0)
        return jnp.take_along_axis(self.history.loss, last[..., None], axis=-1)[..., 0]


class _Loop(NamedTuple):
    """The state of the epoch loop."""

    params: Params
    opt_state: Any
    key: Array
    epoch: Array  # epochs done
    evals: Array  # (loss-only, gradient) evaluations so far, full-data equivalents
    history: History
    best_val: Array
    best_params: Params | None  # None without a validation set (the result's are then the last params)
    since_best: Array  # epochs since the best validation loss
    unchanged: Array  # epochs in a row without a change of the params
    measured: tuple  # (loss, gradient) at params, from the epoch-end measurement
    reason: Array
    checkpoints: Params | None  # params stacked per checkpoint epoch
    met: Array  # int32 (2,): epoch the goal and 40-20-40 first held (0: not yet)
    initial_loss: Array
    within: History | None = None  # measures_per_epoch > 1: (max_epochs, m) records per field


class Trainer(NamedTuple):
    """A training run in named pieces (:func:`trainer_parts`); every piece is pure.

    ``start(params, x, y, key, x_val, y_val) -> state``: the loop state before the first epoch;
    ``advance(state, x, y, x_val, y_val) -> state``: one epoch, or the state unchanged once the
    run has stopped (so many runs can share one loop: :func:`train_lanes`);
    ``finish(state) -> TrainResult``.
    """

    start: Callable[..., _Loop]
    advance: Callable[..., _Loop]
    finish: Callable[[_Loop], TrainResult]


def make_trainer(net: MLP, optimizer: optax.GradientTransformation, **options: Any) -> Callable[..., TrainResult]:
    """The pure training function ``run(params, x, y, key, x_val=None, y_val=None)``:
    :func:`trainer_parts` ``(net, optimizer, **options)`` in one ``lax.while_loop`` (:func:`run_trainer`)."""
    parts = trainer_parts(net, optimizer, **options)

    def run(params, x, y, key, x_val=None, y_val=None) -> TrainResult:
        return run_trainer(parts, params, x, y, key, x_val, y_val)

    return run


def run_trainer(parts: Trainer, params: Params, x: Array, y: Array, key: Array,
                x_val: Array | None = None, y_val: Array | None = None) -> TrainResult:
    """One run of ``parts`` from ``params``: ``start``, ``advance`` while running, ``finish``."""
    state = parts.start(params, x, y, key, x_val, y_val)
    state = jax.lax.while_loop(lambda s: s.reason == stopping.RUNNING,
                               lambda s: parts.advance(s, x, y, x_val, y_val), state)
    return parts.finish(state)


def trainer_parts(
    net: MLP,
    optimizer: optax.GradientTransformation,
    *,
    loss: str = "mse",
    source: str = "autodiff",
    batch_size: int | None = None,
    shuffle: bool = True,
    rules: stopping.StopRules = stopping.StopRules(),
    checkpoints: tuple[int, ...] = (),
    measure_every: int = 1,
    measures_per_epoch: int = 1,
) -> Trainer:
    """The training run as a :class:`Trainer`: ``start``, ``advance`` (one epoch), ``finish``.

    Everything passed here is static (it shapes the compiled program); what
    ``run`` takes is data, so ``run`` can be jitted and vmapped over seeds.

    ``checkpoints`` are epoch counts (0: the initial params): the result's
    ``checkpoints`` holds the params after each, stacked along a new leading
    axis, from the same uninterrupted run (the optimizer state and the keys go
    on).  A run that stops before a checkpoint holds its final params there.

    ``measure_every = k``: in online and mini-batch mode, the epoch-end
    measurement (full-data loss, gradient norm, 40-20-40 count, validation
    loss) runs every k epochs and at the last; the history holds NaN (``wrong``
    -1) between, and the stop rules other than ``max_epochs`` are judged only
    on measured epochs.  In batch mode the measurement is the next step's
    gradient, so it runs every epoch whatever k.

    ``measures_per_epoch = m`` (online and mini-batch): the same measurement also
    runs within each epoch, after batch ``floor(j B / m)`` for ``j = 1..m-1`` of its
    ``B`` batches, for studies that need finer resolution than an epoch (online
    learning on redundant data reaches a goal within its first pass).  The result's
    ``within`` holds them: each :class:`History` field of shape ``(max_epochs, m)``,
    ``within.loss[e, j]`` the loss after ``floor((j + 1) B / m)`` batches of epoch
    ``e + 1`` (``[e, m - 1]`` is the epoch-end record, ``history.loss[e]``), its
    evaluation counts in full-data equivalents (``k`` of ``N`` examples count
    ``k / N``).  It records; it does not change the training (the history and the
    params are bitwise those of ``m = 1``) nor when the stop rules are judged (at
    epoch ends).  Each measurement costs a full-data loss and gradient.

    Example:
        >>> r = train(net, optax.sgd(0.1), params, x, y, key=key, batch_size=1,  # doctest: +SKIP
        ...           measures_per_epoch=10)
        >>> r.within.loss.reshape(-1)  # the loss every tenth of an epoch  # doctest: +SKIP
    """
    if not (isinstance(measure_every, int) and measure_every >= 1):
        raise ValueError(f"measure_every must be a positive integer, got {measure_every!r}")
    m = measures_per_epoch
    if not (isinstance(m, int) and not isinstance(m, bool) and m >= 1):
        raise ValueError(f"measures_per_epoch must be a positive integer, got {m!r}")
    if m > 1 and batch_size is None:
        raise ValueError("measures_per_epoch > 1 needs online or mini-batch training (a batch_size): "
                         "a batch epoch is one step, measured at its end")
    if m > 1 and measure_every != 1:
        raise ValueError(f"give measure_every (got {measure_every}) or measures_per_epoch (got {m}), not both")
    if any(not isinstance(c, int) or c < 0 for c in checkpoints) or list(checkpoints) != sorted(set(checkpoints)):
        raise ValueError(f"checkpoints must be increasing epoch counts >= 0, got {checkpoints!r}")
    f = objective(net, loss, source)
    value_and_grad = jax.value_and_grad(f)
    loss_obj = losses_.get(loss)

    def loss_and_outputs(p, x, y):
        out, cache = net.forward(p, x)
        return loss_obj.value(cache.zs[-1], out, y), out

    # The epoch-end measurement: true loss and gradient (jax.grad), and the outputs.
    measure_vg = jax.value_and_grad(loss_and_outputs, has_aux=True)
    optimizer = optax.with_extra_args_support(optimizer)
    # In batch mode the measurement at the end of one epoch is the loss and
    # gradient the next epoch's step needs: use it instead of recomputing.
    reuse_measurement = batch_size is None and source == "autodiff"

    def bind(params, x, y, x_val=None, y_val=None):
        """The measurement and the epoch for this data (``params`` fixes the dtype)."""
        n = x.shape[0]
        b = n if batch_size is None else batch_size
        full = b == n
        n_batches = math.ceil(n / b)
        pad = n_batches * b - n
        dt = jax.tree_util.tree_leaves(params)[0].dtype
        y = jnp.asarray(y, dt)
        lo, hi = jnp.min(y), jnp.max(y)
        mask = (jnp.arange(n_batches * b) < n).reshape(n_batches, b).astype(dt)
        # An optimizer whose state reports no evaluations (plain optax: SGD, RPROP, ...) costs
        # exactly the caller's gradient per batch; in full batch a known point may spare it.
        counts_itself = full or contract.reports(optimizer.init(params))
        sparse = measure_every > 1 and not full  # in batch mode the measurement is the next step's
        if m > n_batches:
            raise ValueError(f"measures_per_epoch = {m} is more than the {n_batches} batches of an epoch; "
                             f"use 1..{n_batches}")

        def batch_step(carry, batch, measured=None):
            params, opt_state, evals, failed = carry
            xb, yb, m = batch
            # Full batch: the data in their own order, weights 1/N, as loss_value has them.
            # Without padding, every batch is a plain mean (weights 1/b): no weights needed.
            wb = m / jnp.sum(m) if pad else None
            compute = (lambda p: measured) if reuse_measurement else (lambda p: value_and_grad(p, xb, yb, wb))
            # In full batch the optimizer may already know this point (a line search's last step): reuse it.
            known = contract.report(opt_state) if full else None
            if known is not None and known.grad is not None:
                fresh = ~known.known
                value, grads = jax.lax.cond(fresh, compute, lambda p: (known.value.astype(dt), known.grad), params)
            else:
                fresh, (value, grads) = jnp.asarray(True), compute(params)
            updates, opt_state = optimizer.update(
                grads, opt_state, params, value=value, grad=grads, value_fn=lambda p: f(p, xb, yb, wb)
            )
            params = optax.apply_updates(params, updates)
            if not counts_itself:  # one gradient per example: counted once per epoch, not per step
                return (params, opt_state, evals, failed), None
            own = contract.report(opt_state)
            frac = jnp.sum(m) / n
            evals = evals + frac * jnp.stack([own.value_evals, fresh.astype(jnp.int32) + own.grad_evals]).astype(dt)
            return (params, opt_state, evals, failed | own.failed), None

        def measure(p):
            (value, out), grads = measure_vg(p, x, y)
            gnorm = optax.tree.norm(grads)
            wrong = stopping.count_wrong_40_20_40(out, y, lo, hi)
            val = f(p, x_val, jnp.asarray(y_val, dt)) if x_val is not None else jnp.asarray(jnp.nan, dt)
            return (value, grads), gnorm, wrong, val

        def epoch(s: _Loop) -> _Loop:
            running = s.reason == stopping.RUNNING  # a stopped run comes back unchanged
            key, sub = jax.random.split(s.key)
            order = jax.random.permutation(sub, n) if (shuffle and not full) else jnp.arange(n)
            carry = (s.params, s.opt_state, s.evals, jnp.asarray(False))
            if full:  # the data in their own order; batch mode reuses the epoch-end measurement
                carry, _ = batch_step(carry, (x, y, mask[0]), s.measured if reuse_measurement else None)
            else:  # the epoch's order gathered once, then scanned batch by batch
                idx = jnp.concatenate([order, order[:pad]]).reshape(n_batches, b)
                if m == 1:
                    carry, _ = jax.lax.scan(batch_step, carry, (x[idx], y[idx], mask))
                else:
                    (carry, inner), _ = jax.lax.scan(measured_step, (carry, _blank((m,), dt)),
                                                     ((x[idx], y[idx], mask), slots, seen))
            new_params, opt_state, evals, failed = carry
            if not counts_itself:  # the batches of an epoch hold every example once: one gradient
                evals = evals + jnp.asarray([0, 1], dt)
            ep = s.epoch + 1
            if sparse:  # measured every k epochs and at the last: the others record NaN (wrong: -1)
                on = (ep % measure_every == 0) | (ep >= rules.max_epochs)
                nan_ = jnp.asarray(jnp.nan, dt)
                measured, gnorm, wrong, val = jax.lax.cond(
                    on, measure, lambda p: ((nan_, s.measured[1]), nan_, jnp.int32(-1), nan_), new_params)
            else:
                on, (measured, gnorm, wrong, val) = True, measure(new_params)
            value = measured[0]
            # The stall count is kept without the stall rule too: leaving it out changed how XLA fused
            # SCG's digits programs and so their last bits (measured).  The best params are only
            # tracked with a validation set (without one, the result's are the last params).
            same = jnp.all(jnp.stack([jnp.all(u == v) for u, v in zip(
                jax.tree_util.tree_leaves(new_params), jax.tree_util.tree_leaves(s.params))]))
            unchanged = jnp.where(same, s.unchanged + 1, 0)
            better = val < s.best_val if x_val is not None else jnp.asarray(True)
            best_params = None if s.best_params is None else jax.tree_util.tree_map(
                lambda a, c: jnp.where(better, a, c), new_params, s.best_params)
            since_best = jnp.where(better, 0, s.since_best + 1)
            # Written entry by entry (a stopped run's write falls past the end and is dropped), so
            # that the history never takes part in a select of the whole loop state (see train_lanes).
            i = jnp.where(running, jnp.minimum(s.epoch, rules.max_epochs - 1), rules.max_epochs)
            record = (value, gnorm, val, wrong, evals[0], evals[1])
            history = _write(s.history, i, record)
            within = s.within
            if m > 1:  # the epoch's last record is its end's; written entry by entry, like the history
                within = _write(s.within, i, _write(inner, m - 1, record))
            met = stopping.first_met(s.met, stopping.met_now(rules, value, wrong) & on, ep)
            reason = stopping.stop_reason(rules, ep, value, gnorm, wrong, since_best, unchanged, failed, met)
            reason = jnp.where(on, reason, stopping.RUNNING)  # rules are judged on measured epochs only
            new = _Loop(new_params, opt_state, key, ep, evals, history, jnp.where(better, val, s.best_val),
                        best_params, since_best, unchanged, measured, reason,
                        _keep(s.checkpoints, new_params, ep, running), met, s.initial_loss, within)
            small = lambda a, b: jnp.where(running, a, b)  # noqa: E731
            return new._replace(**{k: jax.tree_util.tree_map(small, getattr(new, k), getattr(s, k))
                                   for k in _Loop._fields if k not in ("history", "checkpoints", "within")})

        # measures_per_epoch = m: after batch floor(j B / m), j = 1..m-1, the measurement goes in
        # slot j - 1 of the epoch's records (slot -1: no measurement after this batch).
        if m > 1:
            after = np.arange(1, n_batches + 1)  # batches done
            slots = np.full(n_batches, -1, np.int32)
            slots[np.arange(1, m) * n_batches // m - 1] = np.arange(m - 1)
            seen = jnp.asarray(np.minimum(after * b, n) / n, dt)  # the epoch's examples seen so far

        def measured_step(carry, batch):
            (inner_carry, rec), (data, slot, frac) = carry, batch
            inner_carry, _ = batch_step(inner_carry, data)
            params, _, evals, _ = inner_carry

            def record(rec):
                (value, _), gnorm, wrong, val = measure(params)
                ev = evals if counts_itself else evals + jnp.stack([jnp.zeros((), dt), frac])
                return _write(rec, slot, (value, gnorm, val, wrong, ev[0], ev[1]))

            return (inner_carry, jax.lax.cond(slot >= 0, record, lambda r: r, rec)), None

        def _keep(stack, p, ep, running):
            """Write ``p`` into every checkpoint slot not yet passed (``ep <= checkpoint``)."""
            if stack is None:
                return None
            live = (jnp.asarray(checkpoints) >= ep) & running
            return jax.tree_util.tree_map(
                lambda buf, leaf: jnp.where(live.reshape((-1,) + (1,) * leaf.ndim), leaf[None], buf), stack, p)

        return measure, epoch

    def start(params, x, y, key, x_val=None, y_val=None) -> _Loop:
        measure, _ = bind(params, x, y, x_val, y_val)
        dt = jax.tree_util.tree_leaves(params)[0].dtype
        history = _blank((rules.max_epochs,), dt)
        measured = measure(params)[0]
        zero = jnp.zeros((), jnp.int32)
        return _Loop(
            params, optimizer.init(params), key, zero, jnp.zeros((2,), dt),
            history,
            jnp.asarray(jnp.inf, dt), None if x_val is None else params, zero, zero, measured,
            jnp.int32(stopping.RUNNING),
            jax.tree_util.tree_map(lambda a: jnp.stack([a] * len(checkpoints)), params) if checkpoints else None,
            jnp.zeros((2,), jnp.int32), measured[0],
            None if m == 1 else _blank((rules.max_epochs, m), dt),
        )

    def advance(s: _Loop, x, y, x_val=None, y_val=None) -> _Loop:
        return bind(s.params, x, y, x_val, y_val)[1](s)

    def finish(s: _Loop) -> TrainResult:
        best = s.params if s.best_params is None else s.best_params  # without validation: the last
        return TrainResult(s.params, best, s.history, s.epoch, s.reason, s.initial_loss,
                           s.checkpoints, s.met, s.within)

    return Trainer(start, advance, finish)


class _Recipe(NamedTuple):
    """A :func:`optim.make` optimizer without its continuous hyperparameters: the static
    part of the program; the rest (``optim.DATA_HYPERPARAMETERS``) comes in as data."""

    name: str
    static: tuple


def _split(optimizer: optax.GradientTransformation, dtype) -> tuple[Any, dict[str, Array] | None]:
    """``(static part, data part)`` of an optimizer: a recipe and its continuous hyperparameters
    when :func:`optim.make` built it, else the transform itself (hashed by identity) and None."""
    found = optim.spec(optimizer)
    if found is None:
        return optimizer, None
    name, hyper = found
    data = {k: jnp.asarray(v, dtype) for k, v in hyper.items()
            if k in optim.DATA_HYPERPARAMETERS and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return _Recipe(name, tuple(sorted((k, v) for k, v in hyper.items() if k not in data))), data


@partial(jax.jit, static_argnames=("net", "optimizer", "loss", "source", "batch_size", "shuffle", "rules",
                                   "checkpoints", "measure_every", "measures_per_epoch"))
def _train_jit(params, x, y, key, x_val, y_val, hyper, *, net, optimizer, loss, source, batch_size, shuffle, rules,
               checkpoints, measure_every, measures_per_epoch):
    if isinstance(optimizer, _Recipe):
        optimizer = optim.make(optimizer.name, **dict(optimizer.static), **hyper)
    run = make_trainer(
        net, optimizer, loss=loss, source=source, batch_size=batch_size, shuffle=shuffle, rules=rules,
        checkpoints=checkpoints, measure_every=measure_every, measures_per_epoch=measures_per_epoch,
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
    checkpoints: tuple[int, ...] = (),
    measure_every: int = 1,
    measures_per_epoch: int = 1,
) -> TrainResult:
    """Train ``net`` from ``params`` on ``(x, y)``; see the module docstring.

    ``checkpoints``: epochs at which to keep the params, in one uninterrupted
    run; ``result.checkpoints`` stacks them.  ``measure_every``: the epoch-end
    measurement every k epochs (online and mini-batch).  ``measures_per_epoch``:
    m measurements per epoch instead, in ``result.within`` (online and mini-batch).
    See :func:`trainer_parts`.

    Compiles once per (net, optimizer, loss, source, batch size, shuffle,
    rules) and data shapes.  An optimizer from :func:`bpkit.optim.make` counts
    by name and its discrete hyperparameters only: its learning rate, momentum
    and quickprop's mu are data, so ``make("sgd", learning_rate=0.5)`` then
    ``make("sgd", learning_rate=0.7)`` share one compiled program.  Any other
    optax transform is part of the program (hashed by identity): reuse the
    same object to reuse the program.

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
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    static, hyper = _split(optimizer, dtype)
    with x64_mode(dtype):
        return _train_jit(
            params, x, y, key, x_val, y_val, hyper, net=net, optimizer=static, loss=loss, source=source,
            batch_size=batch_size, shuffle=shuffle, rules=rules, checkpoints=tuple(checkpoints),
            measure_every=measure_every, measures_per_epoch=measures_per_epoch,
        )


def train_from_seed(
    net: MLP,
    optimizer: str,
    seed: Array,
    hyper: dict[str, Array],
    x: Array,
    y: Array,
    x_val: Array | None = None,
    y_val: Array | None = None,
    **lane: Any,
) -> TrainResult:
    """One run from a seed, pure: the seed's key splits into the init key and the training key.

    ``optimizer`` is a :func:`bpkit.optim.make` name; ``hyper`` its continuous
    hyperparameters (data, may be traced); ``lane`` goes to :func:`seed_lane`
    (``static_hyper``, the init, the dtype, and the options of :func:`make_trainer`).
    Every vmapped sweep in bpkit is this function under ``jax.vmap``
    (:func:`train_many`, the sweep's programs).
    """
    run = seed_lane(net, optimizer, seed, hyper, **lane)
    return run_trainer(run.trainer, run.params, x, y, run.key, x_val, y_val)


class Lane(NamedTuple):
    """One run of many: its trainer, initial params and training key."""

    trainer: Trainer
    params: Params
    key: Array


def seed_lane(
    net: MLP,
    optimizer: str,
    seed: Array,
    hyper: dict[str, Array],
    *,
    static_hyper: tuple[tuple[str, Any], ...] = (),
    init: str = "lecun_normal",
    init_scale: Array | float = 1.0,
    init_bias: Array | float = 0.0,
    dtype: Any = jnp.float32,
    **trainer: Any,
) -> Lane:
    """:func:`train_from_seed`'s run before it starts: the seed's key splits into the init key and
    the training key; the optimizer is :func:`bpkit.optim.make` ``(optimizer, **static_hyper, **hyper)``."""
    kinit, ktrain = jax.random.split(jax.random.key(seed))
    params = net.init(kinit, scheme=init, scale=init_scale, dtype=dtype, bias=init_bias)
    tx = optim.make(optimizer, **dict(static_hyper), **hyper)
    return Lane(trainer_parts(net, tx, **trainer), params, ktrain)


def _lane_steps(make_lane, x, y, x_val, y_val):
    """The start, advance and finish of the run a lane's columns ``*a`` define (for vmapping)."""

    def start(*a):
        lane = make_lane(*a)
        return lane.trainer.start(lane.params, x, y, lane.key, x_val, y_val)

    def advance(state, *a):
        return make_lane(*a).trainer.advance(state, x, y, x_val, y_val)

    def finish(state, *a):
        return make_lane(*a).trainer.finish(state)

    return start, advance, finish


def train_lanes(
    make_lane: Callable[..., Lane],
    lanes: tuple,
    x: Array,
    y: Array,
    x_val: Array | None = None,
    y_val: Array | None = None,
) -> TrainResult:
    """Many runs in one loop: run ``i`` is ``make_lane(*(a[i] for a in lanes))``; returns the stacked results.

    The same numbers as ``jax.vmap`` of single runs, which is what every sweep is; but
    ``jax.vmap`` of a ``while_loop`` whose runs stop at different epochs selects the whole loop
    state between the stepped and the kept value at every epoch, history included, so an epoch
    cost grew with the budget (two spirals, 64 runs x 30,000 epochs: a 46 MB copy per epoch).
    Here one ``while_loop`` runs while any run is running and steps every run with
    ``jax.vmap(advance)``; a stopped run's :meth:`Trainer.advance` returns it unchanged,
    writing its history entry by entry, so nothing of the size of the history is copied.
    """

    start, advance, finish = _lane_steps(make_lane, x, y, x_val, y_val)
    state = jax.vmap(start)(*lanes)
    state = jax.lax.while_loop(lambda s: jnp.any(s.reason == stopping.RUNNING),
                               lambda s: jax.vmap(advance)(s, *lanes), state)
    return jax.vmap(finish)(state, *lanes)


IDLE = -1  # the stop reason of a lane of train_queue that holds no run (never RUNNING)


def train_queue(
    make_lane: Callable[..., Lane],
    runs: tuple,
    count: Array | int,
    lanes: int,
    x: Array,
    y: Array,
    x_val: Array | None = None,
    y_val: Array | None = None,
) -> TrainResult:
    """Runs ``0..count-1`` of ``runs`` (columns, each of length Q) through ``lanes`` lanes: a queue.

    :func:`train_lanes` steps every lane until the slowest run stops, so a chunk costs
    ``lanes x`` its longest run, however short the others.  Here a lane whose run has
    stopped hands its result over and takes the next run of the queue at once, so the
    loop costs about ``sum(epochs) / lanes`` plus the last, longest runs.  Every epoch is
    ``jax.vmap(advance)`` at width ``lanes``.  On CPU, run ``i``'s numbers are bitwise the
    same whichever lane it ran in and whichever runs ran beside it (tested); against
    :func:`train_lanes`, another compiled program, they may differ in the last bits, which
    chaotic runs (CG on parity) amplify: the tests check equal epochs and stop reasons on XOR.

    ``count`` may be traced (data), so a queue padded to Q runs reuses one program; entries
    from ``count`` on never run: their rows hold zeros (0 epochs) and a blank history.  Lanes
    take runs in order: every lane starts idle, and each iteration the idle lanes take the next
    runs, then every lane steps, then the stopped lanes hand in their results and go idle.
    Every run starts in that one hand-over, so the start is compiled once (starting the first
    ``lanes`` runs before the loop as well made the compiled CG and L-BFGS programs 21% larger
    and their compile about 15% slower, with the same numbers).

    Example:
        >>> r = train_queue(lane, (seeds, rates), count=80, lanes=64, x=x, y=y)  # doctest: +SKIP
    """
    q = jax.tree_util.tree_leaves(runs)[0].shape[0]

    def at(slot):  # the columns of the runs the lanes hold (an idle lane, slot q: any run's)
        return jax.tree_util.tree_map(lambda c: jnp.take(c, slot, axis=0, mode="clip"), runs)

    start, advance, finish = _lane_steps(make_lane, x, y, x_val, y_val)

    def begin(slot, held):  # fresh states for the runs in ``slot``; lanes not ``held`` are idle
        state = jax.vmap(start)(*at(slot))
        return state._replace(reason=jnp.where(held, state.reason, IDLE))

    def hand_over(lane, slot, taken):
        # The idle lanes take the next runs, in lane order.  A lane's history is left as it is
        # (the big part of the state, kept out of the branch): its new run writes entry by
        # entry from 0, and the entries past a run's last epoch are blanked once, at the end.
        # Every run starts here, the first ``lanes`` too, so the start is compiled once.
        free = lane.reason == IDLE
        nxt = taken + jnp.cumsum(free, dtype=jnp.int32) - 1
        held = free & (nxt < count)
        slot = jnp.where(held, nxt, slot)
        fresh = begin(slot, held)._replace(history=None)
        lane = jax.tree_util.tree_map(
            lambda a, b: jnp.where(held.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), fresh, lane)
        return lane, slot, taken + jnp.sum(held, dtype=jnp.int32)

    def store(lane, history, slot, done, out):  # the stopped lanes' results; the lanes go idle
        result = jax.vmap(finish)(lane._replace(history=history), *at(slot))
        out = jax.tree_util.tree_map(lambda o, v: o.at[jnp.where(done, slot, q)].set(v, mode="drop"), out, result)
        return lane._replace(reason=jnp.where(done, IDLE, lane.reason)), jnp.where(done, q, slot), out

    def body(carry):
        state, slot, taken, out = carry
        history = state.history
        state, slot, taken = jax.lax.cond(jnp.any(state.reason == IDLE) & (taken < count), hand_over,
                                          lambda l, s, t: (l, s, t), state._replace(history=None), slot, taken)
        state = jax.vmap(advance)(state._replace(history=history), *at(slot))
        done = (state.reason != stopping.RUNNING) & (slot < q)
        lane, slot, out = jax.lax.cond(jnp.any(done), store, lambda l, h, s, d, o: (l, s, o),
                                       state._replace(history=None), state.history, slot, done, out)
        return lane._replace(history=state.history), slot, taken, out

    slot = jnp.full((lanes,), q, jnp.int32)
    shapes = jax.eval_shape(lambda sl: begin(sl, sl < q), slot)
    state = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    state = state._replace(reason=jnp.full((lanes,), IDLE, state.reason.dtype))
    shapes = jax.eval_shape(lambda s, sl: jax.vmap(finish)(s, *at(sl)), state, slot)
    out = jax.tree_util.tree_map(lambda a: jnp.zeros((q,) + a.shape[1:], a.dtype), shapes)
    count = jnp.asarray(count, jnp.int32)
    carry = (state, slot, jnp.zeros((), jnp.int32), out)
    out = jax.lax.while_loop(lambda c: (c[2] < count) | jnp.any(c[1] < q), body, carry)[3]
    past = jnp.arange(out.history.loss.shape[-1])[None, :] >= out.epochs[:, None]  # entries past each stop
    return out._replace(history=History(*(jnp.where(past, -1 if h.dtype == jnp.int32 else jnp.nan, h).astype(h.dtype)
                                          for h in out.history)))


def train_many(
    net: MLP,
    optimizer: str,
    seeds: Any,
    x: Array,
    y: Array,
    x_val: Array | None = None,
    y_val: Array | None = None,
    *,
    hyper: dict[str, Any] | None = None,
    init_scale: Any = 1.0,
    dtype: Any = jnp.float32,
    **kwargs: Any,
) -> TrainResult:
    """Many runs in one compiled, vmapped program: run ``i`` is ``seeds[i]`` with
    ``hyper[k][i]`` (and ``init_scale[i]`` if a sequence); returns the stacked results.

    Example:
        >>> r = train_many(net, "sgd", [0, 1, 2], x, y, hyper={"learning_rate": [0.5, 0.5, 1.0]})  # doctest: +SKIP
    """
    dt = jnp.dtype(dtype)
    with x64_mode(dt):
        seeds = jnp.asarray(seeds, jnp.uint32)
        cols = {k: jnp.broadcast_to(jnp.asarray(v, dt), seeds.shape) for k, v in (hyper or {}).items()}
        scales = jnp.broadcast_to(jnp.asarray(init_scale, dt), seeds.shape)
        x, y = jnp.asarray(x, dt), jnp.asarray(y, dt)
        xv = None if x_val is None else jnp.asarray(x_val, dt)
        yv = None if y_val is None else jnp.asarray(y_val, dt)
        return _train_many_jit(seeds, cols, scales, x, y, xv, yv, net=net, optimizer=optimizer, dtype=dt,
                               kwargs=tuple(sorted(kwargs.items())))


@partial(jax.jit, static_argnames=("net", "optimizer", "dtype", "kwargs"))
def _train_many_jit(seeds, cols, scales, x, y, xv, yv, *, net, optimizer, dtype, kwargs):
    def lane(seed, hyper, scale):
        return seed_lane(net, optimizer, seed, hyper, init_scale=scale, dtype=dtype, **dict(kwargs))

    return train_lanes(lane, (seeds, cols, scales), x, y, xv, yv)
