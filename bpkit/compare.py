"""Fair comparisons from stored runs: per criterion, success with intervals, cost with restarts, tuning.

The runs of a store fall into *problems* (the data and network a method is
asked to learn), *methods* (how it learns: optimizer, batch size, gradient
source), *activations*, and *settings* (the continuous hyperparameters a
sweep vmaps: learning rate, momentum, quickprop's mu, init scale).  A cell is
one (problem, method, activation, setting) over its seeds.

For each success criterion a run switched on (the loss goal, 40-20-40), a run
*succeeds* if it met the criterion at some epoch; its *cost* is its cost to
that first epoch if it succeeded and its whole cost if it did not.  Read off
the stored curves, exactly as the loop judged them (in the run's dtype).

**Tuning.** Each (problem, method, activation) picks, per criterion, the
setting with the lowest expected cost to a success with restarts
(:func:`bpkit.stats.restart_cost`, in cu), ties going to more successes.  The
choice is reported, with the number of settings it was chosen from (the
tuning budget) and a flag where it lies at the edge of its grid: the best
value may lie beyond it.  Choosing the best of several settings on the same
seeds favours methods with more settings; the report shows each budget.

Example:
    >>> from bpkit.store import Store
    >>> runs, _ = Store("results/flagship.sqlite", create=False).runs()   # doctest: +SKIP
    >>> for a in answers(runs):                                            # doctest: +SKIP
    ...     print(a.problem, a.criterion, a.method, a.activation, a.success, a.cost_cu.value)
"""

from __future__ import annotations

import collections
import math
from collections.abc import Collection, Container, Iterable
from typing import Any, NamedTuple

import numpy as np

from bpkit import stats
from bpkit.spec import INIT_KEYS, TUNED  # a sweep's vmapped settings; what fixes a seed's initial weights

CRITERIA = ("goal", "40-20-40", "bit fail")


def output_criterion(config: dict[str, Any]) -> str | None:
    """The criterion on the outputs a run's config switched on (judged from its ``wrong`` counts), or None."""
    if config.get("training.criterion_40_20_40"):
        return "40-20-40"
    if (config.get("training.bit_fail") or 0) > 0:
        return "bit fail"
    return None


def criteria(config: dict[str, Any]) -> list[str]:
    """The success criteria a run's config switched on."""
    out = []
    if config.get("training.goal", -1) >= 0:
        out.append("goal")
    if (crit := output_criterion(config)) is not None:
        out.append(crit)
    return out


class Attempt(NamedTuple):
    """One run judged by one criterion."""

    success: bool
    epochs: int  # to the first epoch the criterion held, or the whole run
    cu: float  # likewise, in complexity units (loss evaluation 1, gradient 3)
    ended: str = ""  # a failed run: what ended it (its stop reason); "" for a success


def attempt(run: dict[str, Any], criterion: str, target: float | None = None) -> Attempt:
    """Whether ``run`` met ``criterion`` and what it cost, from its stored curves.

    The goal is compared in the run's dtype, as the compiled loop compares it;
    unmeasured epochs (NaN) never count.  A run that stored records within epochs
    (``training.measures_per_epoch = m``: ``curves["within"]``) is judged at each of
    them, in order: its success is the first record at which the criterion held, its
    cost the evaluations counted there (a fraction of an epoch's), and ``epochs`` the
    epoch that record lies in.  So online learning that reaches the goal in its first
    pass costs that part of a pass, not the whole epoch the loop judges at its end.
    More records are also more chances to catch a fluctuating loss below the goal, and
    their own evaluations are not in the cost: compare methods measured alike (the
    report notes a store that mixes them).

    ``target``: judge the loss goal at this loss instead of the run's own goal (a ladder of
    targets: :mod:`bpkit.runtime`).
    """
    c, curves = run["config"], run["curves"]
    m = 1
    if curves.get("within"):  # (epochs, m) records per field, read in order
        w = curves["within"]
        m = len(w["loss"][0]) if w["loss"] else 1
        curves = {k: [x for row in w[k] for x in row] for k in ATTEMPT_CURVES}
    if criterion == "goal":
        dt = np.dtype(c.get("dtype", "float32"))
        loss = np.array([np.nan if v is None else v for v in curves.get("loss", [])], dtype=np.float64).astype(dt)
        with np.errstate(invalid="ignore"):
            holds = loss <= dt.type(c["training.goal"] if target is None else target)
    elif criterion in ("40-20-40", "bit fail"):  # the run counted its wrong outputs by the one it had on
        holds = np.asarray(curves.get("wrong", []), dtype=np.int64) == 0
    else:
        raise ValueError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    hits = np.flatnonzero(holds)
    if hits.size == 0:
        return Attempt(False, int(run["epochs"] or 0), float(run["cu"] or 0.0), str(run.get("stop_reason") or "?"))
    i = int(hits[0])
    le, ge = curves["loss_evals"][i], curves["grad_evals"][i]
    return Attempt(True, i // m + 1, float(le + 3 * ge))


ATTEMPT_CURVES = ("loss", "wrong", "loss_evals", "grad_evals")  # what :func:`attempt` reads (and "within"'s)


def slim(run: dict[str, Any]) -> dict[str, Any]:
    """``run`` with only what :func:`attempt` reads: its curves up to the last epoch at which one of its
    criteria first held (a failed attempt reads none).  Every attempt of the slim run equals the full
    run's; a store of long runs fits in memory.  For ``Store.runs(each=slim)``.
    """
    ends = [a.epochs for crit in criteria(run["config"]) if (a := attempt(run, crit)).success]
    n = max(ends, default=0)
    curves = {k: v[:n] for k, v in run["curves"].items() if k in ATTEMPT_CURVES}
    for counts in ("bit_fails", "dead_units"):  # final counts, not curves: kept whole
        if counts in run["curves"]:
            curves[counts] = run["curves"][counts]
    if run["curves"].get("within"):
        curves["within"] = {k: v[:n] for k, v in run["curves"]["within"].items() if k in ATTEMPT_CURVES}
    return {**run, "curves": curves}


class Cell(NamedTuple):
    """One (problem, method, activation, setting) over its seeds, judged by one criterion."""

    problem: str
    method: str
    activation: str
    setting: tuple[tuple[str, Any], ...]  # (key, value) of each tuned key that varies in its group
    criterion: str
    seeds: tuple[int, ...]
    attempts: tuple[Attempt, ...]
    init: tuple  # what fixes the initial weights of a seed (same init + seed: same weights)
    run_ids: tuple[str, ...]

    @property
    def successes(self) -> int:
        return sum(a.success for a in self.attempts)

    @property
    def runs(self) -> int:
        return len(self.attempts)

    @property
    def restart_cu(self) -> float:
        return stats.restart_cost([a.cu for a in self.attempts], [a.success for a in self.attempts])

    def on(self, seeds: Container[int]) -> Cell:
        """This cell's runs of ``seeds`` only."""
        keep = [i for i, s in enumerate(self.seeds) if s in seeds]
        return self._replace(seeds=tuple(self.seeds[i] for i in keep), attempts=tuple(self.attempts[i] for i in keep),
                             run_ids=tuple(self.run_ids[i] for i in keep))


class Answer(NamedTuple):
    """The tuned result of one (problem, criterion, method, activation)."""

    problem: str
    criterion: str
    method: str
    activation: str
    chosen: Cell  # the chosen setting's cell (the first setting where none succeeded)
    tuned: bool  # False: no setting succeeded, so nothing was chosen
    budget: int  # settings it was chosen from
    edge: tuple[str, ...]  # tuned keys whose chosen value is the smallest or largest of the grid
    success: int
    runs: int
    success_ci: tuple[float, float]  # Wilson 95%
    cost_cu: stats.Estimate  # expected cu to a success with restarts, bootstrap 95%
    cost_epochs: stats.Estimate
    held_out: bool = False  # chosen on other seeds than those of ``chosen`` (which every number comes from)
    cutoff: stats.Cutoff = stats.Cutoff(math.inf, math.nan)  # the cost with restarts at its best cutoff
    mean_success_cu: float = math.nan  # the mean cost of the successful runs alone (how papers report)
    failures: tuple[tuple[str, int], ...] = ()  # the failed runs by what ended them

    @property
    def setting_text(self) -> str:
        if not self.chosen.setting:
            return "-"
        return ", ".join(f"{k.split('.')[-1]} {v:g}" for k, v in self.chosen.setting) + (" (edge)" if self.edge else "")


def names(runs: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """(problem, method) display names per run id: label parts, else data set and optimizer."""
    out = {}
    for r in runs:
        c = r["config"]
        parts = [p for p in str(c.get("label") or "").split("/") if p]
        if len(parts) >= 2:
            problem, method = "/".join(parts[:-1]), parts[-1]
        else:
            hidden = "-".join(str(h) for h in c.get("network.hidden", []))
            problem = c.get("data.path") or c.get("data.name", "?")
            problem = f"{problem}, hidden {hidden}" if hidden else problem
            method = parts[0] if parts else f"{c.get('optimizer.name')} batch={c.get('training.batch_size')}"
        out[r["run_id"]] = (problem, method)
    return out


class Setting(NamedTuple):
    """One (problem, method, activation, setting): its runs, sorted by seed."""

    problem: str
    method: str
    activation: str
    setting: tuple[tuple[str, Any], ...]  # (key, value) of each tuned key that varies in its group
    runs: list[dict[str, Any]]


def settings(runs: list[dict[str, Any]]) -> list[Setting]:
    """``runs`` by configuration, configs in the order given: a tuning group is the configs equal but
    for the tuned keys, and the keys that vary inside a group are each config's setting."""
    display = names(runs)
    by_config: dict[str, list[dict[str, Any]]] = {}
    for r in runs:  # configs in the order given, seeds sorted within each
        by_config.setdefault(r["config_hash"], []).append(r)
    by_config = {h: sorted(m, key=lambda r: r["seed"]) for h, m in by_config.items()}
    groups: dict[str, list[str]] = {}
    for h, members in by_config.items():
        c = members[0]["config"]
        key = repr(sorted((k, v) for k, v in c.items() if k not in TUNED + ("seed", "label")))
        groups.setdefault(key, []).append(h)
    out = []
    for hashes in groups.values():
        configs = [by_config[h][0]["config"] for h in hashes]
        varying = [k for k in TUNED if len({repr(c.get(k)) for c in configs}) > 1]
        for h in hashes:
            members = by_config[h]
            c = members[0]["config"]
            problem, method = display[members[0]["run_id"]]
            out.append(Setting(problem, method, str(c.get("network.activation")), tuple((k, c[k]) for k in varying),
                               members))
    return out


def cells(runs: list[dict[str, Any]]) -> list[Cell]:
    """Every cell of ``runs`` under every criterion its configs switched on, configs in the order given."""
    out = []
    for s in settings(runs):
        c = s.runs[0]["config"]
        for crit in criteria(c):
            out.append(Cell(s.problem, s.method, s.activation, s.setting, crit, tuple(int(r["seed"]) for r in s.runs),
                            tuple(attempt(r, crit) for r in s.runs), tuple(repr(c.get(k)) for k in INIT_KEYS),
                            tuple(r["run_id"] for r in s.runs)))
    return out


def edge_keys(chosen: tuple[tuple[str, Any], ...], group: Iterable[tuple[tuple[str, Any], ...]]) -> tuple[str, ...]:
    """The tuned keys whose ``chosen`` value is the smallest or largest of the group's settings."""
    group = list(group)
    out = []
    for i, (k, v) in enumerate(chosen):
        values = sorted({g[i][1] for g in group})
        if len(values) > 1 and v in (values[0], values[-1]):
            out.append(k)
    return tuple(out)


def _choose(group: list[Cell]) -> tuple[Cell, bool]:
    """The setting with the lowest expected cu with restarts, ties to more successes; or none succeeded."""
    best = min(group, key=lambda c: (c.restart_cu, -c.successes))
    return best, best.successes > 0


def _edge(chosen: Cell, group: list[Cell]) -> tuple[str, ...]:
    return edge_keys(chosen.setting, (c.setting for c in group))


def answers(runs: list[dict[str, Any]], *, seed: int = 0, tune_seeds: Collection[int] = ()) -> list[Answer]:
    """One tuned :class:`Answer` per (problem, criterion, method, activation) of ``runs`` (``tune_seeds``:
    see :func:`tune`)."""
    return tune(cells(runs), seed=seed, tune_seeds=tune_seeds)


def tune(cells_: Iterable[Cell], *, seed: int = 0, tune_seeds: Collection[int] = ()) -> list[Answer]:
    """One tuned :class:`Answer` per (problem, criterion, method, activation) of ``cells_``: the
    cells of one such group are its settings.  For cells made by a caller from its own runs
    (a study that keeps no curves judges each run with :func:`attempt` as it finishes).

    ``tune_seeds``: choose each setting on these seeds' runs and report every number on the other
    seeds' (held out).  Empty: choose and report on the same seeds, which favours a setting that
    happened to meet lucky seeds, and more so the more settings a method was given.
    """
    groups: dict[tuple, list[Cell]] = {}
    for c in cells_:
        groups.setdefault((c.problem, c.criterion, c.method, c.activation), []).append(c)
    tuning = frozenset(tune_seeds)
    out = []
    for (problem, crit, method, act), group in groups.items():
        chosen, tuned = _choose([c.on(tuning) for c in group] if tuning else group)
        full = next(c for c in group if c.setting == chosen.setting)
        reported = full.on(frozenset(full.seeds) - tuning) if tuning else full
        out.append(_answer(problem, crit, method, act, reported, tuned, group, seed, bool(tuning)))
    return out


def _answer(problem: str, crit: str, method: str, act: str, chosen: Cell, tuned: bool, group: list[Cell],
            seed: int, held_out: bool) -> Answer:
    """The numbers of one answer, all from ``chosen``'s runs."""
    cu, succ = [a.cu for a in chosen.attempts], [a.success for a in chosen.attempts]
    won = [a.cu for a in chosen.attempts if a.success]
    ended = collections.Counter(a.ended for a in chosen.attempts if not a.success)
    return Answer(
        problem, crit, method, act, chosen, tuned, len(group), _edge(chosen, group) if tuned else (),
        chosen.successes, chosen.runs, stats.wilson(chosen.successes, chosen.runs),
        stats.bootstrap_restart_cost(cu, succ, seed=seed),
        stats.bootstrap_restart_cost([a.epochs for a in chosen.attempts], succ, seed=seed),
        held_out, stats.best_cutoff(cu, succ), float(np.mean(won)) if won else math.nan,
        tuple(sorted(ended.items())))


def halves(seeds: Iterable[int]) -> tuple[tuple[str, list[int]], tuple[str, list[int]]]:
    """The reviewer's split of held-out ``seeds``: ("first", the lower half), ("second", the rest), sorted.

    Example:
        >>> halves([13, 10, 12, 11, 14])
        (('first', [10, 11]), ('second', [12, 13, 14]))
    """
    seeds = sorted(seeds)
    return ("first", seeds[: len(seeds) // 2]), ("second", seeds[len(seeds) // 2:])


def on_seeds(answers_: Iterable[Answer], seeds: Container[int], *, seed: int = 0) -> list[Answer]:
    """Each answer's numbers again from its chosen setting's runs of ``seeds`` alone, the setting as chosen
    (its budget and edge as they were): the reviewer's check reads each half of the held-out seeds so."""
    return [_answer(a.problem, a.criterion, a.method, a.activation, a.chosen.on(seeds), a.tuned, [], seed,
                    a.held_out)._replace(budget=a.budget, edge=a.edge) for a in answers_]


class Ratio(NamedTuple):
    """A method's expected cost over the cheapest method's, in one (problem, criterion, activation)."""

    method: str
    versus: str
    paired: bool
    ratio: stats.Estimate


def ratios(answers_: Iterable[Answer], *, seed: int = 0) -> dict[tuple[str, str, str], list[Ratio]]:
    """Per (problem, criterion, activation): each method's cost ratio to the cheapest one there.

    Paired by seed when both chosen cells share their seeds and what fixes the
    initial weights (then run i of each started from the same weights).
    """
    by: dict[tuple[str, str, str], list[Answer]] = {}
    for a in answers_:
        by.setdefault((a.problem, a.criterion, a.activation), []).append(a)
    out = {}
    for key, group in by.items():
        ok = [a for a in group if a.success]
        if not ok:
            continue
        best = min(ok, key=lambda a: a.cost_cu.value)
        rows = []
        for a in group:
            x, b = a.chosen, best.chosen
            paired = x.seeds == b.seeds and x.init == b.init
            rows.append(Ratio(a.method, best.method, paired, stats.bootstrap_cost_ratio(
                [t.cu for t in x.attempts], [t.success for t in x.attempts],
                [t.cu for t in b.attempts], [t.success for t in b.attempts], paired=paired, seed=seed)))
        out[key] = rows
    return out


class Paired(NamedTuple):
    """A method's successes against the most successful method's, run from the same starts."""

    method: str
    versus: str
    test: stats.McNemar | None  # None: the two were not run from the same starts


def paired_success(answers_: Iterable[Answer]) -> dict[tuple[str, str, str], list[Paired]]:
    """Per (problem, criterion, activation): McNemar's exact test of each method against the one with
    the most successes there, where run i of both started from the same weights (same seeds and
    init); their intervals alone would ignore that pairing."""
    by: dict[tuple[str, str, str], list[Answer]] = {}
    for a in answers_:
        by.setdefault((a.problem, a.criterion, a.activation), []).append(a)
    out = {}
    for key, group in by.items():
        best = max(group, key=lambda a: a.success / a.runs)
        rows = []
        for a in group:
            x, b = a.chosen, best.chosen
            same = x.seeds == b.seeds and x.init == b.init
            test = stats.mcnemar([t.success for t in x.attempts], [t.success for t in b.attempts]) if same else None
            rows.append(Paired(a.method, best.method, test))
        out[key] = rows
    return out


def pooled(answers_: Iterable[Answer], **where: str) -> stats.Estimate:
    """The success rate pooled over the chosen runs of the answers that match ``where`` (fields of
    :class:`Answer`, e.g. ``method="SCG"``), with an interval that resamples whole starts: runs from
    the same initial weights (same seed and init) are one cluster.

    Raises:
        ValueError: no answer matches.
    """
    picked = [a for a in answers_ if all(getattr(a, k) == v for k, v in where.items())]
    if not picked:
        raise ValueError(f"no answer has {where}")
    success = [t.success for a in picked for t in a.chosen.attempts]
    starts = [(a.problem, a.chosen.init, s) for a in picked for s in a.chosen.seeds]
    return stats.pooled_rate(success, starts)


def budgets(answers_: Iterable[Answer]) -> dict[str, int]:
    """Each method's tuning budget (settings per cell; the largest where cells differ)."""
    out: dict[str, int] = {}
    for a in answers_:
        out[a.method] = max(out.get(a.method, 0), a.budget)
    return out


def short(v: float) -> str:
    """Three significant digits, thousands as k and millions as M: ``4950 -> 4.95k``, ``inf -> inf``."""
    if not math.isfinite(v):
        return "inf" if v > 0 else "-"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def fmt_cost(e: stats.Estimate) -> str:
    """``4.95k [2.72k, 9.25k]``; ``-`` when nothing succeeded; ``inf`` ends an interval open upwards."""
    if not math.isfinite(e.value):
        return "-"
    return f"{short(e.value)} [{short(e.lo)}, {short(e.hi)}]"


def sensitivity(cells_: Iterable[Cell], problem: str, crit: str) -> tuple[dict[str, dict[str, list]], dict[str, str]]:
    """Each method's success rate and expected cost with restarts at every setting it was run with, on one
    problem and criterion: ``points[method][activation] = [(value, rate, cost), ...]`` and ``keys[method]``,
    the tuned key on the x axis.  A method whose settings vary in more than one key is drawn along the
    first; one without settings is left out."""
    points: dict[str, dict[str, list]] = {}
    keys: dict[str, str] = {}
    for c in cells_:
        if c.problem != problem or c.criterion != crit or not c.setting:
            continue
        key, value = c.setting[0]
        keys[c.method] = key.split(".")[-1]
        points.setdefault(c.method, {}).setdefault(c.activation, []).append(
            (float(value), c.successes / c.runs, c.restart_cu))
    return points, keys
