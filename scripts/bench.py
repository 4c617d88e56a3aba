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

  online    online learning on digits (64-64-10 sigmoid, half MSE, one update per
            example, lr 0.1): bpkit's compiled loop vs the minimal fused loop (one
            lax.scan of jax.grad steps), FANN's C library (fann_train_epoch, incremental),
            a PyTorch eager per-example loop and a plain NumPy loop.  Target >= 0.9x the
            minimal loop (measuring every 10 epochs).
  batch     batch gradient descent epochs per second, same net and data, vs the
            minimal fused loop (lax.fori_loop of jax.grad steps), FANN (batch) and
            PyTorch.  Target >= 0.9x the minimal loop.
  cg        PR+ CG and L-BFGS on the small CMU problems (XOR 2-2-1, parity-3 3-3-1, 8-3-8
            encoder; sigmoid, half MSE), 5 starts each, vs scipy.optimize.minimize (CG,
            L-BFGS-B) driven by the same jitted JAX value-and-grad: wall time to reach
            scipy's loss after 100 iterations, with restarts (a start that ends in another
            basin costs its time and counts no success).  Target >= 5x faster.  (One start on digits was ill-posed:
            from it bpkit's CG ended on a saturated plateau scipy could not leave either.)
  optimistix  PR+ CG vs optimistix.NonlinearCG on digits 64-32-10: loss after 200
            iterations from the same start (target: lower).
  scg       SCG vs PR+ CG on the same problem: gradient evaluations to reach
            the loss PR+ CG has after 100 iterations.

  sweep     a 64-seed vmapped sweep vs the same 64 runs one after another (each
            compiled once): parity-3 3-3-1 tanh, online SGD, 300 epochs.  Target >= 10x.
            Beside it, the same two ways for a minimal fused run (a scan of shuffled
            jax.grad steps): what vmapping buys on this machine at all.
  memory    peak memory (max RSS of a fresh process) of a 2,000-run sweep in one
            chunk vs with the default 1024 MB chunk budget, with a 16 MB one, and the
            floor: one run of the same program in a fresh process.
  flagship  wall time of the README's main command (sweep + report), from scratch.
  firstrun  one small run (XOR 2-2-1, online) in a fresh process with a warm cache, end to end.
            Target <= 3 s.
  fannsets  FANN's own benchmark sets (parity8, two-spiral, thyroid, robot, mushroom; --fann-datasets),
            each algorithm as FANN runs it (incremental, batch, iRPROP-, quickprop, with FANN's error
            functions and clips): a 5-epoch trajectory check against FANN in float64 first (to 1e-8;
            a pair that fails it is not timed), then epochs per second side by side.  Targets: online
            >= 1.5x FANN, full batch >= 3x FANN.

Peers that are not installed are skipped with a line saying so.  PyTorch is
not in the `bench` extra (a plain requirement pulls a multi-GB CUDA build):
install a CPU build yourself.  FANN 2.2 is a system library (Debian: apt-get
install libfann-dev), reached through the conformance tests' ctypes binding
(bpkit/fann.py): libfloatfann for float32, libdoublefann for float64.

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

from bpkit import MLP, autodiff, backprop, timing


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
    """Seconds per call of each fn, in alternation, each sample after an untimed call of the same fn
    (:func:`bpkit.timing.interleaved` with ``settle``: a call after a pause runs slower)."""
    return timing.interleaved(fns, rounds, inner, settle=True)


def bench_grad(rounds: int, dtype) -> dict:
    x, y, source = digits(dtype)
    net = MLP((64, 64, 10), hidden="sigmoid", output="sigmoid")
    params = net.init(jax.random.key(0), dtype=dtype)
    rules = ("exact", "output_form")
    fns = {r: jax.jit(partial(backprop, net, loss="mse", rule=r)) for r in rules}
    fns["jax.grad"] = jax.jit(partial(autodiff, net, loss="mse"))
    # The same program measured again: how far apart two identical programs land in this run
    # (output_form compiles to jax.grad's fusions and dots; only exact differs, by one exp per unit).
    fns["jax.grad again"] = jax.jit(partial(autodiff, net, loss="mse"))
    ref = fns["jax.grad"](params, x, y)
    # Same numbers first: a fast wrong gradient is no result.
    errs = {
        r: max(
            float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
            for a, b in zip(jax.tree.leaves(fns[r](params, x, y)), jax.tree.leaves(ref), strict=True)
        )
        for r in rules
    }
    t = interleaved({k: (lambda f=f: f(params, x, y)) for k, f in fns.items()}, rounds, inner=20)
    out = {
        "name": "grad",
        "problem": f"64-64-10 sigmoid, half MSE, batch {x.shape[0]}, {jnp.dtype(dtype).name}, {source}",
        "jax_grad_ms": 1e3 * statistics.median(t["jax.grad"]),
        "target": "hand-written <= 1.0x jax.grad",
        "noise_ratio": statistics.median(a / b for a, b in zip(t["jax.grad again"], t["jax.grad"], strict=True)),
        "rules": {},
    }
    for r in rules:
        ratios = [h / a for h, a in zip(t[r], t["jax.grad"], strict=True)]
        out["rules"][r] = {
            "ms": 1e3 * statistics.median(t[r]),
            "ratio": statistics.median(ratios),
            "ratio_iqr": [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))],
            "met": statistics.median(ratios) <= 1.0,
            "max_rel_diff": errs[r],
        }
    return out


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _torch_net(torch, params, x, y, dtype):
    """The same 2-layer sigmoid net in PyTorch: its leaf tensors, data, and forward pass."""
    tdt = torch.float32 if jnp.dtype(dtype) == jnp.float32 else torch.float64
    xt, yt = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y))
    layers = [torch.tensor(np.asarray(l[k]), dtype=tdt, requires_grad=True) for l in params for k in ("w", "b")]
    w1, b1, w2, b2 = layers

    def forward(xb):
        return torch.sigmoid(torch.sigmoid(xb @ w1 + b1) @ w2 + b2)

    return layers, xt, yt, forward


def _fann(dtype):
    """``(fann_ref, precision)``: FANN's C library through :mod:`bpkit.fann`, in ``dtype``'s
    precision; ``(None, precision)`` where it is not installed."""
    from bpkit import fann as fann_ref

    precision = "float" if jnp.dtype(dtype) == jnp.float32 else "double"
    return (fann_ref if fann_ref.load(precision) is not None else None), precision


def fann_epochs(params, x, y, algorithm: str, lr: float, epochs: int, dtype):
    """FANN's own training (``fann_train_epoch``) from ``params``: ``(run, after)``, where ``run()``
    does ``epochs`` epochs and ``after`` is the params after the first call; None without FANN.

    The same net: FANN's sigmoid with steepness 0.5 is the logistic function, its linear
    error function is half MSE, "incremental" is online learning in the data's order and
    "batch" one mean-gradient step an epoch.  Its update clips the output-form derivative:
    bpkit's ``fann_clipped`` source is that rule (tests/test_conformance_fann.py: equal to
    rounding level), so :func:`_fann_result` checks ``after`` against it.  Later calls go on
    from the weights the last one left (an epoch costs the same from any weights; FANN's
    ``fann_set_weight_array`` looks up every connection, O(n^2): 40 ms, more than an epoch).
    """
    import weakref

    fann_ref, precision = _fann(dtype)
    if fann_ref is None:
        return None
    sizes = (params[0]["w"].shape[0],) + tuple(layer["w"].shape[1] for layer in params)
    net = fann_ref.Net(sizes, precision=precision)
    net.set_params(params)
    net.set("learning_rate", lr)
    lib = net.lib
    lib.fann_set_training_algorithm(net.ann, {"incremental": fann_ref.INCREMENTAL, "batch": fann_ref.BATCH}[algorithm])
    data = net.train_data(np.asarray(x, np.float64), np.asarray(y, np.float64))

    def run():
        for _ in range(epochs):
            lib.fann_train_epoch(net.ann, data)

    run.net = net  # the network lives as long as the callable
    weakref.finalize(run, lib.fann_destroy_train, data)
    run()
    return run, net.params()


def _numpy_params(params):
    return [(np.array(l["w"], np.float64), np.array(l["b"], np.float64)) for l in params]


def _half_mse(params, xb, yb):
    """The benchmark net (64-64-10 sigmoid), written out: the minimal loops' loss."""
    a = xb
    for layer in params:
        a = jax.nn.sigmoid(a @ layer["w"] + layer["b"])
    return 0.5 * jnp.sum((a - yb) ** 2) / xb.shape[0]


def minimal_online(lr):
    """The minimal fused online epoch: one lax.scan of jax.grad steps, nothing else."""

    @jax.jit
    def epoch(params, x, y):
        def step(p, xy):
            g = jax.grad(_half_mse)(p, xy[0][None], xy[1][None])
            return jax.tree_util.tree_map(lambda w, d: w - lr * d, p, g), None

        return jax.lax.scan(step, params, (x, y))[0]

    return epoch


def minimal_batch(lr, epochs):
    """The minimal fused batch loop: lax.fori_loop of full-batch jax.grad steps."""

    @jax.jit
    def run(params, x, y):
        def step(_, p):
            g = jax.grad(_half_mse)(p, x, y)
            return jax.tree_util.tree_map(lambda w, d: w - lr * d, p, g)

        return jax.lax.fori_loop(0, epochs, step, params)

    return run


def bench_online(rounds: int, dtype) -> dict:
    """Online epochs (1797 updates each) on digits, 64-64-10 sigmoid, lr 0.1, fixed order.

    bpkit and the minimal fused loop run 10 epochs (times per epoch); bpkit once measuring
    after every epoch (full-data loss, gradient norm, 40-20-40 count: the default) and once
    every 10 epochs (``measure_every=10``).  NumPy and PyTorch run one epoch.
    """
    import optax

    from bpkit.loop import make_trainer
    from bpkit.stopping import StopRules

    x, y, source = digits(dtype)
    net = MLP((64, 64, 10), hidden="sigmoid", output="sigmoid")
    params = net.init(jax.random.key(0), dtype=dtype)
    lr, epochs = 0.1, 10
    key = jax.random.key(0)
    progs = {k: jax.jit(make_trainer(net, optax.sgd(lr), batch_size=1, shuffle=False, measure_every=every,
                                     rules=StopRules(max_epochs=epochs, stall_epochs=None)))
             for k, every in (("bpkit", 1), ("bpkit_every_10", 10))}
    one_epoch = jax.jit(make_trainer(net, optax.sgd(lr), batch_size=1, shuffle=False,
                                     rules=StopRules(max_epochs=1, stall_epochs=None)))
    minimal = minimal_online(lr)

    def minimal_run():
        p = params
        for _ in range(epochs):
            p = minimal(p, x, y)
        return p

    fns = {"bpkit": lambda: progs["bpkit"](params, x, y, key).params,
           "bpkit_every_10": lambda: progs["bpkit_every_10"](params, x, y, key).params,
           "minimal": minimal_run}
    per = {"bpkit": epochs, "bpkit_every_10": epochs, "minimal": epochs}
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def numpy_epoch():
        (w1, b1), (w2, b2) = _numpy_params(params)
        for i in range(xn.shape[0]):
            a0 = xn[i:i + 1]
            a1 = 1 / (1 + np.exp(-(a0 @ w1 + b1)))
            a2 = 1 / (1 + np.exp(-(a1 @ w2 + b2)))
            d2 = (a2 - yn[i:i + 1]) * a2 * (1 - a2)
            d1 = (d2 @ w2.T) * a1 * (1 - a1)
            w2 -= lr * a1.T @ d2
            b2 -= lr * d2[0]
            w1 -= lr * a0.T @ d1
            b1 -= lr * d1[0]
        return w1

    fns["numpy"] = numpy_epoch
    fann = fann_epochs(params, x, y, "incremental", lr, 1, dtype)
    if fann is not None:
        fns["fann"] = fann[0]
    torch = _torch()
    if torch is not None:

        def torch_epoch():
            layers, xt, yt, forward = _torch_net(torch, params, x, y, dtype)
            opt = torch.optim.SGD(layers, lr=lr)
            for i in range(xt.shape[0]):
                opt.zero_grad()
                (0.5 * ((forward(xt[i:i + 1]) - yt[i:i + 1]) ** 2).sum()).backward()
                opt.step()
            return layers[0]

        fns["torch"] = torch_epoch
    # Same numbers first: the NumPy loop is the reference update sequence.
    ref = numpy_epoch()
    got = np.asarray(one_epoch(params, x, y, key).params[0]["w"], np.float64)
    diff = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    t = interleaved(fns, max(3, rounds // 3), inner=1)
    out = {"name": "online", "problem": f"online epochs ({x.shape[0]} updates each), 64-64-10 sigmoid, "
           f"{jnp.dtype(dtype).name}, {source}", "max_rel_diff_vs_numpy": diff,
           "ms": {k: 1e3 * statistics.median(v) / per.get(k, 1) for k, v in t.items()}}
    fann_rule = jax.jit(make_trainer(net, optax.sgd(lr), batch_size=1, shuffle=False, source="fann_clipped",
                                     rules=StopRules(max_epochs=1, stall_epochs=None)))
    _fann_result(out, fann, lambda: fann_rule(params, x, y, key).params[0]["w"],
                 out["ms"]["fann"] / out["ms"]["bpkit"] if fann else None, dtype)
    out["speedup_vs_numpy"] = out["ms"]["numpy"] / out["ms"]["bpkit"]
    out["vs_minimal"] = out["ms"]["minimal"] / out["ms"]["bpkit"]
    out["vs_minimal_every_10"] = out["ms"]["minimal"] / out["ms"]["bpkit_every_10"]
    out["target"] = ">= 0.9x the minimal fused loop"
    out["met"] = out["vs_minimal_every_10"] >= 0.9
    if torch is not None:
        out["speedup_vs_torch"] = out["ms"]["torch"] / out["ms"]["bpkit"]
    return out


def bench_batch(rounds: int, dtype) -> dict:
    """Batch gradient descent epochs per second, 64-64-10 sigmoid on digits."""
    import optax

    from bpkit.loop import make_trainer
    from bpkit.stopping import StopRules

    x, y, source = digits(dtype)
    net = MLP((64, 64, 10), hidden="sigmoid", output="sigmoid")
    params = net.init(jax.random.key(0), dtype=dtype)
    epochs, lr = 100, 0.5
    run = jax.jit(make_trainer(net, optax.sgd(lr), rules=StopRules(max_epochs=epochs, stall_epochs=None)))
    key = jax.random.key(0)
    minimal = minimal_batch(lr, epochs)
    fns = {"bpkit": lambda: run(params, x, y, key).params, "minimal": lambda: minimal(params, x, y)}
    fann = fann_epochs(params, x, y, "batch", lr, epochs, dtype)
    if fann is not None:
        fns["fann"] = fann[0]
    torch = _torch()
    if torch is not None:

        def torch_run():
            layers, xt, yt, forward = _torch_net(torch, params, x, y, dtype)
            opt = torch.optim.SGD(layers, lr=lr)
            for _ in range(epochs):
                opt.zero_grad()
                (0.5 * ((forward(xt) - yt) ** 2).sum() / xt.shape[0]).backward()
                opt.step()
            return layers[0]

        fns["torch"] = torch_run
    t = interleaved(fns, max(3, rounds // 3), inner=1)
    out = {"name": "batch",
           "problem": f"batch GD, {epochs} epochs, 64-64-10 sigmoid, {jnp.dtype(dtype).name}, {source}",
           "epochs_per_s": {k: epochs / statistics.median(v) for k, v in t.items()},
           "target": ">= 0.9x the minimal fused loop"}
    out["vs_minimal"] = out["epochs_per_s"]["bpkit"] / out["epochs_per_s"]["minimal"]
    out["met"] = out["vs_minimal"] >= 0.9
    if torch is not None:
        out["speedup_vs_torch"] = out["epochs_per_s"]["bpkit"] / out["epochs_per_s"]["torch"]
    fann_rule = jax.jit(make_trainer(net, optax.sgd(lr), source="fann_clipped",
                                     rules=StopRules(max_epochs=epochs, stall_epochs=None)))
    _fann_result(out, fann, lambda: fann_rule(params, x, y, key).params[0]["w"],
                 out["epochs_per_s"]["bpkit"] / out["epochs_per_s"]["fann"] if fann else None, dtype)
    return out


def _fann_result(out: dict, fann, check, speedup: float | None, dtype) -> None:
    """Put FANN's speed beside bpkit's in ``out`` (or why it is absent), and how far FANN's weights
    after its first call land from ``check()``: bpkit's first-layer weights after the same epochs
    with FANN's own rule (source ``fann_clipped``)."""
    precision = _fann(dtype)[1]
    if fann is None:
        out["fann"] = f"skipped: its lib{precision}fann is not installed (Debian: apt-get install libfann-dev)"
        return
    ref = np.asarray(check(), np.float64)
    out["fann"] = {"speedup": speedup, "precision": precision,
                   "max_rel_diff": float(np.max(np.abs(fann[1][0]["w"] - ref)) / np.max(np.abs(ref)))}


# FANN's benchmark sets with the layers FANN's benchmark used (../shared/fann-datasets/README.md).
FANN_SETS = (("parity8", (8, 16, 1)), ("two-spiral", (2, 20, 10, 1)), ("thyroid", (21, 16, 8, 3)),
             ("robot", (48, 96, 3)), ("mushroom", (125, 32, 2)))
FANN_ALGORITHMS = ("incremental", "batch", "irprop", "quickprop")


def fann_sets_folder(given: str | None = None):
    """The folder of FANN's benchmark sets: ``given``, else $BPKIT_FANN_DATASETS, else ../shared/fann-datasets."""
    import os
    import pathlib

    default = pathlib.Path(__file__).resolve().parents[2] / "shared" / "fann-datasets"
    return pathlib.Path(given or os.environ.get("BPKIT_FANN_DATASETS") or default)


def _fann_setup(algorithm: str, n: int, f32):
    """FANN's settings for ``algorithm`` (its benchmark's: learning rate 0.7, the tanh error function for batch
    and iRPROP-, the linear one for incremental and quickprop, quickprop's decay -0.0001) and bpkit's optimizer,
    loss and batch size doing the same arithmetic.  FANN's batch step is ``(float)(0.7 / n)`` times the
    summed slope: bpkit's rate is that float times n, on the mean gradient."""
    from bpkit import fann as fann_ref
    from bpkit import optim

    per_example = f32(f32(0.7) / n) * n
    return {
        "incremental": (fann_ref.INCREMENTAL, 0, optim.make("sgd", learning_rate=f32(0.7)), "mse", 1),
        "batch": (fann_ref.BATCH, 1, optim.make("sgd", learning_rate=per_example), "atanh", None),
        "irprop": (fann_ref.RPROP, 1, optim.make("rprop", learning_rate=f32(0.1), variant="fann", eta_minus=0.5,
                                                  eta_plus=f32(1.2), min_step=0.0, max_step=50.0,
                                                  weight_limit=1500.0), "atanh", None),
        "quickprop": (fann_ref.QUICKPROP, 0, optim.make("quickprop", learning_rate=per_example, mu=1.75,
                                                         decay=f32(0.0001) / n, weight_limit=1500.0), "mse", None),
    }[algorithm]


def _fann_and_bpkit(sizes, algorithm, x, y, params, epochs, precision, dtype, measure_every):
    """``(fann_run, bpkit_run)``: each runs ``epochs`` epochs of ``algorithm`` from ``params`` and returns
    the params (FANN's in bpkit's layout, as NumPy)."""
    import weakref

    from bpkit import fann as fann_ref
    from bpkit.loop import make_trainer
    from bpkit.stopping import StopRules

    f32 = lambda v: float(np.float32(v))
    code, error, opt, loss, batch_size = _fann_setup(algorithm, len(x), f32)
    ref = fann_ref.Net(sizes, precision=precision)
    ref.set_params(params)
    ref.set("train_error_function", error)
    ref.set("learning_rate", 0.7)
    ref.set("quickprop_decay", -0.0001)
    ref.lib.fann_set_training_algorithm(ref.ann, code)
    data = ref.train_data(np.asarray(x, np.float64), np.asarray(y, np.float64))

    def fann_run():
        for _ in range(epochs):
            ref.lib.fann_train_epoch(ref.ann, data)
        return ref

    fann_run.net = ref
    weakref.finalize(fann_run, ref.lib.fann_destroy_train, data)
    net = MLP(sizes, hidden="sigmoid", output="sigmoid", sum_limit=600.0)
    # No gradient norm (FANN computes none): a batch epoch is then one forward and one backward pass
    # (FANN's rule's, measured at the epoch's end and taken by the next step), an online one measures a loss.
    run = jax.jit(make_trainer(net, opt, batch_size=batch_size, shuffle=False, source="fann_clipped", loss=loss,
                               measure_every=measure_every, grad_norm=False,
                               rules=StopRules(max_epochs=epochs, stall_epochs=None)))
    p = jax.tree.map(lambda v: jnp.asarray(v, dtype), params)
    xj, yj, key = jnp.asarray(x, dtype), jnp.asarray(y, dtype), jax.random.key(0)
    return fann_run, lambda: run(p, xj, yj, key).params


def bench_fann_sets(rounds: int, dtype, folder=None) -> dict:
    """bpkit against FANN 2.2's C library on FANN's own benchmark sets, per algorithm: first the
    trajectory check (5 epochs from the same weights in float64, libdoublefann: bpkit's weights after
    them relative to FANN's), then epochs per second in ``dtype``, side by side.  bpkit measures the
    loss every epoch in full batch (where that measurement is the next step's gradient) and once at
    the end online (FANN's incremental epoch measures nothing)."""
    from bpkit import datasets
    from bpkit import fann as fann_ref

    where = fann_sets_folder(folder)
    out = {"name": "fannsets", "problem": f"FANN's benchmark sets at {where}, {jnp.dtype(dtype).name}", "sets": []}
    if fann_ref.load("double") is None or fann_ref.load(_fann(dtype)[1]) is None:
        return {**out, "skipped": fann_ref.WHY_MISSING}
    if not (where / "parity8.train").is_file():
        return {**out, "skipped": f"FANN's benchmark sets are not at {where} (--fann-datasets PATH)"}
    for name, sizes in FANN_SETS:
        d = datasets.load_fann(where / f"{name}.train")
        x, y = d.x_train, d.y_train
        net = MLP(sizes, hidden="sigmoid", output="sigmoid")
        with jax.enable_x64(True):
            params = jax.tree.map(np.asarray, net.init(jax.random.key(0), scheme="uniform", scale=0.1,
                                                       dtype=jnp.float64))  # FANN's +-0.1
        weights = net.num_params
        epochs = int(np.clip(round(4e6 / (len(x) * weights)), 2, 200))
        for algorithm in FANN_ALGORITHMS:
            online = algorithm == "incremental"
            with jax.enable_x64(True):
                fann64, bpkit64 = _fann_and_bpkit(sizes, algorithm, x, y, params, 5, "double", jnp.float64, 1)
                theirs, mine = fann64().params(), bpkit64()
                gap = max(float(np.max(np.abs(np.asarray(m[k]) - t[k])) / np.max(np.abs(t[k])))
                          for m, t in zip(mine, theirs, strict=True) for k in ("w", "b"))
            row = {"set": name, "layers": "-".join(map(str, sizes)), "algorithm": algorithm, "examples": len(x),
                   "epochs": epochs, "check_max_rel_diff": gap, "check_ok": gap <= 1e-8}
            if row["check_ok"]:
                fann_run, bpkit_run = _fann_and_bpkit(sizes, algorithm, x, y, params, epochs, _fann(dtype)[1],
                                                      dtype, epochs if online else 1)
                t = interleaved({"fann": fann_run, "bpkit": bpkit_run}, max(3, rounds // 5), inner=1)
                ms = {k: 1e3 * statistics.median(v) / epochs for k, v in t.items()}
                goal = 1.5 if online else 3.0
                row.update(ms_per_epoch=ms, speedup=ms["fann"] / ms["bpkit"], target=f">= {goal}x FANN",
                           met=ms["fann"] / ms["bpkit"] >= goal)
            out["sets"].append(row)
    return out


def _cg_problem(dtype):
    x, y, source = digits(dtype)
    net = MLP((64, 32, 10), hidden="sigmoid", output="sigmoid")
    return net, net.init(jax.random.key(0), dtype=dtype), x, y, source


def _train_until(net, opt, params, x, y, rules):
    from bpkit.loop import make_trainer

    run = jax.jit(make_trainer(net, opt, rules=rules))
    key = jax.random.key(0)
    jax.block_until_ready(run(params, x, y, key))  # compile
    t = time.perf_counter()
    r = jax.block_until_ready(run(params, x, y, key))
    return r, time.perf_counter() - t


SMALL = (("xor", (2, 2, 1)), ("parity3", (3, 3, 1)), ("encoder8", (8, 3, 8)))  # the CMU problems, sigmoid units
QUASI_NEWTON = (("PR+ CG", "cg", "CG"), ("L-BFGS", "lbfgs", "L-BFGS-B"))  # (label, bpkit, scipy method)


def _scipy_run(vg, flat0, method: str, iters: int, dtype):
    """scipy.optimize.minimize from ``flat0`` for ``iters`` iterations, driven by the jitted ``vg``."""
    import scipy.optimize as so

    def fun(v):
        val, g = vg(jnp.asarray(v, dtype))
        return float(val), np.asarray(g, np.float64)

    opts = {"maxiter": iters, "gtol": 0.0} if method == "CG" else {"maxiter": iters, "gtol": 0.0, "ftol": 0.0}
    return so.minimize(fun, np.asarray(flat0, np.float64), jac=True, method=method, options=opts)


def bench_cg(rounds: int, dtype, starts: int = 5, iters: int = 100) -> dict:
    """In float64 whatever ``--dtype`` says: scipy keeps its iterates in float64, and in float32
    they reach losses (1e-26 on XOR) that a float32 loop cannot take as a goal."""
    with jax.enable_x64(True):
        return _bench_cg(rounds, jnp.float64, starts, iters)


def _bench_cg(rounds: int, dtype, starts: int, iters: int) -> dict:
    """PR+ CG and L-BFGS against scipy's CG and L-BFGS-B on the small CMU problems, from ``starts``
    initial weights each: scipy runs ``iters`` iterations (its own Python loop around the same jitted
    value-and-grad); bpkit's compiled loop runs until its loss is at most scipy's final loss (at most
    20x ``iters`` iterations).  "The same loss": within 1e-9 relative, or 1e-12 absolute where scipy
    went below it (rounding: XOR's half MSE reaches 1e-29).  Wall time per start is the median of
    ``rounds`` interleaved timings, compiling excluded on both sides.  Speed-up as the studies count
    cost, with restarts: scipy's mean time per start over bpkit's total time per start that reached
    scipy's loss (a start that ends elsewhere, in another basin, costs its time and counts no
    success)."""
    from bpkit import datasets, optim
    from bpkit.gradients import objective
    from bpkit.loop import make_trainer
    from bpkit.stopping import StopRules

    out = {"name": "cg", "problem": f"PR+ CG and L-BFGS vs scipy, {', '.join(f'{n} {s}' for n, s in SMALL)}, "
           f"sigmoid, half MSE, {jnp.dtype(dtype).name}, {starts} starts each, {iters} scipy iterations",
           "target": ">= 5x faster than scipy to scipy's loss, with restarts"}
    try:
        import scipy.optimize  # noqa: F401  (only to skip with a line where scipy is absent)
        from jax.flatten_util import ravel_pytree
    except ImportError:
        return {**out, "skipped": "scipy not installed (pip install -e '.[bench]')"}
    rows = []
    for name, sizes in SMALL:
        d = datasets.load(name)
        x, y = jnp.asarray(d.x_train, dtype), jnp.asarray(d.y_train, dtype)
        net = MLP(sizes, hidden="sigmoid", output="sigmoid")
        f = objective(net, "mse")
        for seed in range(starts):
            params = net.init(jax.random.key(seed), dtype=dtype)
            flat0, unravel = ravel_pytree(params)
            vg = jax.jit(jax.value_and_grad(lambda u: f(unravel(u), x, y)))  # noqa: B023  (traced here, at once)
            vg(flat0)
            for label, ours, theirs in QUASI_NEWTON:
                res = _scipy_run(vg, flat0, theirs, iters, dtype)
                goal = max(float(res.fun) * (1 + 1e-9), 1e-12)
                rules = StopRules(max_epochs=20 * iters, goal=goal, stall_epochs=None, min_grad_norm=None)
                run = jax.jit(make_trainer(net, optim.make(ours), rules=rules))
                key = jax.random.key(0)
                t = interleaved({"scipy": lambda: _scipy_run(vg, flat0, theirs, iters, dtype).x,  # noqa: B023  (called at once)
                                 "bpkit": lambda: run(params, x, y, key).epochs}, rounds, inner=1)  # noqa: B023  (called at once)
                # (both timed at once, inside this iteration)
                r = run(params, x, y, key)
                rows.append({"problem": name, "seed": seed, "method": label, "scipy_loss": float(res.fun),
                             "scipy_iterations": int(res.nit), "bpkit_iterations": int(r.epochs),
                             "reached": r.reason == "goal", "bpkit_reason": r.reason,
                             "scipy_s": statistics.median(t["scipy"]),
                             "bpkit_s": statistics.median(t["bpkit"])})
    out["runs"] = rows
    for label, _, _ in QUASI_NEWTON:
        mine = [r for r in rows if r["method"] == label]
        reached = sum(r["reached"] for r in mine)
        ours = sum(r["bpkit_s"] for r in mine) / reached if reached else float("inf")
        speedup = sum(r["scipy_s"] for r in mine) / len(mine) / ours
        per_start = [r["scipy_s"] / r["bpkit_s"] for r in mine if r["reached"]] or [0.0]
        out[label] = {"speedup": speedup, "reached": reached, "starts": len(mine),
                      "per_start_min": min(per_start), "per_start_median": statistics.median(per_start),
                      "misses": {k: sum(r["bpkit_reason"] == k for r in mine if not r["reached"])
                                 for k in sorted({r["bpkit_reason"] for r in mine if not r["reached"]})},
                      "met": speedup >= 5}
    return out


def bench_optimistix(rounds: int, dtype) -> dict:
    """bpkit's PR+ CG against optimistix.NonlinearCG (Polak-Ribiere) on digits 64-32-10: the loss
    after 200 iterations from the same initial weights (target: lower)."""
    from bpkit import optim
    from bpkit.gradients import objective
    from bpkit.stopping import StopRules

    net, params, x, y, source = _cg_problem(dtype)
    iters = 200
    out = {"name": "optimistix", "problem": f"PR+ CG, 64-32-10 sigmoid, half MSE, {jnp.dtype(dtype).name}, {source}",
           "target": "lower loss than optimistix.NonlinearCG after 200 iterations"}
    ours, secs = _train_until(net, optim.nonlinear_cg("pr+"), params, x, y,
                              StopRules(max_epochs=iters, stall_epochs=None))
    out.update({"bpkit_loss": float(ours.final_loss), "bpkit_s": secs, "bpkit_iterations": int(ours.epochs),
                "bpkit_reason": ours.reason})
    try:
        import optimistix as optx
    except ImportError:
        return {**out, "skipped": "optimistix not installed (pip install -e '.[bench]')"}
    f = objective(net, "mse")
    solver = optx.NonlinearCG(rtol=0.0, atol=0.0, method=optx.polak_ribiere)
    sol = optx.minimise(lambda p, _: f(p, x, y), solver, params, max_steps=iters, throw=False)
    out["optimistix_loss"] = float(f(sol.value, x, y))
    out["met"] = out["bpkit_loss"] < out["optimistix_loss"]
    return out


def bench_scg(rounds: int, dtype) -> dict:
    from bpkit import optim
    from bpkit.stopping import StopRules

    net, params, x, y, source = _cg_problem(dtype)
    cg, _ = _train_until(net, optim.nonlinear_cg("pr+"), params, x, y, StopRules(max_epochs=100, stall_epochs=None))
    goal, n = float(cg.final_loss), int(cg.epochs)  # CG may stop before 100 (a failed line search): count to its end
    out = {"name": "scg", "problem": f"64-32-10 sigmoid, half MSE, {jnp.dtype(dtype).name}, {source}; "
           f"goal = PR+ CG's loss after at most 100 iterations ({goal:.4g})",
           "cg_iterations": n, "cg_reason": cg.reason,
           "cg_grad_evals": float(cg.history.grad_evals[n - 1]), "cg_loss_evals": float(cg.history.loss_evals[n - 1])}
    for hvp in ("exact", "finite_difference"):
        r, secs = _train_until(net, optim.scg(hvp=hvp), params, x, y, StopRules(max_epochs=2000, goal=goal,
                                                                                stall_epochs=None))
        e = int(r.epochs)
        out[f"scg_{hvp}"] = {"reason": r.reason, "iterations": e, "grad_evals": float(r.history.grad_evals[e - 1]),
                             "loss_evals": float(r.history.loss_evals[e - 1]), "seconds": secs}
    return out


def minimal_online_runs(net: MLP, lr: float, epochs: int, x, y):
    """The minimal fused run of online SGD from a seed: ``epochs`` x a shuffled ``lax.scan``
    of ``jax.grad`` steps (tanh hidden, sigmoid output, half MSE); no history, no stop rule."""

    def loss(p, xb, yb):
        h = jnp.tanh(xb @ p[0]["w"] + p[0]["b"])
        return 0.5 * jnp.mean((jax.nn.sigmoid(h @ p[1]["w"] + p[1]["b"]) - yb) ** 2)

    def run(seed):
        kinit, key = jax.random.split(jax.random.key(seed))
        params = net.init(kinit, dtype=x.dtype)

        def epoch(carry, _):
            p, k = carry
            k, sk = jax.random.split(k)

            def step(p, i):
                g = jax.grad(loss)(p, x[i][None], y[i][None])
                return jax.tree_util.tree_map(lambda w, d: w - lr * d, p, g), None

            return (jax.lax.scan(step, p, jax.random.permutation(sk, x.shape[0]))[0], k), None

        return jax.lax.scan(epoch, (params, key), None, length=epochs)[0][0]

    return jax.jit(run), jax.jit(jax.vmap(run))


def bench_sweep(rounds: int, dtype) -> dict:
    """64 seeds through the library's vmapped trainer (``training.train_many``) vs the same
    runs one after another through its single-run form (``lanes.train_from_seed``), and
    the same two ways for the minimal fused run (:func:`minimal_online_runs`): how much a
    vmapped lane saves on this CPU at all, measured beside bpkit's."""
    from bpkit import datasets
    from bpkit.lanes import train_from_seed, train_many
    from bpkit.stopping import StopRules

    d = datasets.load("parity3")
    x, y = jnp.asarray(d.x_train, dtype), jnp.asarray(d.y_train, dtype)
    net = MLP((3, 3, 1), hidden="tanh", output="sigmoid")
    kw = dict(batch_size=1, rules=StopRules(max_epochs=300, stall_epochs=None))
    hyper = {"learning_rate": jnp.asarray(0.5, dtype)}
    single = jax.jit(lambda seed: train_from_seed(net, "sgd", seed, hyper, x, y, dtype=dtype, **kw).params)
    min_single, min_vmapped = minimal_online_runs(net, 0.5, 300, x, y)
    seeds = jnp.arange(64, dtype=jnp.uint32)
    t = interleaved({
        "sequential": lambda: [single(s) for s in seeds][-1],
        "vmapped": lambda: train_many(net, "sgd", seeds, x, y, hyper={"learning_rate": 0.5}, dtype=dtype,
                                      **kw).params,
        "minimal sequential": lambda: [min_single(s) for s in seeds][-1],
        "minimal vmapped": lambda: min_vmapped(seeds),
    }, max(3, rounds // 5), inner=1)
    med = {k: statistics.median(v) for k, v in t.items()}
    seq, vm = med["sequential"], med["vmapped"]
    return {"name": "sweep", "problem": "64 seeds, parity-3 3-3-1 tanh, online SGD, 300 epochs",
            "sequential_s": seq, "vmapped_s": vm, "speedup": seq / vm,
            "minimal_sequential_s": med["minimal sequential"], "minimal_vmapped_s": med["minimal vmapped"],
            "minimal_speedup": med["minimal sequential"] / med["minimal vmapped"],
            "vmapped_vs_minimal": med["minimal vmapped"] / vm,
            "target": ">= 10x", "met": seq / vm >= 10}


_MEMORY_SCRIPT = """
import resource, sys, tempfile, os
from bpkit import config as cfg
from bpkit.store import Store
from bpkit.sweep import run_sweep
flat = cfg.validate({"seeds": list(range(int(sys.argv[2]))), "data.name": "digits", "network.hidden": [32],
                     "optimizer.learning_rate": 0.5, "training.batch_size": 64, "training.max_epochs": 2,
                     "training.stall_epochs": 0})
budget = None if sys.argv[1] == "none" else float(sys.argv[1])
store = Store(os.path.join(tempfile.mkdtemp(), "m.sqlite"))
run_sweep(flat, store, chunk_size=2000 if budget is None else None, memory_budget_mb=budget, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def bench_memory(rounds: int, dtype) -> dict:
    import subprocess

    out = {"name": "memory", "problem": "2,000 runs, digits 64-32-10, batch 64, 2 epochs; max RSS of the process"}
    # The floor: a process that compiles and runs one run of the same program; a budget can go no lower.
    for label, arg, runs in (("one chunk of 2000", "none", "2000"), ("budget 1024 MB", "1024", "2000"),
                             ("budget 16 MB", "16", "2000"), ("floor: 1 run", "16", "1")):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, arg, runs], capture_output=True, text=True)
        if proc.returncode != 0:
            out[label] = {"error": proc.stderr.strip().splitlines()[-1]}
        else:
            out[label] = {"peak_mb": float(proc.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - t}
    return out


def bench_flagship(rounds: int, dtype) -> dict:
    """The README's main command (sweep + report) from scratch, twice: with an empty
    compilation cache, then with the cache the first run left (a fresh store each time)."""
    import os
    import resource
    import subprocess
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cache = tempfile.mkdtemp()
    out = {"name": "flagship",
           "problem": "README main command (sweep + report of experiments/flagship.toml) from scratch"}
    for label, target in (("cold", 30.0), ("warm", 10.0)):
        work = tempfile.mkdtemp()
        env = {**os.environ, "BPKIT_CACHE_DIR": cache}
        t, peak = time.perf_counter(), 0.0
        for cmd in (["sweep", os.path.join(root, "experiments", "flagship.toml"), "--no-progress"],
                    ["report", os.path.join("results", "flagship.sqlite")]):
            script = ("import resource, runpy, sys; sys.argv = ['bpkit'] + sys.argv[1:]\n"
                      "try:\n    runpy.run_module('bpkit', run_name='__main__')\n"
                      "finally:\n    print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
            proc = subprocess.run([sys.executable, "-c", script, *cmd], cwd=work, env=env, capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                return {**out, "error": proc.stderr.strip()[-300:]}
            peak = max(peak, float(proc.stderr.strip().splitlines()[-1].split()[1]) / 1024)
        secs = time.perf_counter() - t
        out[label] = {"seconds": secs, "peak_mb": peak, "target": f"<= {target:.0f} s and <= 600 MB",
                      "met": secs <= target and peak <= 600}
    del resource
    return out


FIRST_RUN = """name = "first"
seeds = [0]
[data]
name = "xor"
[network]
hidden = [2]
activation = "tanh"
[optimizer]
learning_rate = 0.5
[training]
batch_size = 1
max_epochs = 3000
criterion_40_20_40 = true
"""


def bench_first_run(rounds: int, dtype) -> dict:
    """One small run (XOR 2-2-1, online, one seed) in a fresh process, end to end: `python3 -m bpkit run`
    with a warm compilation cache (a first call fills it), a fresh store each time; the median of
    ``rounds // 3`` (at least 3) calls.  Target: at most 3 s."""
    import os
    import subprocess
    import tempfile

    cache, work = tempfile.mkdtemp(), tempfile.mkdtemp()
    with open(os.path.join(work, "first.toml"), "w") as f:
        f.write(FIRST_RUN)
    env = {**os.environ, "BPKIT_CACHE_DIR": cache}
    times = []
    for i in range(1 + max(3, rounds // 3)):  # the first call compiles into the cache, untimed
        store = os.path.join(work, f"r{i}.sqlite")
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bpkit", "run", "first.toml", "--store", store, "--no-progress"],
                              cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return {"name": "firstrun", "problem": "one small run", "error": proc.stderr.strip()[-300:]}
        if i:
            times.append(time.perf_counter() - t)
    secs = statistics.median(times)
    return {"name": "firstrun", "problem": "one small run (XOR 2-2-1 online, one seed), fresh process, warm cache",
            "seconds": secs, "target": "<= 3 s", "met": secs <= 3.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--only",
                    help="comma-separated subset of: grad,online,batch,cg,optimistix,scg,sweep,memory,flagship,"
                         "fannsets,firstrun")
    ap.add_argument("--fann-datasets", help="the folder of FANN's benchmark sets (default: $BPKIT_FANN_DATASETS, "
                                            "else ../shared/fann-datasets)")
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
    benches = {"grad": bench_grad, "online": bench_online, "batch": bench_batch, "cg": bench_cg,
               "optimistix": bench_optimistix,
               "scg": bench_scg,
               "sweep": bench_sweep, "memory": bench_memory, "flagship": bench_flagship,
               "fannsets": partial(bench_fann_sets, folder=args.fann_datasets), "firstrun": bench_first_run}
    chosen = args.only.split(",") if args.only else list(benches)
    for c in chosen:
        if c not in benches:
            ap.error(f"unknown benchmark {c!r}; valid: {', '.join(benches)}")
    if _torch() is None:
        print("PyTorch not installed: its comparisons are skipped")
    results = []
    for c in chosen:
        r = benches[c](args.rounds, dtype)
        results.append(r)
        _print(r)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": results}, f, indent=1)
    return 0


def _met(flag) -> str:
    return "met" if flag else "NOT met"


def _print_fann(r: dict) -> None:
    f = r.get("fann")
    if isinstance(f, str):
        print(f"  FANN {f}")
    elif f:
        print(f"  {f['speedup']:.2f}x FANN 2.2 (C, one thread, {f['precision']} precision; after the same "
              f"epochs its weights are {f['max_rel_diff']:.1e} from bpkit's with FANN's rule, fann_clipped)")


def _print(r: dict) -> None:
    print(f"[{r['name']}] {r['problem']}")
    if r["name"] == "grad":
        print(f"  jax.grad {r['jax_grad_ms']:.3f} ms per gradient; the same program again {r['noise_ratio']:.3f}x "
              "(the noise between identical programs in this run)")
        for rule, m in r["rules"].items():
            print(
                f"  hand-written ({rule:<11}) {m['ms']:.3f} ms: {m['ratio']:.3f}x jax.grad "
                f"(IQR {m['ratio_iqr'][0]:.3f}-{m['ratio_iqr'][1]:.3f}); target {r['target']}: "
                f"{_met(m['met'])}; max rel diff {m['max_rel_diff']:.1e}"
            )
    elif r["name"] == "online":
        print("  " + ", ".join(f"{k} {v:.1f} ms" for k, v in r["ms"].items()) + " per epoch")
        print(f"  bpkit = numpy loop to {r['max_rel_diff_vs_numpy']:.1e}; {r['speedup_vs_numpy']:.1f}x the NumPy loop")
        print(f"  {r['vs_minimal']:.2f}x the minimal fused loop measuring every epoch, "
              f"{r['vs_minimal_every_10']:.2f}x measuring every 10; target {r['target']}: {_met(r['met'])}")
        if "speedup_vs_torch" in r:
            print(f"  {r['speedup_vs_torch']:.1f}x the PyTorch loop")
        _print_fann(r)
    elif r["name"] == "firstrun":
        if "error" in r:
            print(f"  error: {r['error']}")
        else:
            print(f"  {r['seconds']:.2f} s end to end (median); target {r['target']}: {_met(r['met'])}")
    elif r["name"] == "fannsets":
        if "skipped" in r:
            print(f"  skipped: {r['skipped']}")
        for row in r["sets"]:
            head = f"  {row['set']:<10} {row['layers']:<12} {row['algorithm']:<11}"
            check = f"check {row['check_max_rel_diff']:.1e}"
            if not row["check_ok"]:
                print(f"{head} {check}: trajectories disagree, not timed")
                continue
            ms = row["ms_per_epoch"]
            print(f"{head} {check}; FANN {ms['fann']:.3f} ms, bpkit {ms['bpkit']:.3f} ms per epoch: "
                  f"{row['speedup']:.2f}x FANN; target {row['target']}: {_met(row['met'])}")
    elif r["name"] == "batch":
        print("  " + ", ".join(f"{k} {v:.0f} epochs/s" for k, v in r["epochs_per_s"].items()))
        print(f"  {r['vs_minimal']:.2f}x the minimal fused loop; target {r['target']}: {_met(r['met'])}")
        if "speedup_vs_torch" in r:
            print(f"  {r['speedup_vs_torch']:.2f}x PyTorch")
        _print_fann(r)
    elif r["name"] == "cg":
        if "skipped" in r:
            print("  " + r["skipped"])
            return
        for label, _, _ in QUASI_NEWTON:
            m = r[label]
            print(f"  {label}: {m['speedup']:.1f}x scipy's time to scipy's loss over {m['starts']} starts, with "
                  f"restarts; reached it on {m['reached']}/{m['starts']} (others stopped: {m['misses'] or 'none'}), "
                  f"those "
                  f"{m['per_start_median']:.1f}x faster (median; lowest {m['per_start_min']:.1f}x); target "
                  f"{r['target']}: {_met(m['met'])}")
    elif r["name"] == "optimistix":
        print(f"  bpkit: loss {r['bpkit_loss']:.5g} after {r['bpkit_iterations']} of 200 iterations "
              f"({r['bpkit_reason']}, {r['bpkit_s']:.2f} s)")
        if "skipped" in r:
            print("  " + r["skipped"])
        else:
            print(f"  optimistix NonlinearCG (PR): loss {r['optimistix_loss']:.5g}; target {r['target']}: "
                  f"{_met(r['met'])}")
    elif r["name"] == "sweep":
        print(f"  one after another {r['sequential_s']:.2f} s, vmapped {r['vmapped_s']:.3f} s: "
              f"{r['speedup']:.1f}x throughput; target {r['target']}: {_met(r['met'])}")
        print(f"  the minimal fused run: one after another {r['minimal_sequential_s']:.2f} s, vmapped "
              f"{r['minimal_vmapped_s']:.3f} s: {r['minimal_speedup']:.1f}x; bpkit vmapped "
              f"{r['vmapped_vs_minimal']:.2f}x the minimal vmapped")
    elif r["name"] == "memory":
        for k, v in r.items():
            if isinstance(v, dict):
                peak = f"peak {v['peak_mb']:.0f} MB in {v['seconds']:.0f} s" if "peak_mb" in v else v["error"]
                print(f"  {k}: {peak}")
    elif r["name"] == "flagship":
        if "error" in r:
            print("  " + r["error"])
        else:
            for k in ("cold", "warm"):
                m = r[k]
                print(f"  {k} cache: {m['seconds']:.1f} s, peak RSS {m['peak_mb']:.0f} MB; target {m['target']}: "
                      f"{_met(m['met'])}")
    elif r["name"] == "scg":
        print(f"  PR+ CG: {r['cg_grad_evals']:.0f} gradient / {r['cg_loss_evals']:.0f} loss evaluations in "
              f"{r['cg_iterations']} iterations ({r['cg_reason']})")
        for hvp in ("exact", "finite_difference"):
            m = r[f"scg_{hvp}"]
            print(f"  SCG ({hvp}): {m['reason']} after {m['iterations']} iterations, "
                  f"{m['grad_evals']:.0f} gradient / {m['loss_evals']:.0f} loss evaluations, {m['seconds']:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
