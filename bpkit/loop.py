"""The training loop of one run: its state, and the named steps of an epoch.

Online, mini-batch and batch learning are this one loop with a batch size:
``batch_size=1`` is online, ``None`` (or N) is batch.  An epoch

1. draws the order of the examples from the key (``shuffle=True``) or keeps it
   fixed (FANN's incremental mode) and cuts it into batches (:func:`epoch`);
2. takes one optimizer update per batch (:func:`batch_step`), a last, partial
   batch padded with zero-weight examples so that it averages over its real ones;
3. measures the run on all the data (:func:`measure`): training loss, norm of the
   true gradient (jax.grad, whatever the gradient source), the integer count of
   outputs wrong by 40-20-40 and, given a validation set, its loss;
4. records that measurement and judges the stop rules (:func:`record`).

The state (:class:`TrainState`) is built by keyword from small typed records and
passed in and out, as flax's ``train_step`` does; every step is a pure function of
``(plan, data, state)``, where the :class:`Plan` holds what shapes the compiled
program.  :func:`trainer_parts` packs them as ``start``, ``advance`` (one epoch) and
``finish``: :func:`run_trainer` runs one run in a ``lax.while_loop``, and
:mod:`bpkit.lanes` steps many runs side by side.

Evaluations are counted in full-data equivalents (a batch of B of N examples
counts B/N): ``cu = loss_evals + 3 grad_evals`` (Moeller's complexity units).
What an update cost, the loss and gradient it already knows at its new params
(in batch mode reused, not recomputed) and whether its line search failed reach
the loop through the typed contract of :mod:`bpkit.optim.contract`.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from bpkit import MLP
    >>> net = MLP((2, 2, 1), hidden="tanh", output="sigmoid")
    >>> x = jnp.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = jnp.array([[0.], [1.], [1.], [0.]])
    >>> run = make_trainer(net, optax.sgd(0.5), batch_size=1, rules=stopping.StopRules(max_epochs=50))
    >>> int(jax.jit(run)(net.init(jax.random.key(0)), x, y, jax.random.key(1)).epochs)
    50
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bpkit import losses as losses_
from bpkit import stopping
from bpkit.gradients import measure_with_rule, objective
from bpkit.network import MLP, Params
from bpkit.optim import contract

Array = jax.Array


def x64_mode(dtype: Any) -> contextlib.AbstractContextManager:
    """The JAX 64-bit mode a run in ``dtype`` is traced and run under, whatever the process's.

    A float64 run needs the mode on (its callers check it); anything narrower runs with it
    off, so a float32 run is one program with the same numbers, bitwise, whether or not the
    process enabled 64-bit mode (optax's zoom line search starts its interpolation scalars as
    Python floats, which 64-bit mode would make float64).

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
    wrong: Array  # int32: outputs wrong by 40-20-40, or bit fails (0: every output of every pattern right)
    loss_evals: Array  # loss-only evaluations so far, in full-data equivalents (1 cu each)
    grad_evals: Array  # gradient evaluations so far (each with its loss; 3 cu each)


def blank(shape: tuple[int, ...], dt: Any) -> History:
    """A history of ``shape`` per field with nothing recorded yet: NaN (``wrong``: -1)."""
    nan = jnp.full(shape, jnp.nan, dt)
    return History(nan, nan, nan, jnp.full(shape, -1, jnp.int32), nan, nan)


def write(h: History, i: Array | int, values: tuple) -> History:
    """``h`` with entry ``i`` of each field set to ``values`` (an ``i`` past the end writes nothing)."""
    return History(*(a.at[i].set(jnp.asarray(v).astype(a.dtype), mode="drop") for a, v in zip(h, values, strict=True)))


class TrainResult(NamedTuple):
    params: Params  # after the last epoch
    best_params: Params  # with the best validation loss (the last params without validation)
    history: History
    epochs: Array  # epochs run
    stop_reason: Array  # a stopping.REASONS index
    initial_loss: Array
    checkpoints: Params | None = None  # params at each checkpoint epoch, stacked (see Options)
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


class Point(NamedTuple):
    """The loss and its gradient at some params."""

    value: Array
    grad: Params


class Best(NamedTuple):
    """The best validation loss so far, its params (None without a validation set: the result's are
    then the last params) and the epochs since it."""

    loss: Array
    params: Params | None
    since: Array


class TrainState(NamedTuple):
    """The state of one run between epochs.

    ``reason`` is the stop code (:data:`bpkit.stopping.RUNNING` while it runs); ``history``
    and ``within`` are its per-epoch records, the only parts whose size grows with the
    budget (a caller that moves states through branches may set them aside: :mod:`bpkit.lanes`).
    """

    params: Params
    opt_state: Any
    key: Array
    epoch: Array  # epochs done
    evals: Array  # (loss-only, gradient) evaluations so far, full-data equivalents
    history: History
    best: Best
    unchanged: Array  # epochs in a row without a change of the params
    measured: Point  # from the last epoch-end measurement
    reason: Array
    checkpoints: Params | None  # params stacked per checkpoint epoch
    met: Array  # int32 (2,): epoch the goal and 40-20-40 first held (0: not yet)
    initial_loss: Array
    within: History | None = None  # measures_per_epoch > 1: (max_epochs, m) records per field


@dataclasses.dataclass(frozen=True)
class Options:
    """What shapes a training run besides the net and the optimizer (static: part of the program).

    ``checkpoints``: epoch counts (0: the initial params) at which the result keeps the params,
    from one uninterrupted run; a run that stops before a checkpoint holds its final params there.

    ``measure_every = k`` (online and mini-batch): the epoch-end measurement every k epochs and at
    the last; the history holds NaN (``wrong`` -1) between, and the stop rules other than
    ``max_epochs`` are judged on measured epochs only.  In batch mode the measurement is the next
    step's gradient, so it runs every epoch whatever k.

    ``measures_per_epoch = m`` (online and mini-batch): the measurement also runs after batch
    ``floor(j B / m)``, ``j = 1..m-1``, of an epoch's ``B`` batches, into ``TrainResult.within``
    (``within.loss[e, j]``: after ``floor((j + 1) B / m)`` batches of epoch ``e + 1``;
    ``[e, m - 1]`` is the epoch-end record).  It records only: params, history and stops
    are bitwise those of ``m = 1``.  A record within an epoch is a forward pass over the data:
    its ``grad_norm`` is NaN (the epoch-end record's is measured).

    ``grad_norm = False``: the measurements leave out the true gradient and record its norm as
    NaN; not with the ``min_grad_norm`` rule.  Online and mini-batch then measure with a forward
    pass over the data instead of a forward and a backward one; batch mode with a hand-written
    ``source`` with the rule's backward pass alone (the next step's gradient), not jax.grad's too.
    Batch mode with ``autodiff`` measures the gradient whatever this says (it is the next step's,
    its norm free), so there it is refused.

    ``replicas = r`` (online and mini-batch): an epoch presents every example ``r`` times, in one
    order drawn over all ``r N`` places: training on ``r`` stacked copies of the data (LeCun et
    al. 1998, section 4.1's redundant training set) without storing them.  The measurements are on
    the data itself (the copies' mean loss is the same number, summed in another order), so a
    measurement costs what it costs at ``r = 1``; an epoch counts ``r`` gradients.
    """

    loss: str = "mse"
    source: str = "autodiff"
    batch_size: int | None = None
    shuffle: bool = True
    rules: stopping.StopRules = stopping.StopRules()
    checkpoints: tuple[int, ...] = ()
    measure_every: int = 1
    measures_per_epoch: int = 1
    replicas: int = 1
    grad_norm: bool = True

    def __post_init__(self) -> None:
        every, m, r = self.measure_every, self.measures_per_epoch, self.replicas
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"measure_every must be a positive integer, got {every!r}")
        if not (isinstance(m, int) and not isinstance(m, bool) and m >= 1):
            raise ValueError(f"measures_per_epoch must be a positive integer, got {m!r}")
        if m > 1 and self.batch_size is None:
            raise ValueError("measures_per_epoch > 1 needs online or mini-batch training (a batch_size): "
                             "a batch epoch is one step, measured at its end")
        if not (isinstance(r, int) and not isinstance(r, bool) and r >= 1):
            raise ValueError(f"replicas must be a positive integer, got {r!r}")
        if r > 1 and self.batch_size is None:
            raise ValueError("replicas > 1 needs online or mini-batch training (a batch_size): a batch epoch "
                             "over copies of the data is a batch epoch over the data")
        if not self.grad_norm and self.batch_size is None and self.source == "autodiff":
            raise ValueError("grad_norm=False needs online or mini-batch training (a batch_size) or a hand-written "
                             "gradient source: a batch epoch with autodiff measures the gradient, its next step's")
        if not self.grad_norm and self.rules.min_grad_norm is not None:
            raise ValueError("the min_grad_norm rule needs the gradient norm measured: grad_norm=True")
        if m > 1 and every != 1:
            raise ValueError(f"give measure_every (got {every}) or measures_per_epoch (got {m}), not both")
        cps = self.checkpoints
        if any(not isinstance(c, int) or c < 0 for c in cps) or list(cps) != sorted(set(cps)):
            raise ValueError(f"checkpoints must be increasing epoch counts >= 0, got {cps!r}")


class Plan(NamedTuple):
    """The static plan of a run's epoch: the options bound to a net, an optimizer and a data shape."""

    options: Options
    optimizer: optax.GradientTransformationExtraArgs
    f: Callable  # the objective whose gradient trains: f(params, x, y, weights)
    measure_vg: Callable  # the epoch-end measurement: (loss, outputs, the step's gradient, the true norm)
    measure_v: Callable  # a measurement within an epoch: loss and outputs (no gradient)
    n: int  # training examples
    b: int  # batch size (n in batch mode)
    n_batches: int
    pad: int  # zero-weight examples padding the last batch
    dt: Any
    counts_itself: bool  # the optimizer reports its evaluations (else one gradient per batch)
    slots: np.ndarray | None  # measures_per_epoch > 1: record slot after each batch (-1: none)
    seen: Array | None  # ... and the passes over the examples made after each batch of the epoch

    @property
    def full(self) -> bool:
        return self.b == self.n

    @property
    def reuse(self) -> bool:
        """Batch mode: the epoch-end measurement is the next step's loss and gradient (the source's)."""
        return self.options.batch_size is None

    @property
    def gradient(self) -> bool:
        """Whether a measurement includes the gradient: always in batch mode (the next step's)."""
        return self.options.grad_norm or self.full

    @property
    def sparse(self) -> bool:
        """Measured every k > 1 epochs (in batch mode the measurement is the next step's)."""
        return self.options.measure_every > 1 and not self.full


class Data(NamedTuple):
    """A run's data as the steps read them."""

    x: Array
    y: Array
    mask: Array  # (n_batches, b): 1 for a real example, 0 for padding
    lo: Array  # the targets' range, for 40-20-40
    hi: Array
    x_val: Array | None
    y_val: Array | None


class Measurement(NamedTuple):
    """The epoch-end measurement on all the data."""

    point: Point  # loss and jax.grad
    grad_norm: Array
    wrong: Array  # outputs wrong by 40-20-40 (int32)
    val_loss: Array  # NaN without a validation set


def bind(net: MLP, optimizer: optax.GradientTransformationExtraArgs, options: Options, params: Params,
         x: Array, y: Array, x_val: Array | None = None, y_val: Array | None = None) -> tuple[Plan, Data]:
    """The plan and the data of a run on ``(x, y)`` (``params`` fixes the dtype).

    Raises:
        ValueError: more measurements per epoch than batches; replicas with a batch of all the examples.
    """
    n, r = x.shape[0], options.replicas
    b = n if options.batch_size is None else options.batch_size
    if r > 1 and b >= n:
        raise ValueError(f"replicas > 1 needs a batch_size below the {n} examples, got {b}")
    n_batches = math.ceil(r * n / b)
    pad = n_batches * b - r * n
    dt = jax.tree_util.tree_leaves(params)[0].dtype
    y = jnp.asarray(y, dt)
    lo, hi = jnp.min(y), jnp.max(y)
    mask = (jnp.arange(n_batches * b) < r * n).reshape(n_batches, b).astype(dt)
    # An optimizer whose state reports no evaluations (plain optax: SGD, RPROP, ...) costs
    # exactly the caller's gradient per batch; in full batch a known point may spare it.
    counts_itself = b == n or contract.reports(optimizer.init(params))
    m = options.measures_per_epoch
    if m > n_batches:
        raise ValueError(f"measures_per_epoch = {m} is more than the {n_batches} batches of an epoch; "
                         f"use 1..{n_batches}")
    f = objective(net, options.loss, options.source)
    loss_obj = losses_.get(options.loss)

    def loss_and_outputs(p, x, y):
        out, cache = net.forward(p, x)
        return loss_obj.value(cache.zs[-1], out, y), out

    slots, seen = _record_slots(m, n_batches, b, n, r, dt)
    plan = Plan(options, optimizer, f, _measure_vg(net, options, loss_and_outputs), loss_and_outputs, n, b,
                n_batches, pad, dt, counts_itself, slots, seen)
    return plan, Data(x, y, mask, lo, hi, x_val, y_val)


def _measure_vg(net: MLP, options: Options, loss_and_outputs: Callable) -> Callable:
    """The epoch-end measurement ``(p, x, y) -> (loss, outputs, gradient, norm)``: jax.grad's gradient
    and its norm; in batch mode with a hand-written source the rule's gradient (the next step's) from
    the same forward pass, the norm jax.grad's (NaN with ``grad_norm=False``)."""
    if options.batch_size is None and options.source != "autodiff":
        def by_rule(p, x, y):
            value, out, grads, true = measure_with_rule(net, p, x, y, options.loss, options.source, options.grad_norm)
            return value, out, grads, jnp.full((), jnp.nan, value.dtype) if true is None else optax.tree.norm(true)

        return by_rule
    vg = jax.value_and_grad(loss_and_outputs, has_aux=True)

    def by_autodiff(p, x, y):
        (value, out), grads = vg(p, x, y)
        return value, out, grads, optax.tree.norm(grads)

    return by_autodiff


def _record_slots(m: int, n_batches: int, b: int, n: int, r: int, dt: Any) -> tuple[np.ndarray | None, Array | None]:
    """With ``m`` measurements per epoch: after batch ``floor(j B / m)``, ``j = 1..m-1``, the
    measurement goes in slot ``j - 1`` (slot -1: none after this batch); and the passes over the
    ``n`` examples made after each batch (of the epoch's ``r`` passes)."""
    if m == 1:
        return None, None
    after = np.arange(1, n_batches + 1)  # batches done
    slots = np.full(n_batches, -1, np.int32)
    slots[np.arange(1, m) * n_batches // m - 1] = np.arange(m - 1)
    return slots, jnp.asarray(np.minimum(after * b, r * n) / n, dt)


def batch_step(plan: Plan, carry: tuple, batch: tuple, measured: Point | None = None) -> tuple[tuple, None]:
    """One optimizer update on one batch: ``carry = (params, opt_state, evals, failed)``.

    ``measured``: the loss and gradient at ``params`` when already known (batch mode).
    """
    params, opt_state, evals, failed = carry
    xb, yb, mb = batch
    dt = plan.dt
    # Full batch: the data in their own order, weights 1/N, as loss_value has them.
    # Without padding, every batch is a plain mean (weights 1/b): no weights needed.
    wb = mb / jnp.sum(mb) if plan.pad else None
    if plan.reuse:
        assert measured is not None  # batch mode hands in the epoch-end measurement
        compute = lambda p: (measured.value, measured.grad)
    else:
        compute = lambda p: jax.value_and_grad(plan.f)(p, xb, yb, wb)
    # In full batch the optimizer may already know this point (a line search's last step): reuse it.
    known = contract.report(opt_state) if plan.full else None
    if known is not None and known.grad is not None:
        fresh = ~known.known
        value, grads = jax.lax.cond(fresh, compute, lambda p: (known.value.astype(dt), known.grad), params)
    else:
        fresh, (value, grads) = jnp.asarray(True), compute(params)
    updates, opt_state = plan.optimizer.update(
        grads, opt_state, params, value=value, grad=grads, value_fn=lambda p: plan.f(p, xb, yb, wb)
    )
    params = optax.apply_updates(params, updates)
    if not plan.counts_itself:  # one gradient per example: counted once per epoch, not per step
        return (params, opt_state, evals, failed), None
    own = contract.report(opt_state)
    frac = jnp.sum(mb) / plan.n
    evals = evals + frac * jnp.stack([own.value_evals, fresh.astype(jnp.int32) + own.grad_evals]).astype(dt)
    return (params, opt_state, evals, failed | own.failed), None


def measure(plan: Plan, data: Data, params: Params, gradient: bool = True) -> Measurement:
    """The run measured on all the data at ``params`` (:class:`Measurement`); ``gradient=False``
    (the records within an epoch) leaves out the gradient, a third of the cost: its point's
    gradient is None and its norm NaN.  In batch mode with a hand-written source the point's
    gradient is the rule's (the next step's) and the norm jax.grad's, from the same forward pass
    (NaN with ``grad_norm=False``)."""
    if gradient:
        value, out, grads, gnorm = plan.measure_vg(params, data.x, data.y)
    else:
        (value, out), grads, gnorm = plan.measure_v(params, data.x, data.y), None, jnp.asarray(jnp.nan, plan.dt)
    wrong = stopping.count_wrong(plan.options.rules, out, data.y, data.lo, data.hi)
    if data.x_val is not None:
        val = plan.f(params, data.x_val, jnp.asarray(data.y_val, plan.dt))
    else:
        val = jnp.asarray(jnp.nan, plan.dt)
    return Measurement(Point(value, grads), gnorm, wrong, val)


def _measured_step(plan: Plan, data: Data, carry: tuple, batch: tuple) -> tuple[tuple, None]:
    """:func:`batch_step`, then the measurement into the epoch's records where a slot says so."""
    (inner_carry, rec), (xs, slot, frac) = carry, batch
    inner_carry, _ = batch_step(plan, inner_carry, xs)
    params, _, evals, _ = inner_carry

    def record_here(rec):
        (value, _), gnorm, wrong, val = measure(plan, data, params, gradient=False)
        ev = evals if plan.counts_itself else evals + jnp.stack([jnp.zeros((), plan.dt), frac])
        return write(rec, slot, (value, gnorm, val, wrong, ev[0], ev[1]))

    return (inner_carry, jax.lax.cond(slot >= 0, record_here, lambda r: r, rec)), None


def _batches(plan: Plan, data: Data, s: TrainState, order: Array) -> tuple[tuple, History | None]:
    """Every update of an epoch over the examples in ``order``: the carry after the last, and
    the records within the epoch (``measures_per_epoch > 1``; else None)."""
    carry = (s.params, s.opt_state, s.evals, jnp.asarray(False))
    if plan.full:  # the data in their own order; batch mode reuses the epoch-end measurement
        return batch_step(plan, carry, (data.x, data.y, data.mask[0]), s.measured if plan.reuse else None)[0], None
    idx = jnp.concatenate([order, order[:plan.pad]]).reshape(plan.n_batches, plan.b)  # gathered once, then scanned
    if plan.slots is None:
        step = lambda c, bt: batch_step(plan, c, bt)
        return jax.lax.scan(step, carry, (data.x[idx], data.y[idx], data.mask))[0], None
    records = blank((plan.options.measures_per_epoch,), plan.dt)
    step = lambda c, bt: _measured_step(plan, data, c, bt)
    (carry, inner), _ = jax.lax.scan(step, (carry, records), ((data.x[idx], data.y[idx], data.mask), plan.slots,
                                                              plan.seen))
    return carry, inner


def _measure_epoch(plan: Plan, data: Data, s: TrainState, params: Params, ep: Array) -> tuple[Any, Measurement]:
    """Whether epoch ``ep`` is measured, and its measurement (NaN and -1 where it is not)."""
    if not plan.sparse:
        return True, measure(plan, data, params, plan.gradient)
    rules = plan.options.rules
    on = (ep % plan.options.measure_every == 0) | (ep >= rules.max_epochs)
    nan_ = jnp.asarray(jnp.nan, plan.dt)
    skipped = lambda p: Measurement(Point(nan_, s.measured[1]), nan_, jnp.int32(-1), nan_)
    return on, jax.lax.cond(on, lambda p: measure(plan, data, p, plan.gradient), skipped, params)


def epoch(plan: Plan, data: Data, s: TrainState) -> TrainState:
    """One epoch: shuffle, every update, the epoch-end measurement and its record.  A stopped run
    comes back unchanged (so many runs can share one loop: :mod:`bpkit.lanes`)."""
    running = s.reason == stopping.RUNNING
    key, sub = jax.random.split(s.key)
    r = plan.options.replicas
    order = jax.random.permutation(sub, r * plan.n) if (plan.options.shuffle and not plan.full) else jnp.arange(
        r * plan.n)
    if r > 1:  # place i of the r stacked copies holds example i mod n
        order = order % plan.n
    (params, opt_state, evals, failed), inner = _batches(plan, data, s, order)
    if not plan.counts_itself:  # the batches of an epoch hold every example r times: r gradients
        evals = evals + jnp.asarray([0, r], plan.dt)
    ep = s.epoch + 1
    on, measured = _measure_epoch(plan, data, s, params, ep)
    stepped = s._replace(params=params, opt_state=opt_state, key=key, epoch=ep, evals=evals)
    return record(plan, s, stepped, running, failed, on, measured, inner)


def record(plan: Plan, s: TrainState, new: TrainState, running: Array, failed: Array, on: Any,
           measured: Measurement, inner: History | None) -> TrainState:
    """State ``s`` after an epoch that ``new`` stepped: its measurement recorded, the best params,
    the stop rules judged (on measured epochs only); ``s`` itself where the run had stopped."""
    rules = plan.options.rules
    value, ep = measured.point.value, new.epoch
    # The stall count is kept without the stall rule too: leaving it out changed how XLA fused
    # SCG's programs and so their last bits.
    same = jnp.all(jnp.stack([jnp.all(u == v) for u, v in zip(
        jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(s.params), strict=True)]))
    unchanged = jnp.where(same, s.unchanged + 1, 0)
    better = measured.val_loss < s.best.loss if s.best.params is not None else jnp.asarray(True)
    best_params = None if s.best.params is None else jax.tree_util.tree_map(
        lambda a, c: jnp.where(better, a, c), new.params, s.best.params)
    since_best = jnp.where(better, 0, s.best.since + 1)
    # Written entry by entry (a stopped run's write falls past the end and is dropped), so that the
    # history never takes part in a select of the whole state (see bpkit.lanes.train_lanes).
    i = jnp.where(running, jnp.minimum(s.epoch, rules.max_epochs - 1), rules.max_epochs)
    entry = (value, measured.grad_norm, measured.val_loss, measured.wrong, new.evals[0], new.evals[1])
    history = write(s.history, i, entry)
    within = s.within
    if inner is not None and within is not None:  # the epoch's last record is its end's
        within = write(within, i, write(inner, plan.options.measures_per_epoch - 1, entry))
    met = stopping.first_met(s.met, stopping.met_now(rules, value, measured.wrong) & on, ep)
    cu = None if rules.max_cu is None else new.evals[0] + 3 * new.evals[1]
    reason = stopping.stop_reason(rules, ep, value, measured.grad_norm, measured.wrong, since_best, unchanged,
                                  failed, met, cu)
    reason = jnp.where(on, reason, stopping.RUNNING)  # rules are judged on measured epochs only
    best = Best(jnp.where(better, measured.val_loss, s.best.loss), best_params, since_best)
    new = new._replace(history=history, best=best, unchanged=unchanged, measured=measured.point, reason=reason,
                       checkpoints=_keep(plan, s.checkpoints, new.params, ep, running), met=met, within=within)
    return _hold(running, new, s)


def _keep(plan: Plan, stack: Params | None, p: Params, ep: Array, running: Array) -> Params | None:
    """Write ``p`` into every checkpoint slot not yet passed (``ep <= checkpoint``)."""
    if stack is None:
        return None
    live = (jnp.asarray(plan.options.checkpoints) >= ep) & running
    return jax.tree_util.tree_map(
        lambda buf, leaf: jnp.where(live.reshape((-1,) + (1,) * leaf.ndim), leaf[None], buf), stack, p)


def _hold(running: Array, new: TrainState, old: TrainState) -> TrainState:
    """``new`` where the run was running, else ``old``: the records and checkpoints need no select
    (a stopped run's writes fall past their ends)."""
    kept = ("history", "checkpoints", "within")
    small = lambda a, b: jnp.where(running, a, b)
    return new._replace(**{k: jax.tree_util.tree_map(small, getattr(new, k), getattr(old, k))
                           for k in TrainState._fields if k not in kept})


def start(plan: Plan, data: Data, params: Params, key: Array) -> TrainState:
    """The state before the first epoch: the initial measurement, nothing recorded yet."""
    rules, cps = plan.options.rules, plan.options.checkpoints
    history = blank((rules.max_epochs,), plan.dt)
    measured = measure(plan, data, params, plan.gradient).point
    zero = jnp.zeros((), jnp.int32)
    return TrainState(
        params=params, opt_state=plan.optimizer.init(params), key=key, epoch=zero,
        evals=jnp.zeros((2,), plan.dt), history=history,
        best=Best(jnp.asarray(jnp.inf, plan.dt), None if data.x_val is None else params, zero),
        unchanged=zero, measured=measured, reason=jnp.int32(stopping.RUNNING),
        checkpoints=jax.tree_util.tree_map(lambda a: jnp.stack([a] * len(cps)), params) if cps else None,
        met=jnp.zeros((2,), jnp.int32), initial_loss=measured[0],
        within=None if plan.options.measures_per_epoch == 1 else blank(
            (rules.max_epochs, plan.options.measures_per_epoch), plan.dt),
    )


def finish(s: TrainState) -> TrainResult:
    """The result of a finished run."""
    best = s.params if s.best.params is None else s.best.params  # without validation: the last
    return TrainResult(s.params, best, s.history, s.epoch, s.reason, s.initial_loss, s.checkpoints, s.met, s.within)


class Trainer(NamedTuple):
    """A training run in named pieces (:func:`trainer_parts`); every piece is pure.

    ``start(params, x, y, key, x_val, y_val) -> state``: the state before the first epoch;
    ``advance(state, x, y, x_val, y_val) -> state``: one epoch, or the state unchanged once the
    run has stopped; ``finish(state) -> TrainResult``.
    """

    start: Callable[..., TrainState]
    advance: Callable[..., TrainState]
    finish: Callable[[TrainState], TrainResult]


def trainer_parts(net: MLP, optimizer: optax.GradientTransformation, options: Options | None = None,
                  **kwargs: Any) -> Trainer:
    """A run of ``net`` trained by ``optimizer`` with ``options`` (or :class:`Options` ``(**kwargs)``),
    as a :class:`Trainer`.  Everything given here is static (it shapes the compiled program); what the
    pieces take is data, so they can be jitted and vmapped over seeds.

    Example:
        >>> parts = trainer_parts(net, optax.sgd(0.1), batch_size=1, measures_per_epoch=10)  # doctest: +SKIP
        >>> r = run_trainer(parts, params, x, y, key)  # doctest: +SKIP
        >>> r.within.loss.reshape(-1)  # the loss every tenth of an epoch  # doctest: +SKIP
    """
    opts = options if options is not None else Options(**kwargs)
    tx = optax.with_extra_args_support(optimizer)

    def begin(params, x, y, key, x_val=None, y_val=None) -> TrainState:
        return start(*bind(net, tx, opts, params, x, y, x_val, y_val), params, key)

    def advance(s: TrainState, x, y, x_val=None, y_val=None) -> TrainState:
        return epoch(*bind(net, tx, opts, s.params, x, y, x_val, y_val), s)

    return Trainer(begin, advance, finish)


def run_trainer(parts: Trainer, params: Params, x: Array, y: Array, key: Array,
                x_val: Array | None = None, y_val: Array | None = None) -> TrainResult:
    """One run of ``parts`` from ``params``: ``start``, ``advance`` while running, ``finish``."""
    state = parts.start(params, x, y, key, x_val, y_val)
    state = jax.lax.while_loop(lambda s: s.reason == stopping.RUNNING,
                               lambda s: parts.advance(s, x, y, x_val, y_val), state)
    return parts.finish(state)


def make_trainer(net: MLP, optimizer: optax.GradientTransformation, **options: Any) -> Callable[..., TrainResult]:
    """The pure training function ``run(params, x, y, key, x_val=None, y_val=None)``:
    :func:`trainer_parts` ``(net, optimizer, **options)`` in one ``lax.while_loop``."""
    parts = trainer_parts(net, optimizer, **options)

    def run(params, x, y, key, x_val=None, y_val=None) -> TrainResult:
        return run_trainer(parts, params, x, y, key, x_val, y_val)

    return run
