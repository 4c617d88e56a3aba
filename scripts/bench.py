"""bpkit benchmarks: ratios against peers measured side by side in one run.

Machines here are shared and noisy, so every figure is a ratio of two timings
taken interleaved (A B A B ...) in the same process, reported as the median
over rounds.  Never a test: nothing here asserts.

Benchmarks:
  grad  hand-written backprop vs jax.grad, both jitted, 64-64-10 sigmoid net,
        half MSE, batch 1797 (scikit-learn's digits; random data of that shape
        when scikit-learn is not installed).  Target: hand-written <= 1.0x jax.grad.
        Two hand-written rules are timed: "exact" (the default: f'(z) = s(z)s(-z),
        accurate in saturation, one more exp per unit than jax.grad) and
        "output_form" (f' = a(1-a) from the cached output, jax.grad's own algebra).

Usage:
  python scripts/bench.py [--rounds 15] [--dtype float32] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from bpkit import MLP, autodiff, backprop


def digits(dtype) -> tuple[jax.Array, jax.Array, str]:
    """Digits (1797 x 64, 10 classes), standardised; one-hot targets."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1797, 64))
        labels = rng.integers(0, 10, 1797)
        source = "random data of digits' shape (scikit-learn not installed)"
    else:
        d = load_digits()
        x, labels = d.data, d.target
        source = "scikit-learn digits"
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    y = np.eye(10)[labels]
    return jnp.asarray(x, dtype), jnp.asarray(y, dtype), source


def interleaved(fns: dict[str, callable], rounds: int, inner: int) -> dict[str, list[float]]:
    """Seconds per call for each fn, measured in alternation, ``rounds`` samples each."""
    for f in fns.values():  # compile and warm up
        jax.block_until_ready(f())
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                out = f()
            jax.block_until_ready(out)
            times[k].append((time.perf_counter() - t) / inner)
    return times


def bench_grad(rounds: int, dtype) -> dict:
    x, y, source = digits(dtype)
    net = MLP((64, 64, 10), hidden="sigmoid", output="sigmoid")
    params = net.init(jax.random.key(0), dtype=dtype)
    rules = ("exact", "output_form")
    fns = {r: jax.jit(partial(backprop, net, loss="mse", rule=r)) for r in rules}
    fns["jax.grad"] = jax.jit(partial(autodiff, net, loss="mse"))
    ref = fns["jax.grad"](params, x, y)
    # Same numbers first: a fast wrong gradient is no result.
    errs = {
        r: max(
            float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
            for a, b in zip(jax.tree.leaves(fns[r](params, x, y)), jax.tree.leaves(ref))
        )
        for r in rules
    }
    t = interleaved({k: (lambda f=f: f(params, x, y)) for k, f in fns.items()}, rounds, inner=20)
    out = {
        "name": "grad",
        "problem": f"64-64-10 sigmoid, half MSE, batch {x.shape[0]}, {jnp.dtype(dtype).name}, {source}",
        "jax_grad_ms": 1e3 * statistics.median(t["jax.grad"]),
        "target": "hand-written <= 1.0x jax.grad",
        "rules": {},
    }
    for r in rules:
        ratios = [h / a for h, a in zip(t[r], t["jax.grad"])]
        out["rules"][r] = {
            "ms": 1e3 * statistics.median(t[r]),
            "ratio": statistics.median(ratios),
            "ratio_iqr": [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))],
            "met": statistics.median(ratios) <= 1.0,
            "max_rel_diff": errs[r],
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.dtype(args.dtype)

    env = {
        "device": str(jax.devices()[0].device_kind),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "python": platform.python_version(),
    }
    print(f"bpkit bench on {env['backend']} ({env['device']}), jax {env['jax']}")
    results = [bench_grad(args.rounds, dtype)]
    for r in results:
        print(f"[{r['name']}] {r['problem']}; jax.grad {r['jax_grad_ms']:.3f} ms per gradient")
        for rule, m in r["rules"].items():
            print(
                f"  hand-written ({rule:<11}) {m['ms']:.3f} ms: {m['ratio']:.3f}x jax.grad "
                f"(IQR {m['ratio_iqr'][0]:.3f}-{m['ratio_iqr'][1]:.3f}); target {r['target']}: "
                f"{'met' if m['met'] else 'NOT met'}; max rel diff {m['max_rel_diff']:.1e}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
