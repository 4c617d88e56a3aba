"""The report's figures, one function each: success heatmaps, costs with intervals, learning curves.

Each takes the tuned :class:`bpkit.compare.Answer` rows of one problem (and,
for the curves, the stored runs) and saves PNG and SVG through
:func:`save_figure`, atomically.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bpkit.compare import Answer


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def palette(plt, names: Sequence[str]) -> dict[str, Any]:
    """A distinct colour per name: matplotlib's ten, or its twenty (in pairs of a dark and a light shade)
    where there are more than ten; past twenty they repeat."""
    cmap, n = (plt.get_cmap("tab10"), 10) if len(names) <= 10 else (plt.get_cmap("tab20"), 20)
    return {m: cmap(i % n) for i, m in enumerate(names)}


def save_figure(fig, stem: Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Save ``fig`` as ``stem.<format>`` for each format, atomically: a killed run never leaves half a figure.

    The same figure gives the same bytes: no date in the metadata, and SVG element ids from a fixed
    salt (matplotlib draws them at random otherwise), so a re-run study leaves its figures unchanged.
    """
    import matplotlib

    paths = []
    for ext in formats:
        p = stem.with_suffix(f".{ext}")
        tmp = p.with_suffix(f".tmp.{ext}")
        meta = {"Date": None} if ext in ("svg", "pdf") else {}
        with matplotlib.rc_context({"svg.hashsalt": "bpkit"}):
            fig.savefig(tmp, dpi=110, metadata=meta)
        tmp.replace(p)
        paths.append(p)
    return paths


def axes_of(answers: Sequence[Answer]) -> tuple[list[str], list[str], list[str]]:
    """(criteria, methods, activations) of ``answers``, in order of first appearance."""
    pick = lambda f: list(dict.fromkeys(f(a) for a in answers))
    return pick(lambda a: a.criterion), pick(lambda a: a.method), pick(lambda a: a.activation)


def _grid(answers: Sequence[Answer], crit: str) -> dict[tuple[str, str], Answer]:
    return {(a.method, a.activation): a for a in answers if a.criterion == crit}


def success_heatmap(answers: Sequence[Answer], title: str, stem: Path) -> list[Path]:
    """Success rate per method x activation, one panel per criterion, each cell labelled ``k/n``."""
    plt = pyplot()
    crits, methods, acts = axes_of(answers)
    fig, axes = plt.subplots(1, len(crits), figsize=(1.0 + 1.25 * len(acts) * len(crits) + 1.4 * len(crits),
                                                      1.2 + 0.45 * len(methods)), squeeze=False)
    for ax, crit in zip(axes[0], crits, strict=True):
        grid = _grid(answers, crit)
        rate = np.full((len(methods), len(acts)), np.nan)
        for (i, m), (j, a) in ((im, ja) for im in enumerate(methods) for ja in enumerate(acts)):
            if (m, a) in grid:
                g = grid[m, a]
                rate[i, j] = 100 * g.success / g.runs
                ax.text(j, i, f"{g.success}/{g.runs}", ha="center", va="center", fontsize=8,
                        color="white" if rate[i, j] < 50 else "black")
        im = ax.imshow(rate, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(acts)), acts, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.set_title(f"success by {crit}", fontsize=9)
        fig.colorbar(im, ax=ax, label="success %", fraction=0.05, pad=0.03)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


def cost_figure(answers: Sequence[Answer], title: str, stem: Path) -> list[Path]:
    """Expected cu to a success with restarts and its 95% interval, one marker per method and activation.

    Log scale; categories are not joined by lines.  An interval open upwards is
    drawn to the top of the panel with an arrow; a cell where no run succeeded
    is an ``x`` on the top edge.
    """
    plt = pyplot()
    crits, methods, acts = axes_of(answers)
    colors = palette(plt, methods)
    # Each panel at least as wide as its 9-point title (about 0.075 inch a character), so titles never overlap.
    panel = max(1.3 * len(acts), max(0.075 * len(_cost_title(c)) + 0.3 for c in crits))
    fig, axes = plt.subplots(1, len(crits), figsize=(_width(1.5 + panel * len(crits), methods, title), 3.4),
                             squeeze=False)
    width = 0.7 / max(1, len(methods))
    for ax, crit in zip(axes[0], crits, strict=True):
        grid = _grid(answers, crit)
        finite = [v for g in grid.values() for v in (g.cost_cu.value, g.cost_cu.lo, g.cost_cu.hi) if math.isfinite(v)]
        if not finite:
            ax.text(0.5, 0.5, "no run succeeded", transform=ax.transAxes, ha="center", va="center")
            top = 10.0
        else:
            top = 3 * max(finite)
            ax.set_ylim(min(finite) / 3, top)
        for i, m in enumerate(methods):
            for j, a in enumerate(acts):
                if (m, a) not in grid:
                    continue
                x, e = j + (i - (len(methods) - 1) / 2) * width, grid[m, a].cost_cu
                if not math.isfinite(e.value):
                    ax.plot([x], [top / 1.15], "x", color=colors[m], ms=6)
                    continue
                hi = e.hi if math.isfinite(e.hi) else top
                ax.errorbar([x], [e.value], yerr=[[e.value - e.lo], [hi - e.value]], fmt="o", ms=4,
                            color=colors[m], capsize=2, lw=1)
                if not math.isfinite(e.hi):
                    ax.annotate("", (x, top), (x, e.value), arrowprops={"arrowstyle": "->", "color": colors[m]})
        ax.set_yscale("log")
        ax.set_xticks(range(len(acts)), acts, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(acts) - 0.5)
        ax.set_title(_cost_title(crit), fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3, which="both")
    _title_and_legend(fig, title, [plt.Line2D([], [], color=colors[m], marker="o", ls="", label=m) for m in methods])
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


def median_curve(losses: Sequence[Sequence[float | None]]) -> tuple[np.ndarray, np.ndarray]:
    """The median over runs of positive losses at each epoch, and the 1-based epochs that have one.

    A run that stopped early keeps its last loss; None (an epoch not measured, as with
    ``training.measure_every``) and non-positive losses are left out of the median, and an
    epoch no run measured is left out of the curve, so a curve measured every k epochs is a
    line through its measured points, not gaps.

    Example:
        >>> median_curve([[0.5, None, 0.2], [0.4, None, 0.1, 0.05]])
        (array([1, 3, 4]), array([0.45 , 0.15 , 0.125]))
    """
    curves = [np.array([np.nan if v is None else v for v in c], float) for c in losses]
    n = max((len(c) for c in curves), default=0)
    if n == 0:
        return np.zeros(0, int), np.zeros(0)
    padded = np.array([np.pad(c, (0, n - len(c)), mode="edge") if len(c) else np.full(n, np.nan) for c in curves])
    with warnings.catch_warnings():  # an epoch where every seed is NaN has a NaN median
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.where(padded > 0, padded, np.nan), 0)
    seen = np.isfinite(med)
    return np.arange(1, n + 1)[seen], med[seen]


def learning_curves(answers: Sequence[Answer], runs_by_cell: dict[tuple[str, str], list[dict[str, Any]]],
                    title: str, stem: Path) -> list[Path]:
    """Median training loss over seeds against epochs, one panel per activation, one line per method.

    ``runs_by_cell[(method, activation)]`` are the runs of the setting chosen
    for the first criterion.  Every panel shares both axes (log-log).  Runs
    that stopped early keep their last loss, so the median is over all seeds.
    """
    plt = pyplot()
    _, methods, acts = axes_of(answers)
    colors = palette(plt, methods)
    ncol = min(5, len(acts))
    nrow = math.ceil(len(acts) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(0.5 + 2.9 * ncol, 0.8 + 2.4 * nrow), squeeze=False,
                             sharex=True, sharey=True)
    for ax, act in zip(axes.flat, acts, strict=True):
        for m in methods:
            epochs, med = median_curve([r["curves"].get("loss", []) for r in runs_by_cell.get((m, act), [])])
            if len(epochs):
                ax.plot(epochs, med, color=colors[m], lw=1.2)
        ax.set_title(act, fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="major")
    return _finish_grid(fig, axes, len(acts), ("epoch", "median training loss"), title, colors, stem)


def fixed_budget_figure(labels: Sequence[str], curves: Sequence[Sequence[Sequence[float | None]]],
                        errors: Sequence[Sequence[float]], title: str, stem: Path) -> list[Path]:
    """A fixed-budget comparison, one colour per method (``labels``): the median training loss over seeds
    against epochs (log-log; ``curves[i]``: method i's runs' loss curves), and each method's final test
    errors (``errors[i]``: one per seed, a dot each) with their mean and bootstrap 95% interval.  A method
    without test errors has no marker in the second panel."""
    from bpkit import stats

    plt = pyplot()
    colors = list(palette(plt, [str(i) for i in range(len(labels))]).values())
    fig, (left, right) = plt.subplots(1, 2, figsize=(_width(7.0, labels, title), 3.2))
    for i, runs in enumerate(curves):
        epochs, med = median_curve(runs)
        if len(epochs):
            left.plot(epochs, med, color=colors[i], lw=1.2)
    left.set(xscale="log", yscale="log", xlabel="epoch", ylabel="median training loss (each its own)")
    left.grid(alpha=0.3, which="major")
    jitter = np.random.default_rng(0)  # where the dots sit, not the data: a fixed seed keeps figures reproducible
    for i, values in enumerate(errors):
        if not len(values):
            continue
        right.plot(i + jitter.uniform(-0.18, 0.18, len(values)), values, ".", color=colors[i], alpha=0.45, ms=4)
        e = stats.bootstrap_mean(values)
        right.errorbar([i + 0.3], [e.value], yerr=[[e.value - e.lo], [e.hi - e.value]], fmt="o", ms=4,
                       color=colors[i], capsize=2, lw=1)
    right.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    right.set_xlim(-0.5, len(labels) - 0.5)
    right.set_ylabel("test error (mean, 95% interval)")
    right.grid(axis="y", alpha=0.3)
    for ax in (left, right):
        ax.tick_params(labelsize=8)
    _title_and_legend(fig, title, [plt.Line2D([], [], color=c, lw=1.2, label=m) for m, c in
                                   zip(labels, colors, strict=True)])
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


def _cost_title(crit: str) -> str:
    return f"cu to a success by {crit} (restarts)"


def _width(panels: float, labels: Sequence[str], title: str) -> float:
    """A figure's width in inches: the panels', or wider where the legend's one row of ``labels`` or the
    title (8- and 10-point text, about 0.07 and 0.09 inch a character) would not fit; at most 14."""
    legend = sum(0.07 * len(m) + 0.45 for m in labels) + 0.4
    return min(max(panels, legend, 0.09 * len(title) + 0.4), 14.0)


def _title_and_legend(fig, title: str, handles: list) -> None:
    """The problem's name on top, the methods' legend in one row under it, the panels below both."""
    height = fig.get_figheight()
    fig.suptitle(title, fontsize=10, y=1 - 0.04 / height, va="top")
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.22 / height))
    fig.tight_layout()
    fig.subplots_adjust(top=1 - 0.78 / height)  # below the title, the legend and the panels' own titles


def _finish_grid(fig, axes, used: int, labels: tuple[str, str], title: str, colors: dict, stem: Path) -> list[Path]:
    """Blank the grid's unused panels, label the shared axes, add the title and the methods' line legend, save."""
    plt = pyplot()
    for ax in list(axes.flat)[used:]:
        ax.axis("off")
    fig.supxlabel(labels[0], fontsize=9)
    fig.supylabel(labels[1], fontsize=9)
    _title_and_legend(fig, title, [plt.Line2D([], [], color=c, label=m) for m, c in colors.items()])
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


def ecdf_figure(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], title: str, stem: Path) -> list[Path]:
    """Runtime distributions: ``curves[panel][method] = (budgets, fractions)``, the fraction of (run, target)
    pairs met within each budget in cu; one panel per activation (or any grouping), one line per method,
    a log budget axis shared by every panel."""
    plt = pyplot()
    panels = list(curves)
    methods = list(dict.fromkeys(m for p in curves.values() for m in p))
    colors = palette(plt, methods)
    ncol = min(5, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(_width(0.5 + 2.9 * ncol, methods, title), 0.9 + 2.4 * nrow),
                             squeeze=False, sharex=True, sharey=True)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for m, (budgets, frac) in curves[panel].items():
            ax.step(budgets, frac, where="post", color=colors[m], lw=1.2)
        ax.set_title(panel, fontsize=9)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="major")
    return _finish_grid(fig, axes, len(panels), ("budget (cu)", "fraction of (run, target) pairs met"), title,
                        colors, stem)


def profile_figure(taus: np.ndarray, profiles: dict[str, dict[str, np.ndarray]], title: str,
                   stem: Path) -> list[Path]:
    """Performance profiles: ``profiles[panel][method]``, the fraction of problems where the method's cost is
    within ``tau`` times the best method's; one panel per criterion."""
    plt = pyplot()
    panels = list(profiles)
    methods = list(dict.fromkeys(m for p in profiles.values() for m in p))
    colors = palette(plt, methods)
    fig, axes = plt.subplots(1, len(panels), figsize=(_width(0.6 + 3.4 * len(panels), methods, title), 3.2),
                             squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels, strict=True):
        for m, frac in profiles[panel].items():
            ax.step(taus, frac, where="post", color=colors[m], lw=1.2)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"cost with restarts, by {panel}", fontsize=9)
        ax.set_xlabel("within this factor of the cheapest (tau)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="major")
    axes[0][0].set_ylabel("fraction of problems", fontsize=8)
    _title_and_legend(fig, title, [plt.Line2D([], [], color=colors[m], label=m) for m in methods])
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


def sensitivity_figure(points: dict[str, dict[str, list[tuple[float, float, float]]]], keys: dict[str, str],
                       title: str, stem: Path, chosen: dict[tuple[str, str], float] | None = None) -> list[Path]:
    """Success and cost against each tuned setting: ``points[method][activation] = [(value, success rate,
    cost with restarts), ...]``, one column per method (``keys[method]``: the setting it was tuned over),
    success on top and cost below, one line per activation; ``chosen[(method, activation)]``, the setting
    chosen, ringed."""
    plt = pyplot()
    methods = list(points)
    acts = list(dict.fromkeys(a for p in points.values() for a in p))
    colors = palette(plt, acts)
    fig, axes = plt.subplots(2, len(methods), figsize=(_width(0.6 + 2.6 * len(methods), acts, title), 5.0),
                             squeeze=False, sharex="col")
    for j, m in enumerate(methods):
        for a, pts in points[m].items():
            xs, rate, cost = (np.array(v, float) for v in zip(*sorted(pts), strict=True))
            axes[0][j].plot(xs, 100 * rate, "o-", color=colors[a], ms=3, lw=1)
            axes[1][j].plot(xs, np.where(np.isfinite(cost), cost, np.nan), "o-", color=colors[a], ms=3, lw=1)
            at = np.flatnonzero(xs == (chosen or {}).get((m, a), np.nan))
            for ax, ys in ((axes[0][j], 100 * rate[at]), (axes[1][j], cost[at])):
                ax.plot(xs[at], ys, "o", mfc="none", mec=colors[a], ms=8, mew=1.2)
        axes[0][j].set_title(m, fontsize=9)
        axes[1][j].set_xlabel(keys[m], fontsize=8)
        axes[1][j].set_yscale("log")
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xscale("log")
            ax.tick_params(labelsize=7, which="both")
            ax.grid(alpha=0.3, which="major")
    axes[0][0].set_ylabel("success %", fontsize=8)
    axes[1][0].set_ylabel("cu with restarts", fontsize=8)
    _title_and_legend(fig, title, [plt.Line2D([], [], color=colors[a], marker="o", label=a) for a in acts])
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths
