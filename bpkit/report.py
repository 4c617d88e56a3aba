"""Reports from a results store: a markdown table and matplotlib figures.

A *cell* is one config without its seed (one config hash).  Per cell, over
its seeds: the success rate (runs that stopped on their goal: the loss goal or
40-20-40), mean and median epochs and cu to the goal over the successful runs,
and the final training loss and test accuracy as mean +- standard deviation.

Figures (PNG and SVG): learning curves, the median training loss over seeds
per cell, one panel per (data set, activation), one line per method; and the
distribution of epochs to the goal per cell.

Example:
    python3 -m bpkit report results/flagship.sqlite      # writes results/flagship-report/
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from bpkit.store import Store

SUCCESS = ("goal", "40-20-40")


def _fmt(v: float, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def _mean_sd(vals: list[float]) -> str:
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    if not vals:
        return "-"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.3g} ± {sd:.2g}"


def cells(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs grouped by config hash, in a stable order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(runs, key=lambda r: (r["config"].get("data.name", ""), r["config"].get("label", ""),
                                         r["config"].get("network.activation", ""), r["seed"])):
        out.setdefault(r["config_hash"], []).append(r)
    return out


def varying_keys(runs: list[dict[str, Any]]) -> list[str]:
    """Config keys (other than the seed) that differ between runs: what names a cell."""
    keys = sorted({k for r in runs for k in r["config"]})
    return [k for k in keys if k != "seed" and len({repr(r["config"].get(k)) for r in runs}) > 1]


def cell_name(config: dict[str, Any], keys: list[str]) -> str:
    if config.get("label"):
        rest = [k for k in keys if k in ("network.activation",)]
        return " ".join([config["label"]] + [str(config[k]) for k in rest])
    return " ".join(f"{k.split('.')[-1]}={config[k]}" for k in keys if k != "label") or "all"


def table(runs: list[dict[str, Any]]) -> str:
    keys = varying_keys(runs)
    head = ("cell", "runs", "success", "epochs to goal (mean / median)", "cu to goal (mean / median)",
            "final train loss", "test acc")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for members in cells(runs).values():
        ok = [r for r in members if r["stop_reason"] in SUCCESS]
        ep = [r["epochs"] for r in ok]
        cu = [r["cu"] for r in ok]
        lines.append("| " + " | ".join([
            cell_name(members[0]["config"], keys), str(len(members)), f"{len(ok)}/{len(members)}",
            f"{_fmt(statistics.mean(ep))} / {_fmt(statistics.median(ep))}" if ok else "-",
            f"{_fmt(statistics.mean(cu))} / {_fmt(statistics.median(cu))}" if ok else "-",
            _mean_sd([r["train_loss"] for r in members]),
            _mean_sd([r["test_acc"] for r in members]) if any(r["test_acc"] is not None for r in members) else "-",
        ]) + " |")
    return "\n".join(lines)


def figures(runs: list[dict[str, Any]], out: Path) -> list[Path]:
    """Learning curves and epochs-to-goal distributions, each as PNG and SVG."""
    plt = pyplot()
    keys = varying_keys(runs)
    grouped = cells(runs)
    panels: dict[tuple, list[list[dict[str, Any]]]] = {}
    for members in grouped.values():
        c = members[0]["config"]
        panels.setdefault((c.get("data.name"), c.get("network.activation")), []).append(members)
    def method(members):
        c = members[0]["config"]
        return c.get("label", "").split("/")[-1] or cell_name(c, keys)

    methods = sorted({method(m) for cl in panels.values() for m in cl})
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}  # one colour per method
    paths = []
    ncol = min(5, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    for ax, ((data, act), cell_list) in zip(axes.flat, sorted(panels.items(), key=lambda kv: str(kv[0]))):
        for members in cell_list:
            curves = [np.asarray(r["curves"].get("loss", []), float) for r in members]
            n = max((len(c) for c in curves), default=0)
            if n == 0:
                continue
            # Runs that stopped early keep their last loss, so the median is over all seeds.
            padded = np.array([np.pad(c, (0, n - len(c)), mode="edge") if len(c) else np.full(n, np.nan) for c in curves])
            ax.plot(np.arange(1, n + 1), np.nanmedian(padded, 0), color=colors[method(members)])
        ax.set_title(f"{data}, {act}", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colors[m], label=m) for m in methods]
    fig.legend(handles=handles, loc="upper center", ncol=len(methods), fontsize=8, frameon=False)
    fig.supxlabel("epoch")
    fig.supylabel("median training loss over seeds")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    paths += save_figure(fig, out / "learning_curves")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(grouped)), 4))
    data, names = [], []
    for members in grouped.values():
        ep = [r["epochs"] for r in members if r["stop_reason"] in SUCCESS]
        data.append(ep if ep else [np.nan])
        names.append(cell_name(members[0]["config"], keys))
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=90, fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("epochs to goal (successful runs)")
    fig.tight_layout()
    paths += save_figure(fig, out / "epochs_to_goal")
    plt.close(fig)
    return paths


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Save ``fig`` as ``stem.<format>`` for each format, atomically: a killed run never leaves half a figure."""
    paths = []
    for ext in formats:
        p = stem.with_suffix(f".{ext}")
        tmp = p.with_suffix(f".tmp.{ext}")
        fig.savefig(tmp, dpi=110)
        tmp.replace(p)
        paths.append(p)
    return paths


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (through a temporary file and a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write(store_path: str | Path, out_dir: str | Path | None = None) -> tuple[Path, list[Path], list[str]]:
    """Write ``report.md`` and the figures; returns the report path, figures and store warnings."""
    store_path = Path(store_path)
    store = Store(store_path, create=False)
    runs, errors = store.runs()
    store.close()
    if not runs:
        raise ValueError(f"{store_path}: the store holds no readable runs")
    out = Path(out_dir) if out_dir else store_path.with_name(store_path.stem + "-report")
    out.mkdir(parents=True, exist_ok=True)
    figs = figures(runs, out)
    md = [f"# Report: {store_path.name}", "",
          f"{len(runs)} runs; success = stopped on the goal ({' or '.join(SUCCESS)}); "
          "epochs and cu over the successful runs; losses and accuracies as mean ± sd over seeds.", "",
          table(runs), "",
          "![learning curves](learning_curves.png)", "", "![epochs to goal](epochs_to_goal.png)", ""]
    if errors:
        md += ["Unreadable rows:", ""] + [f"- {e}" for e in errors]
    path = out / "report.md"
    write_text(path, "\n".join(md))
    return path, figs, errors
