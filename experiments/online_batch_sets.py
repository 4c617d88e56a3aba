"""Study 5b: online, mini-batch and batch on real data sets, at equal passes and at equal wall time.

    python3 experiments/online_batch_sets.py [--report-only]

Wilson & Martinez (2003) compared online and batch training on real sets of thousands of examples.
This study does so on FANN's real benchmark sets (``../shared/fann-datasets``: thyroid, mushroom,
building, census-house and gene, each with FANN's benchmark layers and its own test file) and on digits:
sigmoid units, half MSE, plain SGD online, in mini-batches of 16, 64 and 256 and in full batch; batch with
momentum 0.9 and batch PR+ conjugate gradient (LeCun et al. 1998: batch allows acceleration).

* **Two kinds of budget**, each at every size of :data:`PASSES`. Equal passes: every method sees each
  example that many times (CG: its cu spent, a gradient 3 cu, within 3 per pass). Equal wall time: every
  method runs for the time online takes for those passes, its epochs that time over its own measured
  seconds per epoch (:func:`epoch_seconds`, one run alone on one device of this machine, the methods
  timed in alternation); CG, whose iterations cost what its line searches take, within that time over its
  seconds per cu, as a cu cap.
* **Tuning on other seeds.** Each method's learning rate (CG: its Wolfe c2) is chosen per set and budget
  on seeds :data:`TUNE_SEEDS` by the lowest mean final training loss over every rung of its ladder
  (:func:`choose`), so every method gets the same tuning runs; every number is from seeds
  :data:`REPORT_SEEDS`.
* **One run serves every budget**: each (seed, value) runs once to a method's largest budget, its params
  kept at each smaller one (CG's cu-capped budgets apart), so the runs at 10 passes are the first epochs
  of those at 100.
* **Measured**: final training loss, test loss and (on the classification sets) test error, mean over
  the report seeds with a bootstrap 95% interval; and the test loss along each run (the test set as the
  loop's validation set), for the figure.

Writes ``experiments/results/online_batch_sets.json``, ``figures/online_batch_sets.png`` and the README
section.  The data folder is ``../shared/fann-datasets`` from the repository root (``BPKIT_FANN_DATA``
overrides it); without it the study stops with a one-line error.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bpkit import study, verdict
from bpkit.tables import Table

FOLDER = study.Folder(Path(__file__).resolve().parent)
NAME = "online_batch_sets"
DATA = Path(os.environ.get("BPKIT_FANN_DATA", Path(__file__).resolve().parents[2] / "shared" / "fann-datasets"))

PASSES = (10, 100)  # the budgets, in passes over the training set (and online's time for them)
TUNE_SEEDS = (0, 1, 2)
REPORT_SEEDS = tuple(range(3, 13))
CURVE_POINTS = 60  # points of each stored median test-loss curve (log-spaced epochs)
PROBE_EPOCHS = 200  # epochs of each timing call (its fixed cost, about 2 ms, then under 3% of the fastest)


class Problem(NamedTuple):
    file: str  # a FANN set's stem in DATA, or a bpkit data set's name
    hidden: tuple[int, ...]
    classification: bool


# FANN's benchmark layers (its README), sigmoid units; digits as Study 5 trains it.
SETS = {
    "digits 64-32-10": Problem("digits", (32,), True),
    "thyroid 21-16-8-3": Problem("thyroid", (16, 8), True),
    "mushroom 125-32-2": Problem("mushroom", (32,), True),
    "gene 120-4-2-3": Problem("gene", (4, 2), True),
    "building 14-16-3": Problem("building", (16,), False),
    "census-house 16-16-1": Problem("census-house", (16,), False),
}

LR_LADDER = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
C2_LADDER = (0.001, 0.01, 0.1, 0.4, 0.7, 0.9, 0.99)


class Method(NamedTuple):
    batch: int | None  # None: full batch
    optimizer: str
    tuned: str  # the hyperparameter chosen on the tuning seeds
    ladder: tuple[float, ...]
    probe: float  # the value the timing runs use
    fixed: tuple[tuple[str, float], ...] = ()  # other data hyperparameters
    static: tuple[tuple[str, Any], ...] = ()
    lanes: int | None = None  # runs per compiled call (None: the ladder's length, a tuning seed's runs)


METHODS = {
    "online": Method(1, "sgd", "learning_rate", LR_LADDER, 0.1),
    "mini-batch 16": Method(16, "sgd", "learning_rate", LR_LADDER, 0.3),
    "mini-batch 64": Method(64, "sgd", "learning_rate", LR_LADDER, 1.0),
    "mini-batch 256": Method(256, "sgd", "learning_rate", LR_LADDER, 3.0),
    "batch": Method(None, "sgd", "learning_rate", LR_LADDER, 3.0),
    "batch, momentum 0.9": Method(None, "sgd", "learning_rate", LR_LADDER, 1.0, (("momentum", 0.9),)),
    "batch PR+ CG": Method(None, "cg", "c2", C2_LADDER, 0.4, static=(("beta", "pr+"),), lanes=1),
    # CG one run at a time: vmapped, every lane steps through the longest line search of any lane (its c2).
}
ONLINE, BATCH = "online", "batch"
# Batch's equal-time budget also at these fractions of it (its measured time per epoch 20% off either
# way): a verdict at equal time is stated only where it is the same at all three.
SPREAD = {"time x0.8": 0.8, "time x1.2": 1.2}
TIMES = dict(sorted({"time": 1.0, **SPREAD}.items(), key=lambda kv: kv[1]))  # batch's equal-time budgets, in order


# --- data and runs ---------------------------------------------------------------------------------

def load(problem: Problem) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test) of a set, float32."""
    from bpkit import datasets

    if problem.file == "digits":
        d = datasets.load("digits")
    else:
        train, test = DATA / f"{problem.file}.train", DATA / f"{problem.file}.test"
        if not train.exists() or not test.exists():
            raise SystemExit(f"{NAME}: error: {train} or its .test is missing; valid: FANN's data sets in {DATA} "
                             "(set BPKIT_FANN_DATA to their folder)")
        d = datasets.load_file(train, test_path=test)
    return tuple(np.asarray(a, np.float32) for a in (d.x_train, d.y_train, d.x_test, d.y_test))


def network(problem: Problem, arrays: tuple) -> Any:
    """The set's MLP: its inputs, ``problem.hidden``, its outputs; sigmoid units throughout."""
    from bpkit import MLP

    x, y = arrays[0], arrays[1]
    return MLP((x.shape[1], *problem.hidden, y.shape[1]), hidden="sigmoid", output="sigmoid")


class Budget(NamedTuple):
    """One budget of a method: ``epochs`` (CG: iterations), and a cu cap (CG at equal passes)."""

    kind: str  # "passes", "time", or a kind of SPREAD
    passes: int
    epochs: int
    max_cu: float | None


def budgets(name: str, timing: dict[str, dict[str, float]]) -> list[Budget]:
    """Method ``name``'s budgets at every size of :data:`PASSES`: equal passes (CG: 3 cu a pass) and
    online's wall time for them (online: the passes budget), over the method's own seconds per epoch;
    CG's over its seconds per cu, as a cu cap (its iterations cost as many evaluations as its line
    searches take, which depends on c2), with an epoch budget that cannot bind first (3 cu or more
    an iteration).  Batch's equal-time budget also at each fraction of :data:`SPREAD`."""
    cg = METHODS[name].optimizer == "cg"
    out = []
    for p in PASSES:
        out.append(Budget("passes", p, 3 * p if cg else p, 3.0 * p if cg else None))
        budget_s = p * timing["epoch"][ONLINE]
        if cg:
            cap = budget_s / timing["cu"][name]
            out.append(Budget("time", p, math.ceil(cap / 3) + 1, cap))
        elif name != ONLINE:
            for kind, f in {"time": 1.0, **(SPREAD if name == BATCH else {})}.items():
                out.append(Budget(kind, p, max(1, int(f * budget_s / timing["epoch"][name])), None))
    return out


def train(problem: Problem, method: Method, arrays: tuple, pairs: list[tuple[int, float]], epochs: int,
          max_cu: float | None = None, checkpoints: tuple[int, ...] = (), lanes: int = 1,
          devices: list[Any] | None = None) -> Any:
    """Every (seed, value) pair in one vmapped program of ``lanes`` lanes (the pairs padded with copies of
    the last), laid out over ``devices`` (default: every device): ``epochs`` epochs (or ``max_cu``), the
    params kept at ``checkpoints``, the test set as the validation set (its loss recorded every epoch).
    Results of the padding are dropped."""
    import jax

    from bpkit.lanes import train_many
    from bpkit.stopping import StopRules

    x, y, xt, yt = arrays
    net = network(problem, arrays)
    padded = pairs + [pairs[-1]] * (lanes - len(pairs))
    hyper = {method.tuned: [v for _, v in padded], **{k: [f] * len(padded) for k, f in method.fixed}}
    rules = StopRules(max_epochs=epochs, max_cu=max_cu, stall_epochs=None)
    # Online and mini-batch measure their loss without its gradient (nothing here reads its norm): their
    # epochs, and so their timings, hold no backward pass over the whole set that training does not need.
    lean = {} if method.batch is None else {"grad_norm": False}
    res = train_many(net, method.optimizer, [s for s, _ in padded], x, y, xt, yt, hyper=hyper,
                     static_hyper=method.static, batch_size=method.batch, rules=rules, checkpoints=checkpoints,
                     devices=devices, **lean)
    return jax.tree_util.tree_map(lambda a: a[: len(pairs)], jax.device_get(res))


def runs(problem: Problem, method: Method, arrays: tuple, pairs: list[tuple[int, float]], group: list[Budget]) -> Any:
    """The (seed, value) pairs run once for every budget of ``group`` (budgets sharing a cu cap): each run
    to the group's largest epochs, its params kept at each budget's epochs; in calls of one program as
    wide as the ladder on each device (a tuning seed's runs fill one device's share; a run's last bits
    depend on that width, not on the device count), results concatenated."""
    import jax

    epochs = sorted({b.epochs for b in group})
    width = (method.lanes or len(method.ladder)) * jax.device_count()
    parts = [train(problem, method, arrays, pairs[i:i + width], epochs[-1], group[0].max_cu, tuple(epochs), width)
             for i in range(0, len(pairs), width)]
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *parts)


def final(res: Any, i: int, epochs: int) -> float:
    """Run ``i``'s training loss after epoch ``epochs`` (or its last, where it stopped before): inf where
    it is not finite (diverged)."""
    v = float(np.asarray(res.history.loss[i])[_last(res, i, epochs)])
    return v if math.isfinite(v) else math.inf


def _last(res: Any, i: int, epochs: int) -> int:
    """The history index of run ``i``'s last epoch within the first ``epochs``."""
    return max(min(int(res.epochs[i]), epochs) - 1, 0)


def measures(problem: Problem, arrays: tuple, res: Any, i: int, epochs: int, checkpoint: int) -> dict[str, Any]:
    """Run ``i`` after ``epochs`` epochs (its params: checkpoint ``checkpoint``): its training loss and
    test loss as the loop recorded them, and (classification) its test error; None where it diverged
    (or, test error, on a regression set)."""
    import jax

    train_loss = final(res, i, epochs)
    test_loss = float(np.asarray(res.history.val_loss[i])[_last(res, i, epochs)])
    wrong = None
    if problem.classification and math.isfinite(train_loss):
        params = jax.tree_util.tree_map(lambda a: a[i, checkpoint], res.checkpoints)
        wrong = error_rate(np.asarray(network(problem, arrays).apply(params, arrays[2])), arrays[3])
    return {"train_loss": _plain(train_loss), "test_loss": _plain(test_loss) if math.isfinite(train_loss) else None,
            "test_error": wrong}


def error_rate(out: np.ndarray, yt: np.ndarray) -> float:
    """The fraction of rows of ``out`` classified wrong against targets ``yt``: the largest output's
    class, or one output thresholded at 0.5."""
    wrong = np.argmax(out, 1) != np.argmax(yt, 1) if yt.shape[1] > 1 else (out[:, 0] > 0.5) != (yt[:, 0] > 0.5)
    return float(np.mean(wrong))


def _plain(v: float) -> float | None:
    """``v``, or None (JSON's null) where it is not finite: a diverged run."""
    return float(v) if math.isfinite(v) else None


# --- timing, tuning, reporting ---------------------------------------------------------------------

def epoch_seconds(problem: Problem, arrays: tuple, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Each method's wall time per epoch (CG: per iteration) and per cu, one run alone on one device:
    samples of enough calls of a program of :data:`PROBE_EPOCHS` epochs to take about 0.3 s, the
    median of ``repeats`` samples, the methods in alternation (:func:`bpkit.timing.interleaved`) so that
    other work on a shared machine slows them alike.  Returns ``{"epoch": {method: s}, "cu": {method: s}}``."""
    import jax

    from bpkit import timing

    one = jax.devices()[:1]
    probe = {m: (lambda m=m: train(problem, METHODS[m], arrays, [(0, METHODS[m].probe)], PROBE_EPOCHS, devices=one))
             for m in METHODS}
    single = timing.interleaved(probe, 1)  # compiled, warmed up, then one call each timed
    calls = {m: max(1, math.ceil(0.3 / max(single[m][0], 1e-6))) for m in METHODS}
    many = {m: (lambda m=m: [probe[m]() for _ in range(calls[m])][-1]) for m in METHODS}
    per_call = {m: float(np.median(t)) / calls[m] for m, t in timing.interleaved(many, repeats).items()}
    spent = {m: _spent(probe[m]()) for m in METHODS}
    return {"epoch": {m: t / spent[m][0] for m, t in per_call.items()},
            "cu": {m: t / spent[m][1] for m, t in per_call.items()}}


def _spent(res: Any) -> tuple[int, float]:
    """The epochs and cu a probe run spent (a CG run may stop sooner: its line search failed)."""
    last = int(res.epochs[0]) - 1
    return last + 1, float(res.history.loss_evals[0, last] + 3 * res.history.grad_evals[0, last])


def choose(method: Method, res: Any, epochs: int) -> dict[str, Any]:
    """The rung of ``method.ladder`` with the lowest mean training loss after ``epochs`` over
    :data:`TUNE_SEEDS` (the runs of ``res``: every seed at every rung, seed-major); ties go to the
    smaller value.  Returns the choice, every rung with its score, and whether the choice is at the
    ladder's end (or no rung stayed finite): an edge."""
    n = len(method.ladder)
    scores = {v: float(np.mean([final(res, i * n + j, epochs) for i in range(len(TUNE_SEEDS))]))
              for j, v in enumerate(method.ladder)}
    best = min(method.ladder, key=lambda v: (scores[v], v))
    edge = best in (method.ladder[0], method.ladder[-1]) or not math.isfinite(scores[best])
    return {"value": best, "tried": {f"{v:g}": _plain(scores[v]) for v in method.ladder}, "edge": edge}


def cells(problem: Problem, method: Method, arrays: tuple, group: list[Budget]) -> dict[Budget, dict]:
    """A method at each budget of ``group``: tuned over its whole ladder on :data:`TUNE_SEEDS`, then
    run on every report seed at the value chosen for each budget; its measures there and its median
    test-loss curve (epochs log-spaced).  One run per (seed, value) serves every budget of the group."""
    tuning = runs(problem, method, arrays, [(s, v) for s in TUNE_SEEDS for v in method.ladder], group)
    chosen = {b: choose(method, tuning, b.epochs) for b in group}
    values = list(dict.fromkeys(c["value"] for c in chosen.values()))
    res = runs(problem, method, arrays, [(s, v) for v in values for s in REPORT_SEEDS], group)
    checkpoints = sorted({b.epochs for b in group})
    out = {}
    for b in group:
        lanes = [values.index(chosen[b]["value"]) * len(REPORT_SEEDS) + k for k in range(len(REPORT_SEEDS))]
        at = np.unique(np.geomspace(1, b.epochs, CURVE_POINTS).astype(int)) - 1
        losses = np.asarray(res.history.val_loss, float)[lanes][:, at]  # NaN past a run's stop
        cu = (np.asarray(res.history.loss_evals, float) + 3 * np.asarray(res.history.grad_evals, float))[lanes][:, at]
        curve, curve_cu = ([float(np.median(c[np.isfinite(c)])) if np.isfinite(c).any() else None for c in a.T]
                           for a in (losses, cu))
        out[b] = {**chosen[b], "epochs": b.epochs, "max_cu": b.max_cu,
                  "epochs_run": [_last(res, i, b.epochs) + 1 for i in lanes],
                  "runs": [measures(problem, arrays, res, i, b.epochs, checkpoints.index(b.epochs)) for i in lanes],
                  "curve_epochs": [int(a) + 1 for a in at], "curve_cu": curve_cu, "curve": curve}
    return out


def run_set(label: str) -> dict:
    """One set: every method timed, then run at equal passes and at equal wall time (the budgets that
    share a cu cap from one run per seed and value)."""
    problem = SETS[label]
    arrays = load(problem)
    t0 = time.perf_counter()
    timing = epoch_seconds(problem, arrays)
    print(f"{label}: timed in {time.perf_counter() - t0:.0f} s", flush=True)
    out: dict[str, Any] = {"examples": int(arrays[0].shape[0]), "test_examples": int(arrays[2].shape[0]),
                           "seconds_per_epoch": timing["epoch"], "seconds_per_cu": timing["cu"],
                           "constant": constant(problem, arrays),
                           "budgets": {str(p): {"budget_s": p * timing["epoch"][ONLINE], "passes": {}, "time": {}}
                                       for p in PASSES}}
    for m, method in METHODS.items():
        t0 = time.perf_counter()
        mine = budgets(m, timing)
        for cap in dict.fromkeys(b.max_cu for b in mine):
            for b, c in cells(problem, method, arrays, [b for b in mine if b.max_cu == cap]).items():
                out["budgets"][str(b.passes)].setdefault(b.kind, {})[m] = c
        if m == ONLINE:
            for p in PASSES:
                out["budgets"][str(p)]["time"][m] = out["budgets"][str(p)]["passes"][m]
        print(f"{label}: {m} done in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def constant(problem: Problem, arrays: tuple) -> dict[str, float | None]:
    """What predicting the training targets' mean for every test example scores: the test loss (half MSE)
    and, on a classification set, the test error (the majority class)."""
    _, y, _, yt = arrays
    from bpkit import losses

    guess = np.broadcast_to(y.mean(axis=0), yt.shape)
    loss = float(losses.get("mse").value(None, guess, yt))
    return {"test_loss": loss, "test_error": error_rate(guess, yt) if problem.classification else None}


def run(args) -> None:
    """Every set, each kept in ``<stores>/online_batch_sets.partial.json`` as it ends (a killed run resumes
    at the next set); the compiled programs dropped between sets (a process that keeps hundreds of them
    runs out of memory maps)."""
    import json

    import jax

    from bpkit import report

    partial = FOLDER.stores / f"{NAME}.partial.json"
    head = {"passes": list(PASSES), "tune_seeds": list(TUNE_SEEDS), "report_seeds": list(REPORT_SEEDS)}
    done = json.loads(partial.read_text()) if partial.exists() else {}
    if {k: done.get(k) for k in head} != head:
        done = {**head, "sets": {}, "wall_s": 0.0}
    for label in SETS:
        if label in done["sets"]:
            continue
        t0 = time.perf_counter()
        done["sets"][label] = run_set(label)
        done["wall_s"] += time.perf_counter() - t0
        partial.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(partial, json.dumps(done))
        jax.clear_caches()
    FOLDER.save_json(NAME, {**done, "sets": {label: done["sets"][label] for label in SETS}})
    partial.unlink()


# --- the section -------------------------------------------------------------------------------------

def estimate(runs: list[dict], key: str) -> list[float] | None:
    """Mean of ``key`` over the runs with a finite value [bootstrap 95%], None where not measured."""
    from bpkit import stats

    values = [r[key] for r in runs if r[key] is not None]
    if not values:
        return None
    e = stats.bootstrap_mean(values)
    return [e.value, e.lo, e.hi]


def _est(runs: list[dict], key: str) -> str:
    e = estimate(runs, key)
    diverged = sum(1 for r in runs if r["train_loss"] is None)
    text = "-" if e is None else f"{e[0]:.4g} [{e[1]:.4g}, {e[2]:.4g}]"
    return text + (f" ({diverged} diverged)" if diverged else "")


FLAT = 0.01  # an edge choice whose neighbouring rungs score within this fraction of it sits on a plateau


def _setting(method: str, c: dict) -> str:
    """The chosen value; at the ladder's end marked "(edge)", with how many rungs in a row from that end
    score within :data:`FLAT` of the choice (a plateau: a longer ladder would not move the scores)."""
    text = f"{METHODS[method].tuned.split('_')[-1]} {c['value']:g}"
    if not c["edge"]:
        return text
    flat = plateau(c["tried"], c["value"])
    return text + (f" (edge; {flat} rungs within {FLAT:.0%} of it)" if flat > 1 else " (edge)")


def plateau(tried: dict[str, float | None], value: float) -> int:
    """How many rungs in a row, from ``value`` (an end of the ladder) inward, score within :data:`FLAT`
    of its score (a diverged rung, null, ends the row)."""
    rungs = sorted(tried, key=float)
    if float(rungs[-1]) == value:
        rungs.reverse()
    best, count = tried[rungs[0]], 0
    for r in rungs:
        if best is None or tried[r] is None or abs(tried[r] - best) > FLAT * abs(best):
            break
        count += 1
    return count


def set_table(label: str, res: dict) -> Table:
    """One set: a row per method and budget, at equal passes and at equal wall time."""
    cls = SETS[label].classification
    rows = []
    for passes, at in res["budgets"].items():
        for m in METHODS:
            p, t = at["passes"][m], at["time"][m]
            rows.append([m, passes, f"{res['seconds_per_epoch'][m] * 1e3:.3g}", _setting(m, p),
                         _est(p["runs"], "test_loss"), *([_est(p["runs"], "test_error")] if cls else []),
                         _time_budget(t), _setting(m, t), _est(t["runs"], "test_loss"),
                         *([_est(t["runs"], "test_error")] if cls else [])])
    cols = ["method", "passes", "ms per epoch", "setting", "test loss", *(["test error"] if cls else []),
            "equal time: epochs (CG: median run, its cu cap)", "setting", "test loss", *(["test error"] if cls else [])]
    return Table(label, cols, rows)


def _time_budget(cell: dict) -> str:
    """An equal-time cell's budget: its epochs, or (CG) the median epochs its runs took within its cu cap."""
    if cell.get("max_cu") is None:
        return f"{cell['epochs']:,}"
    return f"{np.median(cell['epochs_run']):,.0f} ({cell['max_cu']:,.0f} cu)"


def verdicts(results: dict) -> dict[str, list[verdict.Verdict]]:
    """Per budget (equal passes, then equal wall time, at each size) and set: batch's test error (or, on
    a regression set, its test loss) against online's.  At equal time, batch at its budget and at each
    fraction of :data:`SPREAD` of it, the three counted (:func:`bpkit.verdict.tally`): its word is theirs
    where all three agree, "mixed" where a timing 20% off would change it."""
    out: dict[str, list[verdict.Verdict]] = {}
    for passes in results["passes"]:
        for kind, name in (("passes", f"{passes} passes"), ("time", f"online's time for {passes} passes")):
            for label, res in results["sets"].items():
                key = "test_error" if SETS[label].classification else "test_loss"
                at = res["budgets"][str(passes)]
                what = f"{label}, {name}, test {key.split('_')[1]}"
                o = estimate(at[kind][ONLINE]["runs"], key)
                kinds = [kind] if kind == "passes" else list(TIMES)
                made = [verdict.higher("batch", b, "online", o, f"{what}{_spread(k)}")
                        for k in kinds if o is not None and (b := estimate(at[k][BATCH]["runs"], key)) is not None]
                if made:
                    out.setdefault(name, []).append(made[0] if kind == "passes" else verdict.tally(
                        f"{what}, batch's budget {_factors()}", made))
    return out


def _factors() -> str:
    """Batch's equal-time budgets as factors: "x0.8, x1 and x1.2"."""
    xs = [f"x{f:g}" for f in TIMES.values()]
    return ", ".join(xs[:-1]) + " and " + xs[-1]


def _spread(kind: str) -> str:
    """How a budget kind scales batch's equal-time budget, as a quantity's suffix ("" at x1)."""
    return f" (batch's budget {kind.split()[1]})" if kind in SPREAD else ""


def tallies(made: dict[str, list[verdict.Verdict]]) -> list[verdict.Verdict]:
    """The per-set verdicts counted, one tally per budget."""
    return [verdict.tally(f"batch's test error against online's at {name} (\"higher\": online ahead)", vs)
            for name, vs in made.items()]


def curve_figure(results: dict) -> None:
    """Median test loss against wall time, one panel per set, one line per method (equal-time runs)."""
    from bpkit import figures

    plt = figures.pyplot()
    sets = list(results["sets"])
    fig, axes = plt.subplots(2, math.ceil(len(sets) / 2), figsize=(13, 6.5), squeeze=False)
    colors = figures.palette(plt, list(METHODS))
    for ax, label in zip(axes.flat, sets, strict=False):
        res = results["sets"][label]
        at = res["budgets"][str(results["passes"][-1])]
        for m in METHODS:
            c = at["time"][m]
            t = (np.asarray(c["curve_epochs"], float) * res["seconds_per_epoch"][m] if c.get("max_cu") is None else
                 np.asarray([math.nan if v is None else v for v in c["curve_cu"]]) * res["seconds_per_cu"][m])
            ax.plot(t, [math.nan if v is None else v for v in c["curve"]], color=colors[m], lw=1.2, label=m)
        ax.axhline(res["constant"]["test_loss"], color="0.6", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", title=label)
        ax.title.set_fontsize(9)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(sets):]:
        ax.set_visible(False)
    fig.supxlabel("wall time of one run alone (s)", fontsize=8)
    fig.supylabel("test loss (half MSE), median over report seeds", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    FOLDER.save_figure(fig, NAME)
    plt.close(fig)


def section() -> None:
    results = FOLDER.load_json(NAME)
    curve_figure(results)
    by_budget = verdicts(results)
    judged = [v for vs in by_budget.values() for v in vs]
    made = FOLDER.save_verdicts(NAME, judged + tallies(by_budget))
    per_set, counted = made[: len(judged)], made[len(judged):]
    tune, rep = results["tune_seeds"], results["report_seeds"]
    body = [
        "## Study 5b: online vs batch on real data sets",
        "",
        f"Command: `python3 experiments/{NAME}.py` (about {results['wall_s'] / 60:.0f} min on this machine's 2 "
        f"cores; every number below from `experiments/results/{NAME}.json`, written by that run).",
        "",
        "Published (../shared/REFERENCES.md): batch training is almost always slower than online, often by orders "
        "of magnitude on large training sets, with no difference in accuracy (Wilson & Martinez 2003); batch "
        "allows acceleration, momentum or conjugate gradient (LeCun et al. 1998).",
        "",
        "Setup: FANN's real benchmark sets with its own test files and its benchmark's layers, and digits; "
        "sigmoid units, half MSE, LeCun-normal init, float32. Two kinds of budget, each at "
        f"{' and '.join(map(str, results['passes']))} passes: **equal passes** over the training set (CG: 3 cu "
        "per pass, a gradient 3 cu); **equal wall time**, the time online takes for those passes, each method's "
        "epochs that time over its own measured time per epoch (one run alone on one of the "
        f"{study.CPU_DEVICES} CPU devices the study runs on, in calls of {PROBE_EPOCHS} epochs, the methods timed in alternation; an epoch of online or mini-batch ends with its "
        "training and test loss, a forward pass over each set, batch's with its loss and gradient, its next step's); "
        "CG, whose iterations cost what its line searches "
        "take, within that time over its measured seconds per cu, as a cu cap. Each method's learning rate (CG: c2) is chosen per set and budget on seeds "
        f"{tune[0]}-{tune[-1]} by the lowest mean final training loss over every rung of the ladder "
        f"{', '.join(f'{v:g}' for v in LR_LADDER)} (c2: {', '.join(f'{v:g}' for v in C2_LADDER)}); "
        f"\"(edge)\" marks a choice at the end of the ladder, with the rungs in a row from it that score within "
        f"{FLAT:.0%} of it (a plateau). At equal wall time batch also runs "
        f"{' and '.join(f'{f:g}' for f in SPREAD.values())} times its budget (as if its measured time per epoch "
        "were that far off), each budget with its own tuned rate, and batch against online at equal time is "
        "judged at all three: one word where the three give the same, \"mixed\" where they do not. "
        "Each seed and value runs once to the method's "
        "largest budget, its params kept at each smaller one (CG's cu-capped budgets apart). "
        f"**Every number comes from seeds {rep[0]}-{rep[-1]}**: mean [bootstrap 95%]; test error is the "
        "fraction of test examples classified wrong (the largest output, or the output's side of 0.5).",
        "",
    ]
    for label, res in results["sets"].items():
        times = ", ".join(f"{p} passes {at['budget_s']:.3g} s" for p, at in res["budgets"].items())
        const = res["constant"]
        guess = f"test loss {const['test_loss']:.4g}" + (f", test error {const['test_error']:.4g}"
                                                          if const["test_error"] is not None else "")
        body += [f"**{label}** ({res['examples']:,} training, {res['test_examples']:,} test examples; online's time "
                 f"for {times}; predicting the training targets' mean for every example: {guess}):", "",
                 set_table(label, res).markdown(), ""]
    body += [f"![test loss against wall time](figures/{NAME}.png)", "",
             f"Median test loss over the report seeds against wall time, the equal-time runs of online's "
             f"{results['passes'][-1]} passes; dotted, the mean predictor's.", "",
             "**Conclusion**, batch against online by rule, counted over the sets: "
             + "; ".join(v.text for v in counted) + ". Set by set (\"batch higher\": online ahead): "
             + "; ".join(v.text for v in per_set) + "."]
    FOLDER.write_section(NAME, "\n".join(body))


def main(argv: list[str] | None = None) -> int:
    return FOLDER.cli(NAME, __doc__, argv, run, section)


if __name__ == "__main__":
    sys.exit(main())
