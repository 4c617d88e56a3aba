"""Sweeps: grouped by compiled program, vmapped inside a group, sharded over devices.

Runs are grouped by everything that shapes the compiled program (data set,
sizes, activations, loss, source, optimizer kind and its static settings,
batch size, stopping rules).  Inside a group the seed, learning rate,
momentum and init scale are data: one ``jax.vmap`` runs many of them in one
compiled program.  The vmapped axis is cut into chunks of ``chunk_size`` runs
(the last one padded, so every chunk reuses the same program), bounding peak
memory however large the sweep, and each chunk is laid out over all visible
devices with ``jax.sharding`` (``NamedSharding`` on a 1-D mesh).  Multi-host:
call ``jax.distributed.initialize()`` first in every process; ``jax.devices()``
then spans all hosts and the same sharding splits each chunk across them.

On CPU a run's numbers are bitwise the same whichever runs share its chunk
(each is padded to the same compiled program) and whichever lane of a queue it
takes (:func:`group_lanes`); a different ``chunk_size`` or number of lanes
compiles a different program and may change the last bits.

Each finished chunk is committed to the store in one transaction, and runs
already stored are skipped, so a sweep killed at any point and re-run ends
with exactly the runs of an uninterrupted one.
"""

from __future__ import annotations

import ctypes
import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Literal, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

import bpkit
from bpkit import config as cfg
from bpkit import datasets, distributed, optim, stopping
from bpkit._validate import require_reachable_targets
from bpkit.network import MLP
from bpkit.store import Store, run_id
from bpkit.training import seed_lane, train_lanes, train_queue, x64_mode


COMPILE_AHEAD = 1  # groups compiled ahead, in a thread, while one runs (measured: see run_grid)


def load_data(run: cfg.RunConfig) -> datasets.Dataset:
    """The data set a run names: a CSV or FANN file, or a named set."""
    if run["data.path"]:
        p = run["data.path"]
        if p.endswith(".data"):
            return datasets.load_fann(p)
        return datasets.load_csv(p, targets=run["data.targets"], seed=run["data.split_seed"])
    return datasets.load(run["data.name"], seed=run["data.split_seed"])


def _targets(y: np.ndarray | None, run: cfg.RunConfig, task: str) -> np.ndarray | None:
    rng = run["data.target_range"]
    if y is None or not rng or task != "classification":
        return y
    lo, hi = rng
    return lo + (hi - lo) * y


def _rules(run: cfg.RunConfig) -> stopping.StopRules:
    return stopping.StopRules(
        max_epochs=run["training.max_epochs"],
        goal=run["training.goal"] if run["training.goal"] >= 0 else None,
        min_grad_norm=run["training.min_grad_norm"] if run["training.min_grad_norm"] >= 0 else None,
        criterion_40_20_40=run["training.criterion_40_20_40"],
        patience=run["training.patience"] or None,
        stall_epochs=run["training.stall_epochs"] or None,
        stop_on=run["training.stop_on"],
    )


def _accuracy(out, y, lo, hi):
    if y.shape[1] == 1:
        return jnp.mean(((out > (lo + hi) / 2) == (y > (lo + hi) / 2)).astype(out.dtype))
    return jnp.mean((jnp.argmax(out, 1) == jnp.argmax(y, 1)).astype(out.dtype))


def group_program(run: cfg.RunConfig, data: datasets.Dataset, plain_momentum: bool = False,
                  lanes: int | None = None) -> Callable:
    """The jitted program for a group: ``(count, seeds, *hyper) -> results``, one column per
    :data:`bpkit.config.VMAPPED` field (seeds first).

    ``lanes=None``: every run of the chunk in its own vmapped lane, all stepped until the
    last stops (:func:`bpkit.training.train_lanes`; padding runs too).  ``lanes=W``: runs
    ``0..count-1`` through W lanes, each lane taking the next run as soon as its own stops
    (:func:`bpkit.training.train_queue`): much faster where runs stop at very different
    epochs or line searches take different numbers of steps (CG, L-BFGS), with other last bits.

    ``plain_momentum``: every run of the group has momentum 0, so the program is
    plain gradient descent, without a velocity buffer (its momentum column is
    ignored).  A momentum that varies is data: ``v = mu v - lr g`` for every run,
    which with ``mu = 0`` is the same step at about twice the cost per update.
    """
    dtype = jnp.dtype(run["dtype"])
    sizes = (data.inputs, *run["network.hidden"], data.outputs)
    net = MLP(sizes, hidden=run["network.activation"], output=run["network.output"], shortcuts=run["network.shortcuts"])
    bs = run["training.batch_size"]
    if bs != "full" and bs > len(data.x_train):
        raise ValueError(
            f"training.batch_size = {bs} is larger than the {len(data.x_train)} training examples of "
            f"{data.name}; use 1..{len(data.x_train)} or 'full'"
        )
    batch_size = None if bs == "full" or bs == len(data.x_train) else bs
    m = run["training.measures_per_epoch"]
    batches = 1 if batch_size is None else math.ceil(len(data.x_train) / batch_size)
    if m > batches:  # checked here, before any compile (training.trainer_parts checks it when traced)
        raise ValueError(f"training.measures_per_epoch = {m} is more than the {batches} batch(es) of an epoch "
                         f"of {data.name} at training.batch_size = {bs}; use 1..{batches}")
    y_tr = _targets(data.y_train, run, data.task)
    lo, hi = float(np.min(y_tr)), float(np.max(y_tr))
    arrays = {k: (None if v is None else jnp.asarray(v, dtype)) for k, v in {
        "x": data.x_train, "y": y_tr, "xv": data.x_val, "yv": _targets(data.y_val, run, data.task),
        "xt": data.x_test, "yt": _targets(data.y_test, run, data.task)}.items()}
    if data.task == "classification" and run["loss"] != "mse" and not np.all((data.y_train == 0) | (data.y_train == 1)):
        raise ValueError(f"loss {run['loss']!r} needs 0/1 targets; {data.name} has other values (use loss = 'mse')")
    loss_obj = bpkit.losses.get(run["loss"])
    loss_obj.check_output_activation(net.output)
    require_reachable_targets(net.activations[-1], sizes[-1], y_tr, data.name)
    rules = _rules(run)

    def evaluate(p, x, y):
        if x is None:
            return jnp.asarray(jnp.nan, dtype), jnp.asarray(jnp.nan, dtype)
        out, cache = net.forward(p, x)
        return loss_obj.value(cache.zs[-1], out, y), _accuracy(out, y, lo, hi)

    name = run["optimizer.name"]
    fields = {k: f"optimizer.{k}" for k in optim.HYPERPARAMETERS[name]}
    fixed = {"optimizer.momentum": 0.0} if plain_momentum and "momentum" in optim.HYPERPARAMETERS[name] else {}
    static_hyper = tuple((k, fixed.get(f, run[f])) for k, f in fields.items() if f not in cfg.VMAPPED or f in fixed)

    def lane(seed, *vmapped):
        traced = dict(zip(cfg.VMAPPED[1:], vmapped))
        hyper = {k: traced[f] for k, f in fields.items() if f in traced and f not in fixed}
        return seed_lane(net, name, seed, hyper, static_hyper=static_hyper, init=run["network.init"],
                         init_scale=traced["network.init_scale"], init_bias=run["network.bias_init"],
                         dtype=dtype, loss=run["loss"], source=run["source"], batch_size=batch_size,
                         shuffle=run["training.shuffle"], rules=rules,
                         measure_every=run["training.measure_every"], measures_per_epoch=m)

    def outcome(r):
        metrics = {}
        for split, (x, y) in {"train": ("x", "y"), "val": ("xv", "yv"), "test": ("xt", "yt")}.items():
            metrics[f"{split}_loss"], metrics[f"{split}_acc"] = evaluate(r.params, arrays[x], arrays[y])
        return r.history, r.epochs, r.stop_reason, metrics, r.met, r.within

    def program(count, *columns):
        data = (arrays["x"], arrays["y"], arrays["xv"], arrays["yv"])
        if lanes is None:
            return jax.vmap(outcome)(train_lanes(lane, columns, *data))
        return jax.vmap(outcome)(train_queue(lane, columns, count, lanes, *data))

    return jax.jit(program)


def num_params(run: cfg.RunConfig, data: datasets.Dataset) -> int:
    """Weights and biases of one run's network on ``data``."""
    sizes = (data.inputs, *run["network.hidden"], data.outputs)
    return MLP(sizes, shortcuts=run["network.shortcuts"]).num_params


def run_bytes(run: cfg.RunConfig, data: datasets.Dataset) -> int:
    """An upper estimate of one run's live memory inside the vmapped program.

    Params-sized buffers (params, candidate params, gradients, optimizer
    state, best params, the line search's copies: 12 of them), the history
    (6 x max_epochs, times m with ``training.measures_per_epoch = m``: one per
    epoch, and the records within epochs), and activations for a batch and for the full-data
    measurement (z, a and delta per unit), doubled for XLA's temporaries.
    """
    itemsize = np.dtype(run["dtype"]).itemsize
    n_params = num_params(run, data)
    units = data.inputs + sum(run["network.hidden"]) + data.outputs
    n = len(data.x_train)
    bs = n if run["training.batch_size"] == "full" else min(run["training.batch_size"], n)
    m = run["training.measures_per_epoch"]
    floats = 12 * n_params + 6 * run["training.max_epochs"] * (1 if m == 1 else 1 + m) + 3 * units * (bs + n)
    return 2 * floats * itemsize


def available_mb() -> float | None:
    """Memory this machine has available now (Linux ``MemAvailable``), in MB; None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def chunk_for_budget(run: cfg.RunConfig, data: datasets.Dataset, budget_mb: float | None) -> int:
    """How many runs of this group fit in ``budget_mb`` megabytes at once, and in the memory
    available now.

    Raises:
        ValueError: one run alone needs more than either; nothing has been compiled yet.
    """
    if budget_mb is not None and not budget_mb > 0:
        raise ValueError(f"the memory budget must be positive (megabytes), got {budget_mb!r}")
    one = run_bytes(run, data) / 2**20
    what = (f"one run of {data.name} with hidden {list(run['network.hidden'])} and "
            f"max_epochs {run['training.max_epochs']} needs an estimated {one:,.0f} MB")
    fix = "lower training.max_epochs or network.hidden"
    if run["training.measures_per_epoch"] > 1:
        what += f" with {run['training.measures_per_epoch']} measures per epoch"
        fix = "lower training.max_epochs, training.measures_per_epoch or network.hidden"
    if budget_mb is not None and one > budget_mb:
        raise ValueError(f"{what}, more than the memory budget of {budget_mb:,.0f} MB; {fix}, "
                         f"or raise --memory-budget")
    free = available_mb()
    if free is not None and one > free:
        raise ValueError(f"{what}, more than the {free:,.0f} MB this machine has available; {fix}")
    limits = [x for x in (budget_mb, free) if x is not None]
    return max(1, int(min(limits) // one)) if limits else 2**31 - 1


def _shard(a: np.ndarray) -> jax.Array:
    """``a`` laid out along its first axis over every device, of every process (each process holds
    the whole host array and places the rows of its own devices)."""
    devices = jax.devices()
    if len(devices) == 1:
        return jnp.asarray(a)
    mesh = jax.sharding.Mesh(np.array(devices), ("runs",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("runs"))
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def group_runs(runs: list[cfg.RunConfig]) -> dict[tuple, list[cfg.RunConfig]]:
    """Runs by compiled program: one group per static key (all but the vmapped fields), in order."""
    groups: dict[tuple, list[cfg.RunConfig]] = {}
    for r in runs:
        groups.setdefault(r.static_key(), []).append(r)
    return groups


def device_chunk(want: int) -> int:
    """A chunk of at least ``want`` runs, rounded up to a multiple of the device count."""
    n_dev = len(jax.devices())
    return max(n_dev, math.ceil(want / n_dev) * n_dev)


# Discrete vmapped fields and their int32 codes (the compiled CG reads them back: optim.cg).
DISCRETE: dict[str, Callable[[Any], int]] = {"optimizer.beta": optim.BETA_NAMES.index, "optimizer.powell_beale": int}


def chunk_args(part: list[cfg.RunConfig], chunk: int) -> list[jax.Array]:
    """The program's arguments for ``part`` (runs of one group) padded to ``chunk`` runs and
    sharded over the devices: the number of real runs, then one column per
    :data:`bpkit.config.VMAPPED` field (the padding never runs)."""
    padded = part + [part[-1]] * (chunk - len(part))
    # Continuous hyperparameters in the run's own dtype (a float64 momentum would promote float32
    # state); discrete ones as int32 codes; seeds are 0..2^32-1 (config.SEED_MAX), so the cast to
    # one uint32 word is exact.
    dt = np.dtype(part[0]["dtype"])
    cols = [np.array([DISCRETE.get(k, lambda v: v)(r[k]) for r in padded],
                     np.uint32 if k == "seed" else np.int32 if k in DISCRETE else dt) for k in cfg.VMAPPED]
    return [jnp.int32(len(part))] + [_shard(c) for c in cols]


def compile_group(program: Callable, part: list[cfg.RunConfig], chunk: int) -> Callable:
    """``program`` compiled ahead of time for chunks of ``chunk`` runs (XLA compiles without the GIL,
    so several groups can compile at once in threads).  Callable like ``program`` on such chunks."""
    try:
        with x64_mode(part[0]["dtype"]):  # in the compiling thread: JAX's mode is per thread
            return program.lower(*chunk_args(part, chunk)).compile()
    except jax.errors.JaxRuntimeError as e:
        raise _out_of_memory(e, chunk) from None


def run_chunk(program: Callable, part: list[cfg.RunConfig], chunk: int) -> tuple:
    """Run ``part`` (runs of one group) through its ``program`` (jitted or compiled) at shape ``chunk``.

    The runs are padded to ``chunk`` (same shape: no recompile) and sharded
    over the devices; returns ``(history, epochs, stop_reasons, metrics, met, within)``
    as host arrays, one row per padded run (``within``: None unless ``training.measures_per_epoch > 1``).
    """
    try:
        with x64_mode(part[0]["dtype"]):
            return distributed.gather(jax.block_until_ready(program(*chunk_args(part, chunk))))
    except jax.errors.JaxRuntimeError as e:
        raise _out_of_memory(e, chunk) from None


def _out_of_memory(e: Exception, chunk: int) -> Exception:
    if "RESOURCE_EXHAUSTED" not in str(e):
        return e
    return MemoryError(f"the device ran out of memory running {chunk} runs at once; lower --chunk-size "
                       f"or --memory-budget, or training.max_epochs or network.hidden")


class Group(NamedTuple):
    """One compiled program's share of a sweep: its runs, data, chunk, memory estimate and
    lanes (None: one per run of the chunk; see :func:`group_lanes`)."""

    members: list[cfg.RunConfig]
    data: datasets.Dataset
    program: Callable
    chunk: int
    mb_per_run: float
    lanes: int | None = None


Lanes = Union[int, Literal["auto"], None]
AUTO_LANES = 8  # lanes of a queued group on CPU under lanes="auto" (measured: see group_lanes)
AUTO_LANES_HEAVY_SEARCH = 4  # ... of a CG or L-BFGS group whose epoch is heavy (measured: see group_lanes)
AUTO_WORK = 10**6  # examples x weights per epoch from which lanes="auto" queues every optimizer on CPU


def check_lanes(lanes: Lanes) -> None:
    """Raise a one-line ValueError unless ``lanes`` is None, "auto" or a positive int."""
    if not (lanes is None or lanes == "auto" or (isinstance(lanes, int) and not isinstance(lanes, bool) and lanes >= 1)):
        raise ValueError(f"lanes must be a positive integer (runs stepped side by side), 'auto' or None, got {lanes!r}")


def epoch_work(run: cfg.RunConfig, data: datasets.Dataset) -> int:
    """One run's epoch in multiply-adds of the forward pass: training examples x weights."""
    return len(data.x_train) * num_params(run, data)


def group_lanes(run: cfg.RunConfig, data: datasets.Dataset, chunk: int, lanes: Lanes) -> int | None:
    """How many lanes a group's chunk of ``chunk`` runs steps through (None: one per run).

    ``lanes="auto"``, on CPU: :data:`AUTO_LANES` for CG and L-BFGS, whose line searches make
    the runs of a chunk cost very different numbers of evaluations, and for every optimizer
    once an epoch is heavy (:func:`epoch_work` >= :data:`AUTO_WORK`), where a lane's step
    costs about its share of the work and runs that stop early free their lane; one lane
    per run otherwise (a tiny step costs the loop's overhead, whatever the width) and on
    accelerators (where a wide vmap is assumed to cost little; not measured).  Both at once,
    a line search on a heavy epoch: :data:`AUTO_LANES_HEAVY_SEARCH`, since every lane pays
    a full evaluation for each line-search step of the lane that needs most, and a wide lane
    saves nothing on work that already fills the cores.

    Measured on 2 CPU cores, the flagship's groups of 80 runs (run time, warm, one lane per
    run vs 8 lanes): digits 64-32-10 (2.6 million multiply-adds an epoch) online gradient
    descent 53.4 s vs 29.8 s over its five activations (tanh 11.2 s vs 3.8 s), SCG 9.7 s vs
    7.6 s, batch 12.2 s vs 12.0 s, sigmoid PR+ CG 55.7 s vs 16.8 s (24.4 s with 16 lanes);
    XOR and parity-3 (36 and 128 multiply-adds) gradient descent and SCG 2-4x slower with 8
    lanes (XOR batch, tanh: 0.07 s vs 0.18 s).  Problems in between were not measured.  4 lanes
    instead of 8 (2026-12-04, warm, one run each): the flagship's 20 digits groups gave bitwise
    the same results in 64.2 s against 69.9 s (sigmoid PR+ CG 11.3 s against 14.2 s; 2 lanes
    8.3 s, with other last bits), but cg_family's 40 CG and L-BFGS groups gave other last bits
    (220.6 s against 244.9 s), so the studies' stored results keep it at 8.  For heavy line
    searches alone (2026-12-06, warm, the flagship's five digits PR+ CG groups, runs only): 28.1 s
    with 8 lanes, 21.8 s with 4 (bitwise the same results), 19.0 s with 2 and 16.2 s with 1 (other
    last bits, and other epochs in its ReLU and linear groups); no study holds such a group, so 4
    changes no stored result.

    Example:
        >>> group_lanes(run, data, 80, "auto")  # doctest: +SKIP
        8
    """
    if lanes == "auto":
        search = run["optimizer.name"] in ("cg", "lbfgs")
        heavy = epoch_work(run, data) >= AUTO_WORK
        if jax.default_backend() != "cpu" or not (search or heavy):
            lanes = None
        else:
            lanes = AUTO_LANES_HEAVY_SEARCH if search and heavy else AUTO_LANES
    return None if lanes is None else device_chunk(min(lanes, chunk))


def check_dtypes(runs: list[cfg.RunConfig]) -> None:
    """Raise a one-line ValueError if a run asks for float64 while JAX's 64-bit mode is off: JAX
    would truncate it to float32 (with only a warning) and the store would call float32 numbers float64."""
    if any(r["dtype"] == "float64" for r in runs) and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
        raise ValueError('dtype "float64" needs JAX\'s 64-bit mode, which is off: set JAX_ENABLE_X64=1 '
                         '(or use dtype "float32")')


def plan(
    runs: list[cfg.RunConfig],
    all_runs: list[cfg.RunConfig] | None = None,
    chunk_size: int | None = 64,
    memory_budget_mb: float | None = None,
    fit: bool = False,
    lanes: Lanes = "auto",
) -> list[Group]:
    """Group ``runs`` by program and check every group before anything is compiled.

    Loads each data set, checks sizes, losses and targets, and fixes each group's
    chunk: ``chunk_size`` (with ``fit``, at most the group's size in ``all_runs``,
    so a small group is not padded), or without it the group's size in
    ``all_runs`` (the whole sweep), capped by what fits ``memory_budget_mb`` and
    the memory available.  The chunk depends only on the config, never on which runs are
    still to do, so a resumed sweep compiles the programs of an uninterrupted one; so does
    whether a group's momentum is fixed at 0 (:func:`group_program`).  A fixed chunk
    also keeps a run's numbers bitwise independent of how many runs its group has (XLA
    may round differently at another vmapped width).

    Raises:
        ValueError: bad input, or a run too large for the memory (one line each).
    """
    if chunk_size is None and memory_budget_mb is None:
        raise ValueError("give a chunk size, a memory budget, or both")
    check_lanes(lanes)
    check_dtypes(runs)
    full = group_runs(all_runs if all_runs is not None else runs)
    groups = []
    for key, members in group_runs(runs).items():
        data = load_data(members[0])
        size = len(full[key])
        want = size if chunk_size is None else min(chunk_size, size) if fit else chunk_size
        want = min(want, chunk_for_budget(members[0], data, memory_budget_mb))
        plain = all(r["optimizer.momentum"] == 0 for r in full[key])
        chunk = device_chunk(want)
        width = group_lanes(members[0], data, chunk, lanes)
        groups.append(Group(members, data, group_program(members[0], data, plain, width), chunk,
                            run_bytes(members[0], data) / 2**20, width))
    return groups


def run_grid(
    runs: list[cfg.RunConfig],
    all_runs: list[cfg.RunConfig] | None = None,
    chunk_size: int | None = 64,
    memory_budget_mb: float | None = None,
    fit: bool = False,
    compile_ahead: int | None = None,
    lanes: Lanes = "auto",
) -> Iterator[list[tuple[cfg.RunConfig, dict[str, Any]]]]:
    """bpkit's one sweep engine: every run of ``runs``, one chunk per compiled call.

    Checks everything when called (:func:`plan`: a bad config raises here, before
    any work), then the returned iterator yields, chunk by chunk, a list
    of ``(run, out)``: ``out`` holds the run's curves (each :class:`History`
    field cut at its last epoch, ``wrong`` as ints; with ``training.measures_per_epoch = m``
    also ``curves["within"]``, each field ``(epochs, m)``), ``epochs``,
    ``stop_reason`` (a name), the final train/val/test loss and accuracy,
    ``loss_evals``, ``grad_evals``, ``cu``, ``wall_time`` (per run, its
    chunk's run time over its runs; compiling is not in it) and ``goal_epoch``
    and ``c40_epoch`` (the epoch each criterion first held, 0: never).  The
    store (:func:`run_sweep`), the studies and the benchmarks all run on it.

    Each group's program is compiled once, before its first chunk; while one
    group runs, the next ``compile_ahead`` groups compile in threads (0: none
    ahead; None: :data:`COMPILE_AHEAD`).  A compiled program is dropped once
    its group is done, so memory holds at most ``compile_ahead + 1`` of them.  Measured on the
    flagship's XOR and parity half (40 programs, cold cache, 2 cores): 1 ahead 92 s, 0 ahead 110 s,
    2 ahead 98 s and 480 MB more peak memory.

    ``lanes``: None, every run of a chunk in a lane of its own; W, each chunk's runs through
    W lanes that take the next run as soon as theirs stops (see :func:`group_program`);
    "auto" (the default), :func:`group_lanes` picks per group.
    """
    compile_ahead = COMPILE_AHEAD if compile_ahead is None else compile_ahead
    return _execute(plan(runs, all_runs, chunk_size, memory_budget_mb, fit, lanes), compile_ahead)  # checked now, at the call


def _execute(groups: list[Group | None], compile_ahead: int) -> Iterator[list[tuple[cfg.RunConfig, dict[str, Any]]]]:
    pool = ThreadPoolExecutor(max_workers=max(1, compile_ahead))
    ahead = {}

    def schedule(i):
        if compile_ahead and i < len(groups) and i not in ahead:
            g = groups[i]
            ahead[i] = pool.submit(compile_group, g.program, g.members[:g.chunk], g.chunk)

    try:
        for i, g in enumerate(groups):
            for j in range(i, i + compile_ahead + 1):
                schedule(j)
            program = ahead.pop(i).result() if i in ahead else compile_group(g.program, g.members[:g.chunk], g.chunk)
            for start in range(0, len(g.members), g.chunk):
                part = g.members[start:start + g.chunk]
                t0 = time.perf_counter()
                hist, epochs, reasons, metrics, met, within = run_chunk(program, part, g.chunk)
                wall = (time.perf_counter() - t0) / len(part)
                yield [(r, _outcome(k, hist, epochs, reasons, metrics, met, wall, within)) for k, r in enumerate(part)]
            del program
            groups[i] = None  # its traced and compiled program can go: memory holds the groups ahead only
            _return_freed_memory()
    finally:
        # Stopped early (Ctrl-C, an error, the caller done): compile nothing more for groups that
        # will not run; a compile already under way finishes on its own.
        pool.shutdown(wait=False, cancel_futures=True)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's; None elsewhere (macOS, musl)
    except (OSError, TypeError):  # no C library to open by name None (Windows)
        return None


def _return_freed_memory() -> None:
    """Hand the memory a finished group freed back to the system (glibc's ``malloc_trim``).

    glibc keeps freed blocks for reuse, but what compiling and running one group leaves
    behind is too scattered to serve the next, so the process grew group by group.  Measured on
    the flagship's programs (warm cache, every third group compiled, run and dropped): 294 MB
    after the first, 760 MB after the twentieth; with this after each, 263 MB and 312 MB.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _outcome(i, hist, epochs, reasons, metrics, met, wall, within=None) -> dict[str, Any]:
    e = int(epochs[i])
    curves = {k: np.asarray(getattr(hist, k)[i][:e]) for k in hist._fields}
    if within is not None:  # measures_per_epoch = m: (epochs, m) records per field
        curves["within"] = {k: np.asarray(getattr(within, k)[i][:e]) for k in within._fields}
    le = float(hist.loss_evals[i][e - 1]) if e else 0.0
    ge = float(hist.grad_evals[i][e - 1]) if e else 0.0
    return {"curves": curves, "epochs": e, "stop_reason": stopping.reason_name(int(reasons[i])),
            **{k: float(v[i]) for k, v in metrics.items()},
            "loss_evals": le, "grad_evals": ge, "cu": le + 3 * ge, "wall_time": wall,
            "goal_epoch": int(met[i][0]), "c40_epoch": int(met[i][1])}  # 0: never met (or off)


def run_sweep(
    flat: dict[str, Any],
    store: Store,
    chunk_size: int | None = 64,
    progress: bool = True,
    after_chunk: Callable[[int], None] | None = None,
    memory_budget_mb: float | None = None,
    compile_ahead: int | None = None,
    lanes: Lanes = "auto",
) -> dict[str, int]:
    """Run every run of the (validated) config not yet in ``store``; returns counts.

    ``chunk_size`` runs go through the compiled program at once (the last
    chunk padded); see :func:`plan` for how the chunk follows the memory budget.
    Each chunk is one transaction.  In a multi-process sweep
    (:mod:`bpkit.distributed`) every process runs this with the same store,
    and only process 0 writes to it.  Counts: ``runs`` in the config, ``skipped``
    (stored before this sweep started), ``written`` (stored by this sweep),
    ``meanwhile`` (computed here, but another process stored them first),
    ``groups`` (compiled programs).  ``compile_ahead``, ``lanes``: see :func:`run_grid`.
    """
    runs = cfg.expand(flat)
    ids = [run_id(r.as_dict()) for r in runs]
    done = store.run_ids()
    todo = [r for r, i in zip(runs, ids) if i not in done]
    writer = distributed.is_writer()
    chunks = run_grid(todo, runs, chunk_size, memory_budget_mb, compile_ahead=compile_ahead, lanes=lanes)  # every check first
    if writer:
        store.add_grid(ids)  # a report reads the runs in this order
    bar = _progress(len(todo), progress and writer)
    written = meanwhile = 0
    for chunk in chunks:
        if not writer:  # in a multi-process sweep, process 0 alone writes; the others only compute
            continue
        added = store.add([_record(run, out) for run, out in chunk])
        written += added
        meanwhile += len(chunk) - added
        bar.update(len(chunk))
        if after_chunk:
            after_chunk(written)
    bar.close()
    return {"runs": len(runs), "skipped": len(runs) - len(todo), "written": written,
            "meanwhile": meanwhile, "groups": len(group_runs(todo))}


def in_grid_order(stored: list[dict[str, Any]], flat: dict[str, Any]) -> list[dict[str, Any]]:
    """``stored`` runs (as :meth:`Store.runs` gives them) in the order of ``flat``'s grid; runs the
    grid does not hold follow in their stored order.

    A sweep stores a compiled group's runs together, so a store's write order follows the groups
    (all CG variants of a (problem, activation) in one, say), not the grid.  Reports read runs in
    this order, so their rows do not change when the engine groups runs differently.
    """
    position = {run_id(r.as_dict()): i for i, r in enumerate(cfg.expand(flat))}
    last = len(position)
    return sorted(stored, key=lambda r: position.get(r["run_id"], last))  # stable: the rest keep their order


def listed(a: np.ndarray) -> list:
    """``a.tolist()`` with NaN and infinities as None (JSON ``null``, as the store keeps them),
    so that the store need not walk every number to find them.

    Example:
        >>> listed(np.array([0.5, np.nan], np.float32))
        [0.5, None]
    """
    a = np.asarray(a)
    bad = ~np.isfinite(a) if a.dtype.kind == "f" else None
    if bad is None or not bad.any():
        return a.tolist()
    out = a.astype(object)  # Python floats, as tolist() gives them
    out[bad] = None
    return out.tolist()


def _record(run: cfg.RunConfig, out: dict[str, Any]) -> dict[str, Any]:
    reason = out["stop_reason"]
    return {
        **{k: v for k, v in out.items() if k != "curves"},
        "config": run.as_dict(), "seed": int(run["seed"]),
        "status": "diverged" if reason == "diverged" else "finished",
        "curves": {k: ({f: listed(a) for f, a in v.items()} if k == "within" else listed(v))
                   for k, v in out["curves"].items()},  # wrong: ints
        "bpkit_version": bpkit.__version__, "jax_version": jax.__version__,
        "device": jax.devices()[0].device_kind,
    }


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="run", desc="sweep", dynamic_ncols=True)
