"""Study 5: online vs mini-batch vs batch learning.

    python3 experiments/online_batch.py          # about 10 min on 2 cores

1. Redundancy (LeCun et al. 1998, section 4.1): digits and digits replicated
   10x, trained online (batch 1), with mini-batches of 10 and 100, and in full
   batch, to a half-MSE goal and on to a tighter one; cost counted in passes over
   the original 1078 examples.  Each method's learning rate chosen, per goal, on
   seeds held out from those reported.
2. Batch size sweep on digits: 1, 4, 16, 64, 256 and the full 1078, each at its
   best learning rate of a grid, epochs and passes to the goal (Wilson &
   Martinez 2003).
3. Learning-rate stability: LeCun's LMS example (a linear unit, two Gaussian
   classes centred at (-0.4, -0.8) and (0.4, 0.8), 100 points) with the Hessian's
   eigenvalues computed exactly, and the digits MLP with the top eigenvalue from
   power iteration on Hessian-vector products (jvp of grad); batch GD at
   multiples of eta_max = 2 / lambda_max.
4. Per-example gradients (vmap of grad) at init and after training: the norm
   of their mean against their mean norm, and their spread.

Writes ``experiments/results/online_batch.json``, ``figures/online_batch.png``
and its README section.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bpkit import study, verdict
from bpkit.tables import Table

FOLDER = study.Folder(Path(__file__).resolve().parent)

NAME = "online_batch"
SEEDS = (0, 1, 2, 3, 4)  # every number reported comes from these
TUNE_SEEDS = (5, 6, 7)  # each learning rate is chosen on these (held out: a rate cannot win on lucky seeds)
GOAL = 0.05  # half MSE on the training set (10 sigmoid outputs, 0/1 targets)
TIGHT = 0.01  # the tighter goal of the redundancy part: near the minimum, where online's noise costs most
HIDDEN = 32
LADDER = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # every grid is a run of consecutive rungs: no gaps
METHODS = {  # label: (batch size, learning-rate grid, epoch budget on digits)
    "online": (1, LADDER[0:6], 60),
    "mini-batch 10": (10, LADDER[1:8], 200),
    "mini-batch 100": (100, LADDER[3:9], 1000),
    "batch": (None, LADDER[3:10], 3000),
}
RESOLUTION = 0.1  # passes between two measurements of the loss, online and mini-batch
SWEEP_SIZES = (1, 4, 16, 64, 256, 1078)
SWEEP_LRS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SWEEP_BUDGET = {1: 60, 4: 120, 16: 300, 64: 800, 256: 2000, 1078: 4000}
# Measurements per epoch in the sweep (training.train's measures_per_epoch): where the goal comes within
# a few epochs, a whole epoch is too coarse a unit (2 epochs could be 1.1), so those sizes are measured
# every 0.1 epoch; the larger sizes need tens to thousands of epochs and are measured at epoch ends.
SWEEP_MEASURES = {1: 10, 4: 10, 16: 10}
TIMING_EPOCHS = 100  # epochs per timed call of a batch epoch's cost (a call's fixed cost then weighs 1/100)
TIMING_REPEATS = 10  # timed calls per data set, the median taken


def _digits():
    from bpkit import datasets

    return datasets.load("digits")


def _net():
    from bpkit import MLP

    return MLP((64, HIDDEN, 10), hidden="sigmoid", output="sigmoid")


def _to_goal(res, i, n: int, batch_size: int | None, measures: int = 1, goal: float = GOAL) -> float | None:
    """Epochs of run i until the first measurement with loss <= ``goal``, or None.

    Measured at epoch ends (``measures = 1``: a whole number), or ``measures`` times an epoch
    (:func:`bpkit.loop.trainer_parts`' ``measures_per_epoch``): record ``j`` of epoch ``e`` comes
    after ``floor((j + 1) B / measures)`` of its ``B`` batches, so the epochs are ``e`` plus the
    examples seen then over ``n``, counted exactly."""
    if measures == 1:
        hit = np.flatnonzero(np.asarray(res.history.loss[i]) <= goal)
        return (int(hit[0]) + 1) if hit.size else None
    hit = np.flatnonzero(np.asarray(res.within.loss[i]).reshape(-1) <= goal)
    if not hit.size:
        return None
    e, j = divmod(int(hit[0]), measures)
    b = n if batch_size is None else batch_size
    batches = (j + 1) * -(-n // b) // measures
    return e + min(batches * b, n) / n


def runs_to_goal(x, y, batch_size, lrs, budget, replicas=1, measures=1, goals=(GOAL,)) -> list[list[dict]]:
    """Every (seed, lr) run on ``replicas`` stacked copies of ``(x, y)``, until the last of ``goals`` or
    ``budget`` epochs: per goal, one row per run.  Online and mini-batch train on the copies through
    the loop's ``replicas`` (the loss measured on ``x`` itself); batch is given the stacked copies
    (``replicas`` only counts its passes), so that its epoch costs what a batch epoch over them does."""
    from bpkit.stopping import StopRules

    # Online and mini-batch measure the loss only (no gradient norm: nothing here reads it, and it costs
    # twice the forward pass); batch's measurement is its next step's gradient.
    lean = {} if batch_size is None else {"replicas": replicas, "grad_norm": False}
    res = study.train_many(_net(), x, y, SEEDS + TUNE_SEEDS, lrs, batch_size=batch_size, measures_per_epoch=measures,
                           rules=StopRules(max_epochs=budget, goal=min(goals), stall_epochs=None), **lean)
    n = len(x) if batch_size is None else len(x) * replicas  # the examples of an epoch
    out = []
    for goal in goals:
        rows = []
        for i, (seed, lr) in enumerate((s, lr) for s in SEEDS + TUNE_SEEDS for lr in lrs):
            e = _to_goal(res, i, n, batch_size, measures, goal)
            rows.append({"seed": seed, "lr": lr, "epochs": e, "passes": None if e is None else e * replicas,
                         "stop": int(res.stop_reason[i]),
                         "final_loss": float(np.asarray(res.history.loss[i])[int(res.epochs[i]) - 1])})
        out.append(rows)
    return out


def choose(rows: list[dict]) -> dict:
    """The learning rate :func:`best` picks on the :data:`TUNE_SEEDS` rows, with its statistics on the
    :data:`SEEDS` rows; ``"runs"``: the SEEDS rows at every rate, ``"tuning"``: the others."""
    lr = best([r for r in rows if r["seed"] in TUNE_SEEDS])["lr"]
    report = [r for r in rows if r["seed"] in SEEDS]
    return {**best([r for r in report if r["lr"] == lr]), "runs": report,
            "tuning": [r for r in rows if r["seed"] in TUNE_SEEDS]}


def best(rows: list[dict]) -> dict:
    """The learning rate with most runs at the goal, then fewest median passes: its lr, runs at the goal,
    seeds tried, median passes and epochs (the runs themselves stay under the cell's ``"runs"``)."""
    by_lr: dict[float, list[dict]] = {}
    for r in rows:
        by_lr.setdefault(r["lr"], []).append(r)
    stats = []
    for lr, rs in by_lr.items():
        ok = [r["passes"] for r in rs if r["passes"] is not None]
        stats.append({"lr": lr, "reached": len(ok), "seeds": len(rs),
                      "passes": float(np.median(ok)) if ok else None,
                      "epochs": float(np.median([r["epochs"] for r in rs if r["epochs"] is not None])) if ok else None})
    stats.sort(key=lambda s: (-s["reached"], s["passes"] if s["passes"] is not None else np.inf))
    return stats[0]


def _batch_trainer(epochs: int):
    """``epochs`` epochs of bpkit's loop in full batch (``batch_size=None``, as the batch runs train: each
    epoch's loss and gradient are the next step's) at learning rate 1: jitted once per data shape."""
    import jax
    import optax

    from bpkit.loop import make_trainer
    from bpkit.stopping import StopRules

    return jax.jit(make_trainer(_net(), optax.sgd(1.0), batch_size=None,
                                rules=StopRules(max_epochs=epochs, stall_epochs=None)))


def epoch_seconds(data: list[tuple[np.ndarray, np.ndarray]], repeats: int = TIMING_REPEATS,
                  epochs: int = TIMING_EPOCHS) -> list[float]:
    """Measured wall time of one batch epoch (the loss and gradient over all of ``x``, then the update)
    on each ``(x, y)`` of ``data``: what a batch epoch on replicated data really costs.  Each timing is
    one call of ``epochs`` epochs over ``epochs`` (a call's fixed cost and its start, one more loss and
    gradient, then weigh 1/epochs: a call of one epoch would count them whole).  The data sets are timed
    in alternation (:func:`bpkit.timing.interleaved`), median of ``repeats`` each after a warm-up, so
    that other work on a shared machine slows them alike and their ratio holds."""
    import jax
    import jax.numpy as jnp

    from bpkit import timing

    params = _net().init(jax.random.key(0))
    step = _batch_trainer(epochs)
    calls = {}
    for i, (x, y) in enumerate(data):
        x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
        calls[i] = lambda x=x, y=y: step(params, x, y, jax.random.key(0)).params
    times = timing.interleaved(calls, repeats)
    return [float(np.median(times[i])) / epochs for i in range(len(data))]


def redundancy() -> tuple[list[dict], list[dict]]:
    """Per data set (digits, digits x10) and method: the cell at :data:`GOAL` and the cell at :data:`TIGHT`,
    each with its own learning rate chosen on the tuning seeds, from the same runs."""
    d = _digits()
    out: tuple[list[dict], list[dict]] = ([], [])
    batch = []  # batch: (cell, its data), timed together at the end
    for replicas in (1, 10):
        x, y = np.tile(d.x_train, (replicas, 1)), np.tile(d.y_train, (replicas, 1))
        for label, (bs, lrs, budget) in METHODS.items():
            if bs is None:  # batch: one epoch is `replicas` passes; the same budget in passes, epochs measured
                per_goal = runs_to_goal(x, y, bs, lrs, max(2, budget // replicas), replicas, goals=(GOAL, TIGHT))
            else:  # online and mini-batch: measured every RESOLUTION passes (an epoch of x10 is 10 passes)
                per_goal = runs_to_goal(d.x_train, d.y_train, bs, lrs, max(1, budget // replicas), replicas,
                                        measures=round(replicas / RESOLUTION), goals=(GOAL, TIGHT))
            for cells, rows in zip(out, per_goal, strict=True):
                cells.append({"data": "digits" if replicas == 1 else "digits x10", "method": label, **choose(rows),
                              "grid": list(lrs)})
            if bs is None:
                batch.append((out[0][-1], (x, y)))
    for (cell, _), secs in zip(batch, epoch_seconds([xy for _, xy in batch]), strict=True):
        cell["epoch_seconds"] = secs
    return out


def batch_size_sweep() -> list[dict]:
    d = _digits()
    out = []
    for bs in SWEEP_SIZES:
        rows, = runs_to_goal(d.x_train, d.y_train, None if bs == len(d.x_train) else bs, SWEEP_LRS,
                             SWEEP_BUDGET[bs], measures=SWEEP_MEASURES.get(bs, 1))
        out.append({"batch_size": bs, **choose(rows)})
    return out


def lms_example(seed: int = 0) -> dict:
    """LeCun's LMS example: a linear unit on two Gaussian classes, batch GD near eta_max."""
    import jax
    import jax.numpy as jnp

    from bpkit import MLP, optim
    from bpkit.stopping import StopRules
    from bpkit.training import train

    rng = np.random.default_rng(seed)
    sd = 0.2  # class spread: the input covariance then has eigenvalues sd^2 = 0.04 and 0.8 + sd^2 = 0.84 (published: 0.036, 0.84)
    x = np.vstack([rng.normal((-0.4, -0.8), sd, (50, 2)), rng.normal((0.4, 0.8), sd, (50, 2))])
    y = np.vstack([-np.ones((50, 1)), np.ones((50, 1))])
    xb = np.hstack([x, np.ones((100, 1))])
    # Half MSE: E = 1/(2P) sum (y - w.x)^2, Hessian = (1/P) sum x x^T (exact, the loss is quadratic).
    h_inputs = np.linalg.eigvalsh(x.T @ x / len(x))
    h_full = np.linalg.eigvalsh(xb.T @ xb / len(x))
    eta_max = 2.0 / h_full[-1]
    net = MLP((2, 1), output="identity")
    runs = []
    with jax.enable_x64(True):
        p0 = net.init(jax.random.key(seed), dtype=jnp.float64)
        for eta in (1.5, 2.5, 0.5 * eta_max, 0.95 * eta_max, 1.05 * eta_max):
            r = train(net, optim.make("sgd", learning_rate=float(eta)), p0, jnp.asarray(x), jnp.asarray(y),
                      key=jax.random.key(seed),
                      rules=StopRules(max_epochs=200, stall_epochs=None))
            loss = np.asarray(r.history.loss)
            runs.append({"eta": float(eta), "eta_over_eta_max": float(eta / eta_max),
                         "stop": r.reason, "epochs": int(r.epochs),
                         "loss_first": float(loss[0]), "loss_last": float(loss[int(r.epochs) - 1]),
                         "curve": [float(v) for v in loss[: int(r.epochs)]]})
    return {"eigenvalues_inputs_only": h_inputs.tolist(), "eigenvalues_with_bias": h_full.tolist(),
            "eta_max": eta_max, "runs": runs, "class_sd": sd}


def mlp_stability() -> dict:
    import jax
    import jax.numpy as jnp

    from bpkit import loss_value, optim
    from bpkit.analysis import power_iteration
    from bpkit.stopping import StopRules
    from bpkit.training import train

    d = _digits()
    net = _net()
    out = {"runs": []}

    def f(p, x, y):
        return loss_value(net, p, x, y)

    with jax.enable_x64(True):
        x, y = jnp.asarray(d.x_train), jnp.asarray(d.y_train)
        for seed in SEEDS[:3]:
            p0 = net.init(jax.random.key(seed), dtype=jnp.float64)
            lam0 = power_iteration(f, p0, x, y, key=jax.random.key(0))
            for mult in (0.5, 0.9, 1.1, 2.0, 4.0, 16.0):
                eta = mult * 2.0 / lam0
                r = train(net, optim.make("sgd", learning_rate=eta), p0, x, y, key=jax.random.key(seed),
                          rules=StopRules(max_epochs=500, stall_epochs=None))
                loss = np.concatenate([[float(r.initial_loss)], np.asarray(r.history.loss)[: int(r.epochs)]])
                lam_end = power_iteration(f, r.params, x, y, key=jax.random.key(0)) if r.reason != "diverged" else None
                out_end = np.asarray(net.apply(r.params, x))
                out["runs"].append({
                    "seed": seed, "lambda_max_init": lam0, "eta": eta, "multiple_of_eta_max": mult, "stop": r.reason,
                    "loss_init": float(r.initial_loss), "loss_epoch1": float(loss[1]), "loss_end": float(loss[-1]),
                    "rises": int(np.sum(np.diff(loss) > 0)), "lambda_max_end": lam_end,
                    "outputs_saturated_end": float(np.mean((out_end < 1e-3) | (out_end > 1 - 1e-3))),
                })
    return out


def per_example_gradients() -> list[dict]:
    import jax
    import jax.numpy as jnp
    import optax

    from bpkit import analysis, loss_value
    from bpkit.stopping import StopRules
    from bpkit.training import train

    d = _digits()
    net = _net()
    x, y = jnp.asarray(d.x_train, jnp.float32), jnp.asarray(d.y_train, jnp.float32)
    per_ex = jax.jit(lambda p: analysis.per_example_grads(lambda q, xb, yb: loss_value(net, q, xb, yb), p, x, y))
    rows = []
    opt = optax.sgd(0.5)
    checkpoints = (0, 10, 100)
    for seed in SEEDS:
        key = jax.random.key(seed)
        res = train(net, opt, net.init(key), x, y, key=key, batch_size=10, checkpoints=checkpoints,
                    rules=StopRules(max_epochs=checkpoints[-1], stall_epochs=None))  # one run, params kept at each
        for i, ep in enumerate(checkpoints):
            s = analysis.gradient_stats(per_ex(jax.tree_util.tree_map(lambda a, i=i: a[i], res.checkpoints)))
            rows.append({
                "seed": seed, "epoch": ep, "norm_of_mean": s.norm_of_mean, "mean_norm": s.mean_norm, "ratio": s.ratio,
                "variance_trace": s.variance_trace, "median_cos_to_mean": s.median_cos_to_mean,
                "fraction_cos_negative": s.fraction_against,
            })
    return rows


def figure(res: dict) -> str:
    plt = study.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    ax = axes[0]
    labels = list(METHODS)
    for k, data in enumerate(("digits", "digits x10")):
        vals = [next(c for c in res["redundancy"] if c["data"] == data and c["method"] == m)["passes"] for m in labels]
        ax.bar(np.arange(len(labels)) + 0.4 * k - 0.2, [np.nan if v is None else v for v in vals], 0.4, label=data)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("passes over the 1078 originals to the goal")
    ax.set_title(f"redundancy: half MSE <= {GOAL}", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1]
    sw = res["batch_sizes"]
    ax.plot([c["batch_size"] for c in sw], [np.nan if c["epochs"] is None else c["epochs"] for c in sw], "o-")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("epochs to the goal (best lr)")
    ax.set_title("batch size sweep, digits", fontsize=9)
    ax.grid(alpha=0.3)
    ax = axes[2]
    for r in res["lms"]["runs"]:
        ax.plot(np.arange(1, len(r["curve"]) + 1), r["curve"], label=f"eta {r['eta']:.2f} ({r['eta_over_eta_max']:.2f} eta_max)")
    ax.set_yscale("log")
    ax.set_ylim(1e-2, 1e6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("half MSE")
    ax.set_title("LMS example, batch GD", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = FOLDER.save_figure(fig, NAME).name
    plt.close(fig)
    return name


def _cell(red: list[dict], data: str, method: str) -> dict:
    """The cell of ``method`` on ``data`` ("digits" or "digits x10") in a redundancy list."""
    return next(c for c in red if c["data"] == data and c["method"] == method)


def _lr(cell: dict) -> str:
    """The chosen learning rate, flagged where it is the end of its grid (the best may lie beyond); none
    where no tuning run reached the goal (nothing to choose by)."""
    if "tuning" in cell and all(r["passes"] is None for r in cell["tuning"]):
        return "none (no tuning run reached it)"
    grid = cell.get("grid") or [r["lr"] for r in cell["runs"]]
    return f"{cell['lr']:g}" + (" (edge)" if cell["lr"] in (min(grid), max(grid)) else "")


def _passes(cell: dict) -> str:
    """Median passes at the chosen learning rate, and the range over seeds."""
    ps = [r["passes"] for r in cell["runs"] if r["lr"] == cell["lr"] and r["passes"] is not None]
    return f"{study.fmt(cell['passes'], '{:.1f}')} [{min(ps):.1f}, {max(ps):.1f}]" if ps else "-"


def _batch_measured(red: list[dict]) -> str:
    """Batch on digits x10, measured rather than derived: its own epochs to the goal and its own seconds per epoch."""
    b1, b10 = (_cell(red, d, "batch") for d in ("digits", "digits x10"))
    if "epoch_seconds" not in b1:
        return ""
    e1 = {(r["seed"], r["lr"]): r["epochs"] for r in b1["runs"]}
    e10 = {(r["seed"], r["lr"]): r["epochs"] for r in b10["runs"]}
    both = [k for k in e1 if e1[k] is not None and e10.get(k) is not None]
    same = sum(e1[k] == e10[k] for k in both)
    slower = b10["epoch_seconds"] / b1["epoch_seconds"]
    return (f"Batch on digits x10 is run, not derived: the mean gradient over 10 copies is the mean gradient over the "
            f"originals, so it should need the same epochs. Measured: {same} of {len(both)} (seed, lr) runs that reached "
            f"the goal on both took the same number of epochs (float32 sums over 10x the examples round differently"
            f"{', but never enough to move the epoch at which the goal was met' if same == len(both) else ''}). "
            f"One batch epoch took {1e3 * b1['epoch_seconds']:.2f} ms on digits and {1e3 * b10['epoch_seconds']:.2f} ms on "
            f"digits x10 (median of {TIMING_REPEATS} calls of {TIMING_EPOCHS} epochs each, on this machine): the same "
            f"epochs, each {slower:.1f}x slower, so in wall time batch pays {slower:.1f}x rather than the 10x of the "
            f"passes column, while online needs about the same passes as on digits (table).")


def redundancy_table(red: list[dict]) -> list[str]:
    """Per method: best learning rate, goal reached and passes on digits and on digits x10; and x10 / x1."""
    rows = []
    for m in METHODS:
        a, b = _cell(red, "digits", m), _cell(red, "digits x10", m)
        ratio = b["passes"] / a["passes"] if a["passes"] and b["passes"] else None
        rows.append([m, _lr(a), f"{a['reached']}/{a['seeds']}", _passes(a), _lr(b), f"{b['reached']}/{b['seeds']}",
                     _passes(b), study.fmt(ratio, "{:.2f}")])
    cols = ["method", "digits: best lr", "reached goal", "passes", "digits x10: best lr", "reached goal", "passes",
            "x10 / x1"]
    return Table("redundancy", cols, rows).markdown().splitlines()


def batch_size_table(sw: list[dict]) -> list[str]:
    rows = []
    for c in sw:
        ups = None if c["epochs"] is None else c["epochs"] * int(np.ceil(1078 / c["batch_size"]))
        epochs = study.fmt(c["epochs"], "{:.1f}" if c["batch_size"] in SWEEP_MEASURES else "{:.0f}")
        rows.append([str(c["batch_size"]), str(c["lr"]), f"{c['reached']}/{c['seeds']}", epochs, study.fmt(ups)])
    return Table("batch_sizes", ["batch size", "best lr", "reached goal", "epochs (median)", "updates"],
                 rows).markdown().splitlines()


def lms_table(lms: dict) -> list[str]:
    rows = []
    for r in lms["runs"]:
        outcome = "diverged" if r["stop"] == "diverged" or r["loss_last"] > r["loss_first"] else "converged"
        rows.append([f"{r['eta']:.3f}", f"{r['eta_over_eta_max']:.2f}", f"{outcome} ({r['stop']})",
                     f"{r['loss_first']:.3g}", f"{r['loss_last']:.3g}"])
    return Table("lms", ["eta", "eta / eta_max", "outcome (200 epochs)", "first loss", "last loss"],
                 rows).markdown().splitlines()


def stability_table(st: list[dict]) -> list[str]:
    rows = []
    for mult in dict.fromkeys(r["multiple_of_eta_max"] for r in st):
        rs = [r for r in st if r["multiple_of_eta_max"] == mult]
        ok = [r for r in rs if r["stop"] != "diverged"]
        med = {k: (float(np.median([r[k] for r in ok])) if ok else None)
               for k in ("loss_init", "loss_epoch1", "loss_end", "rises", "lambda_max_end", "outputs_saturated_end")}
        saturated = None if med["outputs_saturated_end"] is None else 100 * med["outputs_saturated_end"]
        rows.append([str(mult), f"{len(rs) - len(ok)}/{len(rs)}",
                     " / ".join(study.fmt(med[k], "{:.3g}") for k in ("loss_init", "loss_epoch1", "loss_end")),
                     study.fmt(med["rises"]), study.fmt(med["lambda_max_end"], "{:.3g}"), study.fmt(saturated, "{:.0f}%")])
    return Table("stability", ["multiple of 2/lambda_max(init)", "diverged",
                               "loss at init / after 1 epoch / after 500 (median)", "epochs with a rise (median)",
                               "largest-magnitude Hessian eigenvalue at the end (median)",
                               "outputs within 1e-3 of 0 or 1 at the end"], rows).markdown().splitlines()


def per_example_table(pe: list[dict]) -> list[str]:
    rows = []
    for ep in dict.fromkeys(r["epoch"] for r in pe):
        rs = [r for r in pe if r["epoch"] == ep]
        med = {k: float(np.median([r[k] for r in rs])) for k in rs[0] if k not in ("seed", "epoch")}
        rows.append([str(ep), f"{med['norm_of_mean']:.3g}", f"{med['mean_norm']:.3g}", f"{med['ratio']:.3f}",
                     f"{med['median_cos_to_mean']:.3f}", f"{100 * med['fraction_cos_negative']:.0f}%"])
    return Table("per_example", ["epoch", "norm of mean gradient", "mean per-example norm", "ratio",
                                 "median cos(g_i, mean)", "examples against the mean"], rows).markdown().splitlines()


LINEAR_FROM = 16  # the smallest batch of the range tested against Wilson & Martinez's "roughly linear"


def _per_seed_ratio(red: list[dict], method: str) -> tuple[float, float, float] | None:
    """Passes to the goal on digits x10 over digits, seed by seed (the same initial weights), each data set at
    its chosen learning rate: (median, least, largest) over the seeds where both reached it (None: no seed)."""
    a, b = (_cell(red, d, method) for d in ("digits", "digits x10"))
    pa, pb = ({r["seed"]: r["passes"] for r in c["runs"] if r["lr"] == c["lr"]} for c in (a, b))
    ratios = [pb[k] / pa[k] for k in pa if pa[k] and pb.get(k)]
    return (float(np.median(ratios)), min(ratios), max(ratios)) if ratios else None


def _slopes(sw: list[dict]) -> tuple[float, float, float]:
    """Per seed, the least-squares slope of log epochs against log batch size, batches of at least
    ``LINEAR_FROM``, each size at its chosen learning rate: (median, least, largest) over the seeds."""
    cells = [c for c in sw if c["batch_size"] >= LINEAR_FROM]
    slopes = []
    for seed in SEEDS:
        pts = [(c["batch_size"], r["epochs"]) for c in cells for r in c["runs"]
               if r["seed"] == seed and r["lr"] == c["lr"] and r["epochs"] is not None]
        if len(pts) == len(cells):
            slopes.append(float(np.polyfit(np.log([b for b, _ in pts]), np.log([e for _, e in pts]), 1)[0]))
    return float(np.median(slopes)), min(slopes), max(slopes)


LECUN = " (LeCun et al. 1998)"


def redundancy_verdicts(red: list[dict], goal: float) -> dict[str, verdict.Verdict]:
    """LeCun's redundancy figures at ``goal``, each by a rule: online unaffected by 10 copies (within the
    measurement's grain), batch 10x slower; a method none of whose seeds reached the goal on both sets is
    left out (the table says so)."""
    seeds = f"median [range] over {len(SEEDS)} seeds"
    online = _cell(red, "digits", "online")
    grain = RESOLUTION / min(r["passes"] for r in online["runs"] if r["lr"] == online["lr"] and r["passes"])
    what = "the goal" if goal == GOAL else f"half MSE <= {goal:g}"
    out = {}
    for method, published, tolerance, how in (
            ("online", 1.0, grain, f"; passes are measured to {RESOLUTION} pass, {100 * grain:.0f}% of online's fewest"),
            ("batch", 10.0, 0.0, "")):
        ratio = _per_seed_ratio(red, method)
        if ratio is not None:
            out[method] = verdict.against(f"{method}'s passes to {what}, digits x10 over digits ({seeds}{how})",
                                          ratio, published, tolerance=tolerance, unit="x", source=LECUN)
    return out


def verdicts(res: dict) -> list[verdict.Verdict]:
    """The published figures the study tests, each by a rule: LeCun's redundancy (online unaffected, batch
    10x slower) at the goal and at the tighter one, Wilson & Martinez's roughly linear growth with the batch
    size, and the LMS example."""
    lecun, wm = LECUN, " (Wilson & Martinez 2003)"
    seeds = f"median [range] over {len(SEEDS)} seeds"
    outcome = {round(r["eta"], 3): "converges" if r["loss_last"] < r["loss_first"] else "diverges"
               for r in res["lms"]["runs"]}
    return [
        *redundancy_verdicts(res["redundancy"], GOAL).values(),
        verdict.against(f"the slope of log epochs to the goal against log batch size, batches {LINEAR_FROM} to "
                        f"{max(SWEEP_SIZES)} ({seeds}; 1 is linear, within 25% counts as roughly)",
                        _slopes(res["batch_sizes"]), 1.0, tolerance=0.25, source=wm),
        verdict.matches("the LMS example at eta = 1.5", outcome.get(1.5, "not run"), "converges", source=lecun),
        verdict.matches("the LMS example at eta = 2.5", outcome.get(2.5, "not run"), "diverges", source=lecun),
        *redundancy_verdicts(res["redundancy_tight"], TIGHT).values(),
    ]


def tight_said(res: dict) -> list[str]:
    """LeCun's figures at the tighter goal, by rule; where a method's x10 / x1 could not be measured, why."""
    tight = res["redundancy_tight"]
    made = redundancy_verdicts(tight, TIGHT)
    said = []
    for m in ("online", "batch"):
        if m in made:
            said.append(made[m].text)
        else:
            c = _cell(tight, "digits x10", m)
            said.append(f"{m} on digits x10 reached it in {c['reached']} of {c['seeds']} runs within its budget "
                        f"of {METHODS[m][2]:,} passes, so its x10 / x1 is not measured")
    return said


def _tight(res: dict) -> str:
    """The redundancy table again at the tighter goal, with LeCun's figures tested there and how far batch
    trails online on digits at each goal (passes at each one's chosen rate)."""
    tight, said = res["redundancy_tight"], tight_said(res)
    trail = []
    for red, goal in ((res["redundancy"], GOAL), (tight, TIGHT)):
        o, b = _cell(red, "digits", "online"), _cell(red, "digits", "batch")
        if o["passes"] and b["passes"]:
            trail.append(f"{b['passes'] / o['passes']:.0f}x at half MSE <= {goal:g}")
    return "\n".join([
        f"**A tighter goal**, half MSE <= {TIGHT:g}, from the same runs (each went on to it; every learning rate "
        f"chosen again for this goal on seeds {', '.join(map(str, TUNE_SEEDS))}, the budgets in passes unchanged):",
        "", *redundancy_table(tight), "",
        f"At the tighter goal, against LeCun's figures: {'; '.join(said)}. On digits itself, batch's passes over "
        "online's (each at its chosen rate): " + (", ".join(trail) or "not measured") + ".",
    ])


def write_readme(res: dict, fig: str) -> None:
    red, st, sw, lms, pe = (res["redundancy"], res["mlp_stability"]["runs"], res["batch_sizes"], res["lms"],
                            res["per_example"])
    r_lines, s_lines = redundancy_table(red), batch_size_table(sw)
    l_lines, m_lines, p_lines = lms_table(lms), stability_table(st), per_example_table(pe)
    lam0 = np.median([r["lambda_max_init"] for r in st])
    batch_text = _batch_measured(red)
    tight_text = _tight(res)
    body = f"""
## Study 5: online vs mini-batch vs batch

Command: `python3 experiments/online_batch.py` (numbers below come from `experiments/results/online_batch.json`,
written by that run).

Setup: digits (1078 training examples, standardised), 64-{HIDDEN}-10 sigmoid net, half MSE, plain SGD,
{len(SEEDS)} seeds, goal half MSE <= {GOAL} on the training set (and a tighter one, {TIGHT:g}, below). "Passes": how many times each original example
was used. Online and mini-batch runs are measured every {RESOLUTION} pass (the loss on the 1078 originals; an epoch over
the 10 copies is one shuffled order of all their examples, `replicas = 10` in the training loop); batch runs every epoch. Each method's learning rate is chosen on seeds {", ".join(map(str, TUNE_SEEDS))} (most seeds at
the goal, then fewest passes) from a grid of consecutive rungs of {", ".join(f"{v:g}" for v in LADDER)}, and **every
number is from the other seeds**, {", ".join(map(str, SEEDS))}; "(edge)" marks a choice at the end of its grid.
Passes: median [range over seeds].

Published (../shared/REFERENCES.md): online learning is usually much faster than batch on redundant data; 10
copies of 100 samples make batch learning 10x slower per unit of progress while online is unaffected (LeCun et
al. 1998). Batch training is almost always slower than online, often by orders of magnitude on large sets;
semi-batch time rises roughly linearly with batch size (Wilson & Martinez 2003). eta_max = 2/lambda_max; the LMS
example: eigenvalues 0.84 and 0.036, eta_max = 2.38, eta = 1.5 converges, 2.5 diverges.

**Redundancy**, digits against digits replicated 10x (the same budget in passes):

{chr(10).join(r_lines)}

{batch_text}

{tight_text}

**Batch size sweep** on digits (each size's lr chosen on seeds {", ".join(map(str, TUNE_SEEDS))} from {", ".join(map(str, SWEEP_LRS))}; batch sizes
{", ".join(map(str, SWEEP_MEASURES))} are measured {study.fmt(max(SWEEP_MEASURES.values()))} times an epoch, to 0.1 epoch, the others at epoch ends):

{chr(10).join(s_lines)}

**LMS example** (linear unit, 2 inputs + bias, 100 points, class sd {lms['class_sd']}, targets -1/+1; Hessian
computed exactly): eigenvalues of the input covariance {", ".join(f"{v:.3f}" for v in lms['eigenvalues_inputs_only'])}
(published 0.036, 0.84); with the bias input, {", ".join(f"{v:.3f}" for v in lms['eigenvalues_with_bias'])}, so
eta_max = 2/lambda_max = {lms['eta_max']:.3f}. The published 2.38 = 2/0.84 leaves out the bias input's eigenvalue
(about 1 for inputs of mean near 0, here {lms['eigenvalues_with_bias'][-1]:.3f}); eta = 1.5 and 2.5 fall on the same
sides of either threshold.

{chr(10).join(l_lines)}

**The digits MLP**, batch GD for 500 epochs at multiples of 2/lambda_max, lambda_max measured at init by power
iteration on Hessian-vector products (median {lam0:.3g}, 3 seeds, float64):

{chr(10).join(m_lines)}

**Per-example gradients** (vmap of grad over the 1078 examples, medians over seeds; one run of mini-batch 10 training
at lr 0.5, its params kept by the loop at each checkpoint epoch):

{chr(10).join(p_lines)}

![online vs batch](figures/{fig})

{{conclusion}}
"""
    on1, b1 = _cell(red, "digits", "online"), _cell(red, "digits", "batch")
    first, last = sw[0], sw[-1]
    pe0 = float(np.median([r["ratio"] for r in pe if r["epoch"] == 0]))
    pe_late = float(np.median([r["ratio"] for r in pe if r["epoch"] == max(r["epoch"] for r in pe)]))
    against = float(np.median([r["fraction_cos_negative"] for r in pe if r["epoch"] == 10]))
    no_div = all(r["stop"] != "diverged" for r in st)
    finals = {m: float(np.median([r["loss_end"] for r in st if r["multiple_of_eta_max"] == m]))
              for m in dict.fromkeys(r["multiple_of_eta_max"] for r in st)}
    best_mult = min(finals, key=finals.get) if finals else None
    made = verdicts(res)
    online, batch, linear, lms15, lms25 = made[:5]
    stable = [r["eta_over_eta_max"] for r in lms["runs"] if r["loss_last"] < r["loss_first"]]
    unstable = [r["eta_over_eta_max"] for r in lms["runs"] if r["loss_last"] >= r["loss_first"]]
    updates = [c["epochs"] * -(-1078 // c["batch_size"]) for c in (first, last)]
    conclusion = (
        f"Conclusion: replicating digits 10x, against LeCun's figures: {online.text}; {batch.text}. Even on plain "
        f"digits batch GD needed {study.fmt(b1['passes'])} passes where online needed "
        f"{study.fmt(on1['passes'], '{:.0f}')}. Against the batch size: {linear.text} "
        f"({study.fmt(first['epochs'], '{:.1f}')} epochs at batch {first['batch_size']}, {study.fmt(last['epochs'])} at "
        f"{last['batch_size']}; in updates, epochs x updates per epoch, {updates[0]:,.0f} and {updates[1]:,.0f}). The "
        f"per-example gradients at init: norm of the mean / mean norm {pe0:.2f}, so each example's step is close to "
        f"the batch step and online makes N of them per pass; after training {pe_late:.3f}, with "
        f"{100 * against:.0f}% of examples pointing against the mean at epoch 10. The LMS example: {lms15.text}; "
        f"{lms25.text}; the largest step that converged is {max(stable):.2f} eta_max and the smallest that diverged "
        f"{min(unstable):.2f} eta_max. For the MLP, 2/lambda_max at init is "
        + ("no divergence threshold: no run diverged even at 16x; the loss plateaus instead of blowing up."
           if no_div else "a divergence threshold only roughly: see the table.")
        + (f" Below that, the curvature falls as training goes on (largest eigenvalue {lam0:.2f} at init, "
           f"{study.span([round(float(np.median([r['lambda_max_end'] for r in st if r['multiple_of_eta_max'] == m])), 3) for m in (0.5, 0.9, 1.1, 2.0)])} "
           f"after 500 epochs at 0.5-2x), so the step from the init's curvature is conservative: the lowest final loss "
           f"came at {best_mult}x." if best_mult is not None else "")
    )
    FOLDER.save_verdicts(NAME, made)
    FOLDER.write_section(NAME, body.replace("{conclusion}", conclusion))


def run(args) -> None:
    FOLDER.save_json(NAME, {"lms": lms_example(), "per_example": per_example_gradients(), "mlp_stability": mlp_stability(),
                            **dict(zip(("redundancy", "redundancy_tight"), redundancy(), strict=True)),
                            "batch_sizes": batch_size_sweep()})


def report() -> None:
    res = FOLDER.load_json(NAME)
    write_readme(res, figure(res))


def main(argv=None) -> int:
    return FOLDER.cli(NAME, __doc__, argv, run, report)


if __name__ == "__main__":
    sys.exit(main())
