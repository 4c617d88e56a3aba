"""What every study script shares: where results go, its README section, running a grid.

A study writes its numbers to ``experiments/results/<name>.*`` (JSON or CSV:
plain data), its figures to ``experiments/figures/<name>*.png`` and its
section of ``experiments/README.md`` between ``<!-- study:<name> -->``
markers, generated from those results (no hand-typed numbers).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from bpkit import report

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FIGURES = HERE / "figures"
README = HERE / "README.md"
# Order of the sections in experiments/README.md.
ORDER = ("gradient_equivalence", "why_derivative", "linear_collapse", "saturation", "online_batch", "cg_family",
         "two_spirals", "relu_tiny", "moeller")


def save_json(name: str, obj: Any) -> Path:
    path = RESULTS / f"{name}.json"
    report.write_text(path, json.dumps(obj, indent=1))
    return path


def load_json(name: str) -> Any:
    return json.loads((RESULTS / f"{name}.json").read_text())


def save_csv(name: str, rows: list[dict[str, Any]]) -> Path:
    """One row per run, the union of the rows' keys as columns."""
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(keys))
    w.writeheader()
    w.writerows(rows)
    path = RESULTS / f"{name}.csv"
    report.write_text(path, buf.getvalue())
    return path


def load_csv(name: str) -> list[dict[str, str]]:
    with open(RESULTS / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def save_figure(fig, name: str) -> Path:
    FIGURES.mkdir(parents=True, exist_ok=True)
    return report.save_figure(fig, FIGURES / name, formats=("png",))[0]


pyplot = report.pyplot


def write_section(name: str, body: str) -> None:
    """Replace (or insert, in :data:`ORDER`) the README section ``name``."""
    text = README.read_text() if README.exists() else "# bpkit experiments\n"
    start, end = f"<!-- study:{name} -->", f"<!-- /study:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        later = [n for n in ORDER[ORDER.index(name) + 1:] if f"<!-- study:{n} -->" in text] if name in ORDER else []
        if later:
            at = text.index(f"<!-- study:{later[0]} -->")
            text = text[:at] + block + "\n\n" + text[at:]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    report.write_text(README, text)


def write_timing(line: str) -> None:
    """The wall-time line of ``scripts/reproduce_all``, kept under the README's title."""
    text = README.read_text() if README.exists() else "# bpkit experiments\n"
    start, end = "<!-- reproduce_all -->", "<!-- /reproduce_all -->"
    block = f"{start}\n{line}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        head, _, rest = text.partition("\n")
        text = f"{head}\n\n{block}\n{rest}"
    report.write_text(README, text)


def section_text(name: str) -> str:
    text = README.read_text()
    return text.split(f"<!-- study:{name} -->")[1].split(f"<!-- /study:{name} -->")[0]


def span(values: Iterable[float], fmt: str = "{}") -> str:
    vals = list(values)
    lo, hi = min(vals), max(vals)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def fmt(v: float | None, spec: str = "{:.0f}") -> str:
    """``spec.format(v)``, or "-" for a missing or non-finite value."""
    return "-" if v is None or not np.isfinite(v) else spec.format(v)


def median_or_dash(values: list[float], fmt: str = "{:.0f}") -> str:
    return fmt.format(float(np.median(values))) if values else "-"


def run_grid(
    flat: dict[str, Any],
    summarise: Callable[[Any, dict[str, np.ndarray], Any], dict[str, Any]],
    max_chunk: int = 256,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Every run of a (validated, flat) sweep config through the library's engine
    (:func:`bpkit.engine.run_grid`), one summary row per run: ``summarise(run, out, data)``
    gets the run's config, its outcome (each curve as an array under its own name, so
    ``loss_evals`` is the curve; ``epochs``, ``stop_reason``, final metrics) and its data set.  Curves are not kept, so big grids stay small."""
    from bpkit import config as cfg
    from bpkit import engine, experiment

    runs = cfg.expand(flat)
    data = {}
    rows = []
    t0 = time.perf_counter()
    for chunk in engine.run_grid(runs, runs, chunk_size=max_chunk, fit=True):
        for run, out in chunk:
            key = (run.data.name, run.data.path, run.data.split_seed)
            data.setdefault(key, experiment.load_data(run))
            fields = {k: v for k, v in out._asdict().items() if k != "curves"}
            rows.append(summarise(run, {**fields, **out.curves}, data[key]))  # a curve, not its last value
        if progress:
            print(f"  {len(rows)}/{len(runs)} runs done, {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def sweep_and_answer(name: str, title: str) -> list:
    """Run ``experiments/<name>.toml`` into ``results/<name>.sqlite`` (bpkit's sweep engine, resumable),
    keep its tuned answers (:func:`bpkit.compare.answers`) in ``experiments/results/<name>_answers.csv``
    and draw the report's success and cost figures, ``<name>_success_<i>.png`` and ``<name>_cost_<i>.png``
    for the i-th problem.  Returns the answers."""
    from bpkit import compare, figures
    from bpkit.store import Store
    from bpkit.sweep import run_sweep

    store = HERE.parent / "results" / f"{name}.sqlite"
    store.parent.mkdir(parents=True, exist_ok=True)
    flat = load_config(HERE / f"{name}.toml")
    stats = run_sweep(flat, Store(store), progress=True)
    print(f"{stats['runs']} runs, {stats['written']} new, in {stats['groups']} compiled groups")
    runs, errors = report.load_runs(store, each=compare.slim)  # in the grid's order; curves cut to what answers read
    if errors:
        raise SystemExit(f"{store}: {len(errors)} unreadable runs, e.g. {errors[0]}")
    answers = compare.answers(runs)
    report.write_text(RESULTS / f"{name}_answers.csv", report.answers_csv(answers))
    FIGURES.mkdir(parents=True, exist_ok=True)
    for i, problem in enumerate(dict.fromkeys(a.problem for a in answers)):  # one figure per problem, as the report
        mine = [a for a in answers if a.problem == problem]
        figures.success_heatmap(mine, f"{title}: {problem}", FIGURES / f"{name}_success_{i + 1}")
        figures.cost_figure(mine, f"{title}: {problem}", FIGURES / f"{name}_cost_{i + 1}")
    return answers


def rate(k: int, n: int, interval: tuple[float, float] | None = None) -> str:
    """``k/n (p% [lo, hi])``: a success count with its Wilson 95% interval (computed unless given)."""
    from bpkit import stats

    lo, hi = stats.wilson(k, n) if interval is None else interval
    return f"{k}/{n} ({100 * k / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}])"


def answer_cells(a: dict[str, str]) -> tuple[str, str, str, str]:
    """(success k/n (% [interval]), expected epochs [interval], expected cu [interval], setting) of an
    answers-CSV row, as the report prints them."""
    from bpkit import compare, stats

    n, k = int(a["runs"]), int(a["successes"])
    pct = rate(k, n, (float(a["success_lo"]), float(a["success_hi"])))
    est = lambda f: compare.fmt_cost(stats.Estimate(float(a[f]), float(a[f + "_lo"]), float(a[f + "_hi"])))  # noqa: E731
    setting = a["setting"] if a["tuned"] == "True" else "none succeeded"
    return pct, est("epochs"), est("cu"), f"{setting} (of {a['budget']})"


def cli(
    name: str,
    doc: str,
    argv: list[str] | None,
    run: Callable[[argparse.Namespace], bool | None],
    report: Callable[[], None],
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """A study's command line.  ``run(args)`` computes and stores the results (skipped
    with ``--report-only``; returning False stops there, writing nothing more);
    ``report()`` rebuilds the figures and README section from the stored results,
    and the section is printed.  ``options`` adds a study's own arguments."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--report-only", action="store_true", help="rebuild figures and README section from stored results")
    if options:
        options(ap)
    args = ap.parse_args(argv)
    from bpkit import cache

    cache.enable()
    if not args.report_only and run(args) is False:
        return 0
    report()
    print(section_text(name))
    return 0


def load_config(path: Path, **overrides: Any) -> dict[str, Any]:
    """A study's TOML config, validated and flattened, with dotted-key overrides."""
    from bpkit import config as cfg

    flat = cfg.load(path)
    flat.update(overrides)
    return cfg.validate(flat)


def train_many(net, x, y, seeds, lrs, *, optimizer="sgd", **kwargs):
    """Every (seed, lr) pair of ``itertools.product(seeds, lrs)`` in one compiled, vmapped
    program: :func:`bpkit.lanes.train_many` with the learning rate as a column.
    Returns the stacked results as host arrays."""
    import itertools

    import jax

    from bpkit.lanes import train_many as library_train_many

    pairs = list(itertools.product(seeds, lrs))
    return jax.device_get(library_train_many(net, optimizer, [p[0] for p in pairs], x, y,
                                             hyper={"learning_rate": [p[1] for p in pairs]}, **kwargs))
