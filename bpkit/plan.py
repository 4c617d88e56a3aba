"""A sweep's plan: its runs grouped by compiled program, each group checked and sized before any work.

Runs are grouped by everything that shapes the compiled program (data set, sizes,
activations, loss, source, optimizer kind and its static settings, batch size,
stopping rules): :meth:`bpkit.spec.Run.static_key`.  Inside a group the vmapped
fields (:data:`bpkit.spec.VMAPPED`: the seed, learning rate, momentum, ...) are
data.  Where an epoch is tiny (:func:`merges_activation`), compiling
a program costs more than running its runs, and runs that differ in their hidden
activation alone share a program too, the activation a code among the group's
(``Experiment.hidden_choices``).  Each group gets a *chunk*, the number of runs one call
of its program takes (the last call padded): the runs of one activation, bounded by the
memory an estimate gives each run (:func:`run_bytes`), and a number of *lanes*
(:func:`group_lanes`).

The plan depends only on the config and the machine, never on which runs are still
to do: a resumed sweep compiles the programs of an uninterrupted one, so it gives the
uninterrupted sweep's numbers.  Across configs a run's last bits may differ: on CPU the
vmapped width (the chunk, or the lanes) changes how XLA compiles the program, and a
line-search CG run amplifies that (parity-3 PR+ CG against 64 lanes: 2, 4, 8, 16, 20, 24,
32 and 48 lanes agreed bitwise, 1, 3, 5, 6, 7, 10, 12, 14, 33 and 62 did not; on digits
every width tried differed in the last bits, SGD too).  One CG step from the same state
differs between widths although the loss, its gradient and the tree dot products alone do
not: the cause is in how the whole step is fused.  Kernels whose results do not depend on
the width are the speed issue's item 2.  For the same reason a run in a program shared by
several activations differs in its last bits from the same run in a program of its own
(each activation's values are bitwise its own; the program around them fuses otherwise),
and so a run's bits depend on the activations its sweep holds beside its own.

Example:
    >>> groups = plan(runs, chunk_size=64)   # doctest: +SKIP
    >>> [(len(g.members), g.chunk, g.lanes) for g in groups]   # doctest: +SKIP
    [(80, 64, None), (80, 64, 8)]
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import jax
import numpy as np

from bpkit import activations as acts
from bpkit import datasets, experiment
from bpkit.spec import Run

Lanes = int | Literal["auto"] | None
AUTO_LANES = 8  # lanes of a queued group on CPU under lanes="auto"
AUTO_LANES_HEAVY_SEARCH = 4  # ... of a CG or L-BFGS group whose epoch is heavy
AUTO_WORK = 10**6  # examples x weights per epoch from which lanes="auto" queues every optimizer on CPU
MERGE_WORK = 10_000  # examples x weights per epoch below which merges_activation holds
# A run's work to its epoch budget (examples x weights x max_epochs) below which a later stage of a staged sweep
# runs a group larger than the first stage's chunk through the first stage's program, in several chunks: a pass
# then costs less than a compile.  Study 6's groups lie at or below 5e6 (a pass 0.03-0.3 s, a compile 2-8 s),
# two spirals' at 8e8 (a pass of 30,000 epochs takes tens of seconds).
STAGE_PASS_WORK = 10**8
MERGEABLE_SOURCES = ("autodiff", "exact", "output_form", "no_derivative", "fahlman_offset")


class Group(NamedTuple):
    """One compiled program's share of a sweep: its runs, their data and pieces, the chunk, the
    memory estimate per run and the lanes (None: one per run of the chunk)."""

    members: list[Run]
    data: datasets.Dataset
    experiment: experiment.Experiment
    chunk: int
    mb_per_run: float
    lanes: int | None = None


def group_runs(runs: list[Run], loaded: dict[Any, datasets.Dataset] | None = None) -> dict[tuple, list[Run]]:
    """Runs by compiled program, in order: one group per static key (all but the vmapped fields), less
    the hidden activation where :func:`merges_activation` holds (a tiny epoch: the compile costs more
    than the runs, so runs that differ in their activation alone share a program).  ``loaded``: the
    data sets read so far, by ``run.data`` (each read once; filled here)."""
    loaded = {} if loaded is None else loaded
    groups: dict[tuple, list[Run]] = {}
    merges: dict[tuple, bool] = {}
    for r in runs:
        key = r.static_key()
        if key not in merges:
            merges[key] = merges_activation(r, data_of(r, loaded))
        if merges[key]:
            key = tuple(kv for kv in key if kv[0] != experiment.ACTIVATION)
        groups.setdefault(key, []).append(r)
    return groups


def data_of(run: Run, loaded: dict[Any, datasets.Dataset]) -> datasets.Dataset:
    """``run``'s data set (:func:`bpkit.experiment.load_data`), read once per ``run.data`` into ``loaded``."""
    if run.data not in loaded:
        loaded[run.data] = experiment.load_data(run)
    return loaded[run.data]


def merges_activation(run: Run, data: datasets.Dataset) -> bool:
    """Whether runs like ``run`` that differ in their hidden activation alone share one compiled program, the
    activation a code (:func:`bpkit.activations.switched`): where a program's compile costs more than its
    runs, i.e. a tiny epoch (:func:`epoch_work` below :data:`MERGE_WORK`), and the gradient source reads
    no activation's name or compile-time constant (FANN's clips, f'(0)).

    Example:
        >>> merges_activation(xor_run, experiment.load_data(xor_run))   # doctest: +SKIP
        True
    """
    return (epoch_work(run, data) < MERGE_WORK and run.source in MERGEABLE_SOURCES
            and acts.get(run.network.activation).elementwise)


def num_params(run: Run, data: datasets.Dataset) -> int:
    """Weights and biases of one run's network on ``data``."""
    return experiment.network(run, data).num_params


def run_bytes(run: Run, data: datasets.Dataset) -> int:
    """An upper estimate of one run's live memory inside the vmapped program.

    Params-sized buffers (params, candidate params, gradients, optimizer state, best
    params, the line search's copies: 12 of them), the history (6 x max_epochs, times
    1 + m with ``training.measures_per_epoch = m > 1``), and activations for a batch and
    for the full-data measurement (z, a and delta per unit), doubled for XLA's temporaries.
    """
    itemsize = np.dtype(run.dtype).itemsize
    units = data.inputs + sum(run.network.hidden) + data.outputs
    n = len(data.x_train)
    bs = min(run.training.batch_size, n) if isinstance(run.training.batch_size, int) else n
    m = run.training.measures_per_epoch
    floats = 12 * num_params(run, data) + 6 * run.training.max_epochs * (1 if m == 1 else 1 + m) + 3 * units * (bs + n)
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


def chunk_for_budget(run: Run, data: datasets.Dataset, budget_mb: float | None) -> int:
    """How many runs of this group fit in ``budget_mb`` megabytes at once, and in the memory
    available now.

    Raises:
        ValueError: one run alone needs more than either; nothing has been compiled yet.
    """
    if budget_mb is not None and not budget_mb > 0:
        raise ValueError(f"the memory budget must be positive (megabytes), got {budget_mb!r}")
    one = run_bytes(run, data) / 2**20
    what = (f"one run of {data.name} with hidden {list(run.network.hidden)} and "
            f"max_epochs {run.training.max_epochs} needs an estimated {one:,.0f} MB")
    fix = "lower training.max_epochs or network.hidden"
    if run.training.measures_per_epoch > 1:
        what += f" with {run.training.measures_per_epoch} measures per epoch"
        fix = "lower training.max_epochs, training.measures_per_epoch or network.hidden"
    if budget_mb is not None and one > budget_mb:
        raise ValueError(f"{what}, more than the memory budget of {budget_mb:,.0f} MB; {fix}, "
                         f"or raise --memory-budget")
    free = available_mb()
    if free is not None and one > free:
        raise ValueError(f"{what}, more than the {free:,.0f} MB this machine has available; {fix}")
    limits = [x for x in (budget_mb, free) if x is not None]
    return max(1, int(min(limits) // one)) if limits else 2**31 - 1


def device_chunk(want: int) -> int:
    """A chunk of at least ``want`` runs, rounded up to a multiple of the device count."""
    n_dev = len(jax.devices())
    return max(n_dev, math.ceil(want / n_dev) * n_dev)


def check_lanes(lanes: Lanes) -> None:
    """Raise a one-line ValueError unless ``lanes`` is None, "auto" or a positive int."""
    counted = isinstance(lanes, int) and not isinstance(lanes, bool) and lanes >= 1
    if not (lanes is None or lanes == "auto" or counted):
        raise ValueError(f"lanes must be a positive integer (runs stepped side by side), 'auto' or None, got {lanes!r}")


def epoch_work(run: Run, data: datasets.Dataset) -> int:
    """One run's epoch in multiply-adds of the forward pass: training examples x weights."""
    return len(data.x_train) * num_params(run, data)


def pass_work(run: Run, data: datasets.Dataset) -> int:
    """A run's work to its epoch budget: :func:`epoch_work` x ``training.max_epochs``."""
    return epoch_work(run, data) * run.training.max_epochs


def group_lanes(run: Run, data: datasets.Dataset, chunk: int, lanes: Lanes) -> int | None:
    """How many lanes a group's chunk of ``chunk`` runs steps through (None: one per run).

    ``lanes="auto"``, on CPU: :data:`AUTO_LANES` for CG and L-BFGS, whose line searches make
    the runs of a chunk cost very different numbers of evaluations, and for every optimizer
    once an epoch is heavy (:func:`epoch_work` >= :data:`AUTO_WORK`), where a lane's step
    costs about its share of the work and runs that stop early free their lane; both at once,
    :data:`AUTO_LANES_HEAVY_SEARCH`, since every lane pays a full evaluation for each
    line-search step of the lane that needs most.  One lane per run otherwise (a tiny step
    costs the loop's overhead, whatever the width) and on accelerators.  The numbers were
    chosen by timing the flagship's groups at several widths (the commit messages give them).

    Example:
        >>> group_lanes(run, data, 80, "auto")  # doctest: +SKIP
        8
    """
    if lanes == "auto":
        search = run.optimizer.name in ("cg", "lbfgs")
        heavy = epoch_work(run, data) >= AUTO_WORK
        if jax.default_backend() != "cpu" or not (search or heavy):
            lanes = None
        else:
            lanes = AUTO_LANES_HEAVY_SEARCH if search and heavy else AUTO_LANES
    return None if lanes is None else device_chunk(min(lanes, chunk))


def check_dtypes(runs: list[Run]) -> None:
    """Raise a one-line ValueError if a run asks for float64 while JAX's 64-bit mode is off: JAX
    would truncate it to float32 (with only a warning) and the store would call float32 numbers float64."""
    if any(r.dtype == "float64" for r in runs) and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
        raise ValueError('dtype "float64" needs JAX\'s 64-bit mode, which is off: set JAX_ENABLE_X64=1 '
                         '(or use dtype "float32")')


def plan(runs: list[Run], all_runs: list[Run] | tuple[list[Run], ...] | None = None, chunk_size: int | None = 64,
         memory_budget_mb: float | None = None, fit: bool = False, lanes: Lanes = "auto") -> list[Group]:
    """Group ``runs`` by program and check every group before anything is compiled.

    Loads each data set and builds each group's pieces (:func:`bpkit.experiment.build`:
    every check that needs the data), and fixes each group's chunk: ``chunk_size`` (with
    ``fit``, at most the group's size in ``all_runs``, so a small group is not padded), or
    without it the group's size in ``all_runs`` (the whole sweep), capped by what fits
    ``memory_budget_mb`` and the memory available.  A group's size counts each hidden
    activation's runs apart (as if not merged).  ``all_runs`` may be a tuple of run lists, a
    staged sweep's stages (:func:`bpkit.sweep.run_sweep`), so that one program serves every stage:
    a group's size is then its size in the first stage, where a later stage runs it in several
    chunks cheaply (:func:`pass_work` below :data:`STAGE_PASS_WORK`), else its largest in any
    stage (one pass per stage; a larger later stage costs one more compile).  Whether a group's
    momentum is fixed at 0 is read from ``all_runs`` too.

    Raises:
        ValueError: bad input, or a run too large for the memory (one line each).
    """
    if chunk_size is None and memory_budget_mb is None:
        raise ValueError("give a chunk size, a memory budget, or both")
    check_lanes(lanes)
    check_dtypes(runs)
    loaded: dict[Any, datasets.Dataset] = {}
    stages = all_runs if isinstance(all_runs, tuple) else (runs if all_runs is None else all_runs,)
    grouped = [group_runs(s, loaded) for s in stages]
    groups = []
    for key, members in group_runs(runs, loaded).items():
        first = members[0]
        data = data_of(first, loaded)
        full = [g.get(key, []) for g in grouped]
        choices = tuple(dict.fromkeys(r.network.activation for f in full for r in f))
        sizes = [max(sum(r.network.activation == c for r in f) for c in choices) for f in full if f]
        size = sizes[0] if pass_work(first, data) < STAGE_PASS_WORK else max(sizes)
        want = size if chunk_size is None else min(chunk_size, size) if fit else chunk_size
        chunk = device_chunk(min(want, chunk_for_budget(first, data, memory_budget_mb)))
        plain = all(r.optimizer.momentum == 0 for f in full for r in f)
        groups.append(Group(members, data, experiment.build(first, data, plain, choices), chunk,
                            run_bytes(first, data) / 2**20, group_lanes(first, data, chunk, lanes)))
    return groups
