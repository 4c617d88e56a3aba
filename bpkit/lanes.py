"""Many runs in one compiled program: lanes stepped side by side, and a queue that refills them.

A *lane* is one run's :class:`bpkit.loop.Trainer` with its initial params and training
key, made from a seed and the run's hyperparameters (:func:`seed_lane`): the seed's key
splits into the init key and the training key.  :func:`train_lanes` steps every lane
with ``jax.vmap(advance)`` until the last run stops; :func:`train_queue` hands a lane
whose run has stopped the next run of a queue at once.  Both touch a run's state only
through the trainer's pieces and the documented fields of :class:`bpkit.loop.TrainState`
(``reason``, and ``history``, which they keep out of branches).

Example:
    >>> r = train_many(net, "sgd", [0, 1, 2], x, y, hyper={"learning_rate": [0.5, 0.5, 1.0]})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bpkit import optim, stopping
from bpkit.loop import History, Trainer, TrainResult, TrainState, run_trainer, trainer_parts, x64_mode
from bpkit.network import MLP, Params

Array = jax.Array
IDLE = -1  # the stop reason of a lane of train_queue that holds no run (never RUNNING)


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
    """A run before it starts: the seed's key splits into the init key and the training key; the
    optimizer is ``bpkit.optim.Recipe(optimizer, static_hyper).build(hyper)`` (``hyper`` may be
    traced: data of the program); ``trainer`` are the :class:`bpkit.loop.Options`."""
    kinit, ktrain = jax.random.split(jax.random.key(seed))
    params = net.init(kinit, scheme=init, scale=init_scale, dtype=dtype, bias=init_bias)
    tx = optim.Recipe(optimizer, static_hyper).build(hyper)
    return Lane(trainer_parts(net, tx, **trainer), params, ktrain)


def train_from_seed(net: MLP, optimizer: str, seed: Array, hyper: dict[str, Array], x: Array, y: Array,
                    x_val: Array | None = None, y_val: Array | None = None, **lane: Any) -> TrainResult:
    """One run from a seed, pure (``lane``: as :func:`seed_lane`).  Every sweep is this run under
    ``jax.vmap``, stepped by :func:`train_lanes` or :func:`train_queue`."""
    run = seed_lane(net, optimizer, seed, hyper, **lane)
    return run_trainer(run.trainer, run.params, x, y, run.key, x_val, y_val)


class Steps(NamedTuple):
    """The start, advance and finish of the run a lane's columns ``*a`` define (for vmapping)."""

    start: Callable[..., TrainState]
    advance: Callable[..., TrainState]
    finish: Callable[..., TrainResult]


def _lane_steps(make_lane: Callable[..., Lane], x: Array, y: Array, x_val: Array | None,
                y_val: Array | None) -> Steps:
    def start(*a):
        lane = make_lane(*a)
        return lane.trainer.start(lane.params, x, y, lane.key, x_val, y_val)

    def advance(state, *a):
        return make_lane(*a).trainer.advance(state, x, y, x_val, y_val)

    def finish(state, *a):
        return make_lane(*a).trainer.finish(state)

    return Steps(start, advance, finish)


def train_lanes(make_lane: Callable[..., Lane], lanes: tuple, x: Array, y: Array, x_val: Array | None = None,
                y_val: Array | None = None) -> TrainResult:
    """Many runs in one loop: run ``i`` is ``make_lane(*(a[i] for a in lanes))``; returns the stacked results.

    The same numbers as ``jax.vmap`` of single runs; but ``jax.vmap`` of a ``while_loop``
    whose runs stop at different epochs selects the whole state, history included, between
    the stepped and the kept value at every epoch, so an epoch's cost would grow with the
    budget.  Here one ``while_loop`` runs while any run is running and steps every run with
    ``jax.vmap(advance)``; a stopped run's advance returns it unchanged, writing its history
    entry by entry, so nothing of the size of the history is copied.
    """
    steps = _lane_steps(make_lane, x, y, x_val, y_val)
    state = jax.vmap(steps.start)(*lanes)
    state = jax.lax.while_loop(lambda s: jnp.any(s.reason == stopping.RUNNING),
                               lambda s: jax.vmap(steps.advance)(s, *lanes), state)
    return jax.vmap(steps.finish)(state, *lanes)


class _Queue(NamedTuple):
    """A queue of ``q`` runs (``runs``: columns) of which the first ``count`` run, and its steps."""

    runs: tuple
    q: int
    count: Any
    steps: Steps

    def at(self, slot: Array) -> tuple:
        """The columns of the runs the lanes hold (an idle lane, slot q: any run's)."""
        return jax.tree_util.tree_map(lambda c: jnp.take(c, slot, axis=0, mode="clip"), self.runs)

    def begin(self, slot: Array, held: Array) -> TrainState:
        """Fresh states for the runs in ``slot``; lanes not ``held`` are idle."""
        state = jax.vmap(self.steps.start)(*self.at(slot))
        return state._replace(reason=jnp.where(held, state.reason, IDLE))


def _aside(s: TrainState) -> TrainState:
    """``s`` with its history set aside (None): the small part of the state, to go through a branch."""
    return s._replace(history=None)  # type: ignore[arg-type]


def _hand_over(qu: _Queue, lane: TrainState, slot: Array, taken: Array) -> tuple:
    """The idle lanes take the next runs, in lane order.  A lane's history is left as it is (the big
    part of the state, kept out of the branch): its new run writes entry by entry from 0, and the
    entries past a run's last epoch are blanked once, at the end.  Every run starts here, the first
    ``lanes`` too, so the start is compiled once."""
    free = lane.reason == IDLE
    nxt = taken + jnp.cumsum(free, dtype=jnp.int32) - 1
    held = free & (nxt < qu.count)
    slot = jnp.where(held, nxt, slot)
    fresh = _aside(qu.begin(slot, held))
    lane = jax.tree_util.tree_map(lambda a, b: jnp.where(held.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), fresh, lane)
    return lane, slot, taken + jnp.sum(held, dtype=jnp.int32)


def _hand_in(qu: _Queue, lane: TrainState, history: History, slot: Array, done: Array, out: TrainResult) -> tuple:
    """The stopped lanes' results into ``out``; those lanes go idle."""
    result = jax.vmap(qu.steps.finish)(lane._replace(history=history), *qu.at(slot))
    out = jax.tree_util.tree_map(lambda o, v: o.at[jnp.where(done, slot, qu.q)].set(v, mode="drop"), out, result)
    return lane._replace(reason=jnp.where(done, IDLE, lane.reason)), jnp.where(done, qu.q, slot), out


def _queue_epoch(qu: _Queue, carry: tuple) -> tuple:
    """Hand runs to idle lanes, step every lane one epoch, hand in the runs that stopped."""
    state, slot, taken, out = carry
    history = state.history
    state, slot, taken = jax.lax.cond(jnp.any(state.reason == IDLE) & (taken < qu.count), partial(_hand_over, qu),
                                      lambda l, s, t: (l, s, t), _aside(state), slot, taken)
    state = jax.vmap(qu.steps.advance)(state._replace(history=history), *qu.at(slot))
    done = (state.reason != stopping.RUNNING) & (slot < qu.q)
    lane, slot, out = jax.lax.cond(jnp.any(done), partial(_hand_in, qu), lambda l, h, s, d, o: (l, s, o),
                                   _aside(state), state.history, slot, done, out)
    return lane._replace(history=state.history), slot, taken, out


def train_queue(make_lane: Callable[..., Lane], runs: tuple, count: Array | int, lanes: int, x: Array, y: Array,
                x_val: Array | None = None, y_val: Array | None = None) -> TrainResult:
    """Runs ``0..count-1`` of ``runs`` (columns, each of length Q) through ``lanes`` lanes: a queue.

    :func:`train_lanes` steps every lane until the slowest run stops, so a chunk costs
    ``lanes x`` its longest run.  Here a lane whose run has stopped hands its result over and
    takes the next run at once, so the loop costs about ``sum(epochs) / lanes`` plus the last,
    longest runs.  Every epoch is ``jax.vmap(advance)`` at width ``lanes``.  On CPU, run ``i``'s
    numbers are bitwise the same whichever lane it ran in and whichever runs ran beside it;
    against :func:`train_lanes`, another compiled program, they may differ in the last bits.

    ``count`` may be traced (data), so a queue padded to Q runs reuses one program; entries from
    ``count`` on never run: their rows hold zeros (0 epochs) and a blank history.  Every lane starts
    idle; each iteration the idle lanes take the next runs, then every lane steps, then the stopped
    lanes hand in their results and go idle.

    Example:
        >>> r = train_queue(lane, (seeds, rates), count=80, lanes=64, x=x, y=y)  # doctest: +SKIP
    """
    q = jax.tree_util.tree_leaves(runs)[0].shape[0]
    qu = _Queue(runs, q, count, _lane_steps(make_lane, x, y, x_val, y_val))
    slot = jnp.full((lanes,), q, jnp.int32)
    shapes = jax.eval_shape(lambda sl: qu.begin(sl, sl < q), slot)
    state = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    state = state._replace(reason=jnp.full((lanes,), IDLE, state.reason.dtype))
    shapes = jax.eval_shape(lambda s, sl: jax.vmap(qu.steps.finish)(s, *qu.at(sl)), state, slot)
    out = jax.tree_util.tree_map(lambda a: jnp.zeros((q,) + a.shape[1:], a.dtype), shapes)
    qu = qu._replace(count=jnp.asarray(count, jnp.int32))
    carry = (state, slot, jnp.zeros((), jnp.int32), out)
    out = jax.lax.while_loop(lambda c: (c[2] < qu.count) | jnp.any(c[1] < q), partial(_queue_epoch, qu), carry)[3]
    past = jnp.arange(out.history.loss.shape[-1])[None, :] >= out.epochs[:, None]  # entries past each stop
    return out._replace(history=History(*(jnp.where(past, -1 if h.dtype == jnp.int32 else jnp.nan, h).astype(h.dtype)
                                          for h in out.history)))


def shard(a: Any, devices: Sequence[Any] | None = None) -> jax.Array:
    """``a`` (a host array) laid out along its first axis over ``devices`` (default: every device, of
    every process; each process holds the whole array and places the rows of its own devices); on
    one device, as it is.  Its length must be a multiple of the device count."""
    a = np.asarray(a)
    devices = jax.devices() if devices is None else list(devices)
    if len(devices) == 1:
        return jax.device_put(jnp.asarray(a), devices[0])
    mesh = jax.sharding.Mesh(np.array(devices), ("runs",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("runs"))
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def train_many(net: MLP, optimizer: str, seeds: Any, x: Array, y: Array, x_val: Array | None = None,
               y_val: Array | None = None, *, hyper: dict[str, Any] | None = None, init_scale: Any = 1.0,
               dtype: Any = jnp.float32, devices: Sequence[Any] | None = None, **kwargs: Any) -> TrainResult:
    """Many runs in one compiled, vmapped program: run ``i`` is ``seeds[i]`` with
    ``hyper[k][i]`` (and ``init_scale[i]`` if a sequence); returns the stacked results.

    The runs are laid out over ``devices`` (default: every device; :func:`shard`), padded with
    copies of the last to a multiple of their count (the copies' results dropped): on CPU,
    ``jax_num_cpu_devices = d`` (:func:`bpkit.machine.cpu_devices`) steps them on d cores at once.
    Each device steps its share as one vmapped program of that width, and a run's last bits depend
    on that width (not on which device runs it): 2k runs on 2 devices give each run the bits of k
    runs on one.

    Example:
        >>> r = train_many(net, "sgd", [0, 1, 2], x, y, hyper={"learning_rate": [0.5, 0.5, 1.0]})  # doctest: +SKIP
    """
    dt = jnp.dtype(dtype)
    devices = jax.devices() if devices is None else list(devices)
    n = len(np.asarray(seeds))
    pad = -n % len(devices)

    def column(v: Any, kind: Any) -> jax.Array:
        v = np.broadcast_to(np.asarray(v, kind), (n,))
        return shard(np.concatenate([v, np.repeat(v[-1:], pad)]), devices)

    with x64_mode(dt):
        seeds = column(seeds, np.uint32)
        cols = {k: column(v, dt) for k, v in (hyper or {}).items()}
        scales = column(init_scale, dt)
        x, y = jnp.asarray(x, dt), jnp.asarray(y, dt)
        xv = None if x_val is None else jnp.asarray(x_val, dt)
        yv = None if y_val is None else jnp.asarray(y_val, dt)
        res = _train_many_jit(seeds, cols, scales, x, y, xv, yv, net=net, optimizer=optimizer, dtype=dt,
                              kwargs=tuple(sorted(kwargs.items())))
    return res if not pad else jax.tree_util.tree_map(lambda a: a[:n], res)


@partial(jax.jit, static_argnames=("net", "optimizer", "dtype", "kwargs"))
def _train_many_jit(seeds, cols, scales, x, y, xv, yv, *, net, optimizer, dtype, kwargs):
    def lane(seed, hyper, scale):
        return seed_lane(net, optimizer, seed, hyper, init_scale=scale, dtype=dtype, **dict(kwargs))

    return train_lanes(lane, (seeds, cols, scales), x, y, xv, yv)
