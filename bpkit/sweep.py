"""A sweep into a results store: every run of a config not stored yet, each chunk one transaction.

:func:`run_sweep` expands a config (:mod:`bpkit.config`), skips the runs the store
holds, runs the rest through the engine (:func:`bpkit.engine.run_grid`) and writes
each finished chunk in one transaction, so a sweep killed at any point and run again
ends with exactly the runs of an uninterrupted one.  In a multi-process sweep
(:mod:`bpkit.distributed`) every process computes its devices' share and process 0
alone writes.

Example:
    >>> from bpkit import config
    >>> from bpkit.store import Store
    >>> counts = run_sweep(config.load("experiments/xor.toml"), Store("results/xor.sqlite"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import bpkit
from bpkit import config as cfg
from bpkit import distributed
from bpkit.engine import Outcome, run_grid
from bpkit.plan import Lanes, group_runs
from bpkit.spec import Run
from bpkit.store import Store, config_hash

# The defaults of a sweep's chunking, the library's and `bpkit sweep`'s alike: each group in one chunk of its own
# size, capped by a memory budget.  The chunk is the number of runs vmapped side by side, and a run's last bits
# depend on it: one default for both keeps a config's numbers the same through either.
CHUNK_SIZE: int | None = None
MEMORY_BUDGET_MB = 1024.0


def run_sweep(
    flat: dict[str, Any],
    store: Store,
    chunk_size: int | None = CHUNK_SIZE,
    progress: bool = True,
    after_chunk: Callable[[int], None] | None = None,
    memory_budget_mb: float | None = MEMORY_BUDGET_MB,
    compile_ahead: int | None = None,
    lanes: Lanes = "auto",
) -> dict[str, int]:
    """Run every run of the (validated) config not yet in ``store``; returns counts.

    Counts: ``runs`` in the config, ``skipped`` (stored before this sweep started),
    ``written`` (stored by this sweep), ``meanwhile`` (computed here, but another process
    stored them first), ``groups`` (compiled programs).  ``chunk_size``, ``memory_budget_mb``,
    ``compile_ahead``, ``lanes``: see :func:`bpkit.engine.run_grid`.  ``after_chunk(written)``
    is called after each chunk is stored.

    With ``compare.tune_first``, in two stages: every setting on ``compare.tune_seeds``, then on
    the other seeds only the setting each (problem, criterion, method, activation) chose there
    (:func:`tuned_configs`).  So a comparison reports on many held-out seeds at the cost of one
    setting per method, and chooses by the rule :func:`bpkit.compare.tune` applies to a sweep of every
    setting on every seed, which reads the tuning seeds' runs alone; ``runs`` counts both stages.  A
    second-stage group keeps the first stage's chunk, so one compiled program serves both stages (the
    persistent cache hands it over), unless it is larger than that chunk and a pass over it is dear
    (:func:`bpkit.plan.plan`'s stages): then it gets a chunk of its own size, one more compile against
    chunks run one after another.  Either way the chunks depend on the config alone.
    """
    how: dict[str, Any] = dict(chunk_size=chunk_size, progress=progress, after_chunk=after_chunk,
                               memory_budget_mb=memory_budget_mb, compile_ahead=compile_ahead, lanes=lanes)
    tune = list(flat.get("compare.tune_seeds", ()))
    if not flat.get("compare.tune_first"):
        return run_runs(cfg.expand(flat), store, tune, **how)
    if jax.process_count() > 1:
        raise ValueError("compare.tune_first runs in one process: its second stage reads the first stage's runs "
                         "from the store; run it without --num-processes")
    first = cfg.expand({**flat, "seeds": tune})
    _check_criteria(first)
    counts = run_runs(first, store, tune, **how)
    keep = tuned_configs(store, cfg.unique_ids(first))
    rest = cfg.expand({**flat, "seeds": [s for s in flat["seeds"] if s not in tune]})
    second = run_runs([r for r in rest if config_hash(r.as_dict()) in keep], store, tune, sized_by=first, **how)
    return {k: counts[k] + second[k] for k in counts}


def tuned_configs(store: Store, ids: list[str]) -> set[str]:
    """The config hashes of the settings chosen on the runs ``ids`` (the tuning seeds' runs of every
    setting, in the grid's order): one per (problem, criterion, method, activation), by
    :func:`bpkit.compare.answers`' rule."""
    from bpkit import compare

    runs, errors = store.runs(each=compare.slim, ids=set(ids))
    if errors or len(runs) < len(ids):
        raise ValueError(f"{store.path}: {len(ids) - len(runs)} tuning runs are missing or damaged "
                         f"({errors[0] if errors else 'not stored'}); nothing more was run")
    at = {i: k for k, i in enumerate(ids)}
    runs.sort(key=lambda r: at[r["run_id"]])
    config_of = {r["run_id"]: r["config_hash"] for r in runs}
    return {config_of[a.chosen.run_ids[0]] for a in compare.answers(runs)}


def _check_criteria(runs: list[Run]) -> None:
    from bpkit import compare

    for r in runs:
        if not compare.criteria(r.as_dict()):
            raise ValueError(f"compare.tune_first chooses each setting by its success, but run {r.label or r.seed!r} "
                             f"has no criterion: set training.goal, training.criterion_40_20_40 or training.bit_fail")


def run_runs(runs: list[Run], store: Store, tune_seeds: list[int] | tuple[int, ...] = (), *,
             chunk_size: int | None = CHUNK_SIZE, progress: bool = True,
             after_chunk: Callable[[int], None] | None = None, memory_budget_mb: float | None = MEMORY_BUDGET_MB,
             compile_ahead: int | None = None, lanes: Lanes = "auto",
             sized_by: list[Run] | None = None) -> dict[str, int]:
    """:func:`run_sweep` of runs already expanded (:class:`bpkit.spec.Run`, e.g. a stored run's config
    changed by :meth:`~bpkit.spec.Run.replace`); ``tune_seeds`` is recorded as the comparison's.
    ``sized_by``: an earlier stage's runs, whose programs serve these runs where a group fits one
    of its chunks or a pass is cheap (:func:`bpkit.plan.plan`'s stages)."""
    ids = cfg.unique_ids(runs)
    done = store.run_ids()
    todo = [r for r, i in zip(runs, ids, strict=True) if i not in done]
    writer = distributed.is_writer()
    chunks = run_grid(todo, runs if sized_by is None else (sized_by, runs), chunk_size, memory_budget_mb,
                      compile_ahead=compile_ahead, lanes=lanes)
    if writer:
        store.add_grid(ids)  # a report reads the runs in this order
        store.set_compare({"tune_seeds": list(tune_seeds)})
    bar = _progress(len(todo), progress and writer)
    written = meanwhile = 0
    for chunk in chunks:
        if not writer:  # in a multi-process sweep, process 0 alone writes; the others only compute
            continue
        added = store.add([record(run, out) for run, out in chunk])
        written += added
        meanwhile += len(chunk) - added
        bar.update(len(chunk))
        if after_chunk:
            after_chunk(written)
    bar.close()
    return {"runs": len(runs), "skipped": len(runs) - len(todo), "written": written,
            "meanwhile": meanwhile, "groups": len(group_runs(todo))}


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


def record(run: Run, out: Outcome) -> dict[str, Any]:
    """The store's row of ``run``'s :class:`bpkit.engine.Outcome`: plain data (curves as lists,
    non-finite numbers as None), the config as its flat dict, and what ran it."""
    scalars = {k: v for k, v in out._asdict().items() if k != "curves"}
    return {
        **scalars,
        "config": run.as_dict(), "seed": int(run.seed),
        "status": "diverged" if out.stop_reason == "diverged" else "finished",
        "curves": {k: ({f: listed(a) for f, a in v.items()} if k == "within" else listed(v))
                   for k, v in out.curves.items()},  # wrong: ints
        "bpkit_version": bpkit.__version__, "jax_version": jax.__version__,
        "device": jax.devices()[0].device_kind,
    }


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="run", desc="sweep", dynamic_ncols=True)
