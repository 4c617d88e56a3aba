"""FANN's C library trains a sweep's runs again, from the same initial weights for the same epochs, and its test
loss and test error are put beside bpkit's, per problem and method, with bootstrap 95% intervals over seeds.

    python3 scripts/fann_side_by_side.py experiments/fann_sets.toml results/fann_sets.sqlite

Each run must be one FANN can train alike (bpkit.fann.like says what it refuses).  FANN runs in the run's
precision (libfloatfann for float32).  A row's verdict is a rule: "same" where the two mean test errors'
intervals overlap, else "apart".
"""

from __future__ import annotations

import argparse
import sys

from bpkit import config as cfg
from bpkit import fann, stats
from bpkit.store import Store
from bpkit.tables import Table


def _mean(values) -> str:
    e = stats.bootstrap_mean(values)
    return f"{e.value:.4g} [{e.lo:.4g}, {e.hi:.4g}]"


def table(rows: list[dict]) -> Table:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["problem"], r["method"]), []).append(r)
    body = []
    for (problem, method), rs in groups.items():
        b, f = (stats.bootstrap_mean([r[f"{k}_test_error"] for r in rs]) for k in ("bpkit", "fann"))
        same = b.lo <= f.hi and f.lo <= b.hi
        body.append([problem, method, str(len(rs)), _mean([r["bpkit_test_error"] for r in rs]),
                     _mean([r["fann_test_error"] for r in rs]), _mean([r["bpkit_test_loss"] for r in rs]),
                     _mean([r["fann_test_loss"] for r in rs]), "same" if same else "apart"])
    return Table("fann_side_by_side", ["problem", "method", "seeds", "bpkit test error", "FANN test error",
                                       "bpkit test loss", "FANN test loss", "verdict"], body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("store")
    args = ap.parse_args(argv)
    try:
        if fann.load("float") is None:
            raise ValueError(fann.WHY_MISSING)
        runs = cfg.expand(cfg.load(args.config))
        with Store(args.store, readonly=True) as store:
            stored = {r["run_id"]: r for r in store.runs()[0]}
        precision = "double" if runs[0].dtype == "float64" else "float"
        rows = fann.side_by_side(runs, stored, precision)
        if not rows:
            raise ValueError(f"{args.store} holds none of {args.config}'s runs; run the sweep first")
    except ValueError as e:
        print(f"fann_side_by_side: error: {e}", file=sys.stderr)
        return 2
    print(table(rows).markdown())
    gap = max(abs(r["bpkit_test_error"] - r["fann_test_error"]) for r in rows)
    print(f"\n{len(rows)} runs; the largest test-error difference of one run between bpkit and FANN: {gap:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
