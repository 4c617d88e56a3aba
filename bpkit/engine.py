"""bpkit's one sweep engine: each group's program compiled (ahead, in threads), run chunk by chunk.

A group's program (:func:`group_program`) takes the number of real runs and one column per
field of data it uses (the seed, the init scale, its optimizer's data hyperparameters) and
runs every run of the chunk with :func:`bpkit.lanes.train_lanes` or through a queue of lanes
(:func:`bpkit.lanes.train_queue`).
The chunk is laid out over all visible devices with ``jax.sharding`` (a 1-D mesh); in a
multi-process sweep (:mod:`bpkit.distributed`) ``jax.devices()`` spans every process and the
same sharding splits each chunk across them.  Each run comes out as one :class:`Outcome`.

On CPU a run's numbers are bitwise the same whichever runs share its chunk (each chunk
is padded to the same compiled program) and whichever lane of a queue it takes; another
chunk size or number of lanes compiles another program and may change the last bits.

Example:
    >>> for chunk in run_grid(runs):                      # doctest: +SKIP
    ...     for run, out in chunk:
    ...         print(run.seed, out.stop_reason, out.cu)
"""

from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bpkit import analysis, distributed, lanes, losses, stopping
from bpkit.experiment import Experiment
from bpkit.loop import x64_mode
from bpkit.plan import Group, Lanes, plan
from bpkit.spec import DISCRETE, Run

COMPILE_AHEAD = 1  # groups compiled ahead, in a thread, while one runs


class Outcome(NamedTuple):
    """What one run of a sweep produced.

    ``curves``: each :class:`bpkit.loop.History` field cut at the run's last epoch (with
    ``training.measures_per_epoch = m`` also ``curves["within"]``, each field ``(epochs, m)``; with
    ``training.measure_bit_fails`` also ``curves["bit_fails"]``, the final bit fails on the training,
    validation and test sets, -1 where there is no such set; with ``training.measure_dead_units`` also
    ``curves["dead_units"]``, the dead hidden units on the training set at the start and at the end,
    :func:`bpkit.analysis.dead_units`);
    the final train/validation/test loss and accuracy; evaluations in full-data equivalents
    (``cu = loss_evals + 3 grad_evals``); ``wall_time``: its chunk's run time over its runs
    (compiling is not in it); ``goal_epoch``, ``c40_epoch``: the epoch each criterion first
    held (0: never, or off).
    """

    curves: dict[str, Any]
    epochs: int
    stop_reason: str
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    test_loss: float
    test_acc: float
    loss_evals: float
    grad_evals: float
    cu: float
    wall_time: float
    goal_epoch: int
    c40_epoch: int


def accuracy(out, y, lo, hi):
    """The fraction of examples classified right: one output read against the targets' midpoint, several
    by their largest."""
    if y.shape[1] == 1:
        return jnp.mean(((out > (lo + hi) / 2) == (y > (lo + hi) / 2)).astype(out.dtype))
    return jnp.mean((jnp.argmax(out, 1) == jnp.argmax(y, 1)).astype(out.dtype))


def group_program(ex: Experiment, width: int | None = None) -> Callable:
    """The jitted program of a group: ``(count, *columns) -> results``, one column per field of
    ``ex.columns`` (the seed, the init scale and the optimizer's data hyperparameters).

    ``width=None``: every run of the chunk in its own vmapped lane, all stepped until the last
    stops (padding runs too).  ``width=W``: runs ``0..count-1`` through W lanes, each lane
    taking the next run as soon as its own stops: faster where runs stop at very different
    epochs or line searches take different numbers of steps (CG, L-BFGS), with other last bits.
    """
    loss_obj = losses.get(ex.options["loss"])
    lo, hi = ex.target_range
    a = ex.arrays
    limit = ex.bit_fail_limit

    def evaluate(net, p, x, y):
        if x is None:
            return jnp.asarray(jnp.nan, ex.dtype), jnp.asarray(jnp.nan, ex.dtype), jnp.int32(-1)
        out, cache = net.forward(p, x)
        fails = jnp.int32(-1) if limit is None else stopping.count_bit_fails(out, y, lo, hi, limit)
        return loss_obj.value(cache.zs[-1], out, y), accuracy(out, y, lo, hi), fails

    def one(*vmapped):
        return lane(ex, dict(zip(ex.columns, vmapped, strict=True)))

    def outcome(r, start, *vmapped):
        net = ex.net_for(dict(zip(ex.columns, vmapped, strict=True)))
        metrics = {}
        for split, (x, y) in {"train": ("x", "y"), "val": ("xv", "yv"), "test": ("xt", "yt")}.items():
            metrics[f"{split}_loss"], metrics[f"{split}_acc"], metrics[f"{split}_bit_fails"] = evaluate(
                net, r.params, a[x], a[y])
        if ex.dead_units:
            metrics["dead_units"] = jnp.stack([analysis.dead_units(net, p, a["x"]) for p in (start, r.params)])
        return r.history, r.epochs, r.stop_reason, metrics, r.met, r.within

    def program(count, *columns):
        data = (a["x"], a["y"], a["xv"], a["yv"])
        starts = jax.vmap(lambda *c: one(*c).params)(*columns) if ex.dead_units else None
        if width is None:
            return jax.vmap(outcome)(lanes.train_lanes(one, columns, *data), starts, *columns)
        return jax.vmap(outcome)(lanes.train_queue(one, columns, count, width, *data), starts, *columns)

    return jax.jit(program)


def chunk_args(part: list[Run], chunk: int, columns: tuple[str, ...],
               codes: dict[str, Callable[[Any], int]] = DISCRETE) -> list[jax.Array]:
    """The program's arguments for ``part`` (runs of one group) padded to ``chunk`` runs and
    sharded over the devices: the number of real runs, then one column per field of ``columns``
    (:data:`bpkit.spec.VMAPPED` fields; the padding never runs).

    Continuous hyperparameters go in the run's own dtype (a float64 momentum would promote
    float32 state), discrete ones as int32 codes; seeds are 0..2^32-1, one uint32 word.
    """
    padded = part + [part[-1]] * (chunk - len(part))
    return [jnp.int32(len(part))] + [lanes.shard(c) for c in column_values(padded, columns, codes)]


def column_values(runs: list[Run], columns: tuple[str, ...],
                  codes: dict[str, Callable[[Any], int]] = DISCRETE) -> list[np.ndarray]:
    """One array per field of ``columns``, one entry per run, as a group's program takes them
    (:func:`chunk_args`); a discrete field as its int32 code (``codes``: the group's,
    :attr:`bpkit.experiment.Experiment.codes`)."""
    dt = np.dtype(runs[0].dtype)
    items = [dict(r.items()) for r in runs]
    return [np.array([codes.get(k, lambda v: v)(r[k]) for r in items],
                     np.uint32 if k == "seed" else np.int32 if k in codes else dt) for k in columns]


def lane(ex: Experiment, values: dict[str, Any]) -> lanes.Lane:
    """One run of ``ex``'s group before it starts, from its column values (``ex.columns``: the seed, the init
    scale, the optimizer's data hyperparameters; traced inside a group's program)."""
    hyper = {k: values[f] for k, f in ex.data_hyper}
    return lanes.seed_lane(ex.net_for(values), ex.optimizer, values["seed"], hyper, static_hyper=ex.static_hyper,
                           init=ex.init, init_scale=values["network.init_scale"], init_bias=ex.bias_init,
                           dtype=ex.dtype, **ex.options)


def lane_alone(ex: Experiment, run: Run) -> lanes.Lane:
    """:func:`lane` of ``run``, a member of ``ex``'s group, by itself: its values as the sweep passes them
    (the same initial weights; call inside ``x64_mode(run.dtype)`` for a float64 run)."""
    return lane(ex, {k: jnp.asarray(c[0]) for k, c in zip(ex.columns, column_values([run], ex.columns, ex.codes),
                                                           strict=True)})


def compile_group(program: Any, part: list[Run], chunk: int, columns: tuple[str, ...],
                  codes: dict[str, Callable[[Any], int]] = DISCRETE) -> Callable:
    """``program`` compiled ahead of time for chunks of ``chunk`` runs (XLA compiles without the GIL,
    so several groups can compile at once in threads).  Callable like ``program`` on such chunks."""
    try:
        with x64_mode(part[0].dtype):  # in the compiling thread: JAX's mode is per thread
            return program.lower(*chunk_args(part, chunk, columns, codes)).compile()
    except jax.errors.JaxRuntimeError as e:
        raise _out_of_memory(e, chunk) from None


def run_chunk(program: Callable, part: list[Run], chunk: int, columns: tuple[str, ...],
              codes: dict[str, Callable[[Any], int]] = DISCRETE) -> tuple:
    """Run ``part`` (runs of one group) through its ``program`` (jitted or compiled) at shape ``chunk``:
    ``(history, epochs, stop_reasons, metrics, met, within)`` as host arrays, one row per padded run."""
    try:
        with x64_mode(part[0].dtype):
            return distributed.gather(jax.block_until_ready(program(*chunk_args(part, chunk, columns, codes))))
    except jax.errors.JaxRuntimeError as e:
        raise _out_of_memory(e, chunk) from None


def _out_of_memory(e: Exception, chunk: int) -> Exception:
    if "RESOURCE_EXHAUSTED" not in str(e):
        return e
    return MemoryError(f"the device ran out of memory running {chunk} runs at once; lower --chunk-size "
                       f"or --memory-budget, or training.max_epochs or network.hidden")


def outcomes(result: tuple, count: int, wall: float) -> list[Outcome]:
    """The :class:`Outcome` of each of the first ``count`` runs of a chunk's host ``result``."""
    hist, epochs, reasons, metrics, met, within = result
    out = []
    for i in range(count):
        e = int(epochs[i])
        curves: dict[str, Any] = {k: np.asarray(getattr(hist, k)[i][:e]) for k in hist._fields}
        if within is not None:  # measures_per_epoch = m: (epochs, m) records per field
            curves["within"] = {k: np.asarray(getattr(within, k)[i][:e]) for k in within._fields}
        if int(metrics["train_bit_fails"][i]) >= 0:  # training.measure_bit_fails: three final counts, kept
            # with the curves so that the store's columns stay as they are (-1: no such set)
            curves["bit_fails"] = np.array([int(metrics[f"{k}_bit_fails"][i]) for k in ("train", "val", "test")])
        if "dead_units" in metrics:  # training.measure_dead_units: at the start, at the end
            curves["dead_units"] = np.asarray(metrics["dead_units"][i]).astype(int)
        le = float(hist.loss_evals[i][e - 1]) if e else 0.0
        ge = float(hist.grad_evals[i][e - 1]) if e else 0.0
        scalars = {k: float(metrics[k][i]) for k in ("train_loss", "train_acc", "val_loss", "val_acc",
                                                       "test_loss", "test_acc")}
        out.append(Outcome(curves, e, stopping.reason_name(int(reasons[i])), **scalars, loss_evals=le,
                           grad_evals=ge, cu=le + 3 * ge, wall_time=wall, goal_epoch=int(met[i][0]),
                           c40_epoch=int(met[i][1])))
    return out


def run_grid(runs: list[Run], all_runs: list[Run] | tuple[list[Run], ...] | None = None, chunk_size: int | None = 64,
             memory_budget_mb: float | None = None, fit: bool = False, compile_ahead: int | None = None,
             lanes: Lanes = "auto") -> Iterator[list[tuple[Run, Outcome]]]:
    """Every run of ``runs``, one chunk per compiled call: ``(run, outcome)`` pairs, chunk by chunk.

    Checks everything when called (:func:`bpkit.plan.plan`: a bad config raises here, before any
    work).  Each group's program is compiled once, before its first chunk; while one group runs,
    the next ``compile_ahead`` groups compile in threads (0: none ahead; None:
    :data:`COMPILE_AHEAD`).  A compiled program is dropped once its group is done.  ``lanes``:
    None, every run of a chunk in a lane of its own; W, each chunk's runs through W lanes; "auto",
    :func:`bpkit.plan.group_lanes` picks per group.
    """
    compile_ahead = COMPILE_AHEAD if compile_ahead is None else compile_ahead
    return execute(plan(runs, all_runs, chunk_size, memory_budget_mb, fit, lanes), compile_ahead)


def execute(groups: list[Group], compile_ahead: int) -> Iterator[list[tuple[Run, Outcome]]]:
    """Compile and run ``groups`` in order (see :func:`run_grid`); the compiles go to a thread,
    the next ``compile_ahead`` groups' while one group runs."""
    pool = ThreadPoolExecutor(max_workers=max(1, compile_ahead))
    ahead: dict[int, Future] = {}
    todo: list[Group | None] = list(groups)
    del groups  # a finished group is dropped from ``todo``: nothing else may hold it
    try:
        for i in range(len(todo)):
            for j in range(i, min(i + compile_ahead + 1, len(todo))) if compile_ahead else ():
                if j not in ahead:
                    ahead[j] = pool.submit(_compile, todo[j])
            program = ahead.pop(i).result() if i in ahead else _compile(todo[i])
            yield from _run_group(program, todo[i])
            del program
            todo[i] = None  # its data and program can go: memory holds the groups ahead only
            _return_freed_memory()
    finally:
        # Stopped early (Ctrl-C, an error, the caller done): compile nothing more for groups that
        # will not run; a compile already under way finishes on its own.
        pool.shutdown(wait=False, cancel_futures=True)


def _compile(g: Group | None) -> Callable:
    assert g is not None
    ex = g.experiment
    return compile_group(group_program(ex, g.lanes), g.members[:g.chunk], g.chunk, ex.columns, ex.codes)


def _run_group(program: Callable, g: Group | None) -> Iterator[list[tuple[Run, Outcome]]]:
    assert g is not None
    for start in range(0, len(g.members), g.chunk):
        part = g.members[start:start + g.chunk]
        t0 = time.perf_counter()
        result = run_chunk(program, part, g.chunk, g.experiment.columns, g.experiment.codes)
        wall = (time.perf_counter() - t0) / len(part)
        yield list(zip(part, outcomes(result, len(part), wall), strict=True))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's; None elsewhere (macOS, musl)
    except (OSError, TypeError):  # no C library to open by name None (Windows)
        return None


def _return_freed_memory() -> None:
    """Hand the memory a finished group freed back to the system (glibc's ``malloc_trim``): glibc
    keeps freed blocks for reuse, but what compiling and running one group leaves behind is too
    scattered to serve the next, so the process would grow group by group."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
