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
from bpkit.store import Store

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
    """
    runs = cfg.expand(flat)
    ids = cfg.unique_ids(runs)
    done = store.run_ids()
    todo = [r for r, i in zip(runs, ids, strict=True) if i not in done]
    writer = distributed.is_writer()
    chunks = run_grid(todo, runs, chunk_size, memory_budget_mb, compile_ahead=compile_ahead, lanes=lanes)
    if writer:
        store.add_grid(ids)  # a report reads the runs in this order
        store.set_compare({"tune_seeds": list(flat.get("compare.tune_seeds", ()))})
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
