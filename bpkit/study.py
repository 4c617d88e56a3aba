"""Writing a study: its results, figures and README section, all generated from stored results.

A study folder (bpkit's own is ``experiments/``) holds a script per study, its results
(``results/<name>.*``: JSON or CSV, plain data), its figures (``figures/<name>*.png``) and a
``README.md`` with one section per study between ``<!-- study:<name> -->`` markers, written
from those results (no hand-typed numbers).  ``studies.toml`` in the folder lists the studies
in the order of their sections (``order = [...]``).  A sweep study's runs go to a results store,
``<stores>/<name>.sqlite``.

Example (a study script)::

    from pathlib import Path
    from bpkit import study

    FOLDER = study.Folder(Path(__file__).resolve().parent)

    def run(args):
        FOLDER.save_json("mine", {"loss": 0.1})

    def report():
        FOLDER.write_section("mine", f"## My study\\n\\nLoss {FOLDER.load_json('mine')['loss']}")

    if __name__ == "__main__":
        raise SystemExit(FOLDER.cli("mine", __doc__, None, run, report))
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bpkit import report, tables, verdict
from bpkit.figures import pyplot  # noqa: F401  (the studies draw with it)

CPU_DEVICES = 2  # a study's CPU devices on any machine: a run's last bits depend on its device's lane count


class Folder:
    """A study folder: ``results/``, ``figures/``, ``README.md`` and the section order of ``studies.txt``.

    ``stores``: where sweep studies keep their results stores (default: ``results/`` beside the folder).
    """

    def __init__(self, root: str | Path, stores: str | Path | None = None):
        self.root = Path(root)
        self.results = self.root / "results"
        self.figures = self.root / "figures"
        self.readme = self.root / "README.md"
        self.stores = Path(stores) if stores is not None else self.root.parent / "results"
        self.order: tuple[str, ...] = tuple(studies(self.root)) if (self.root / "studies.txt").exists() else ()

    def save_json(self, name: str, obj: Any) -> Path:
        path = self.results / f"{name}.json"
        report.write_text(path, json.dumps(obj, indent=1))
        return path

    def load_json(self, name: str) -> Any:
        return json.loads((self.results / f"{name}.json").read_text())

    def save_verdicts(self, name: str, verdicts: Iterable[verdict.Verdict]) -> list[verdict.Verdict]:
        """Keep the verdicts that study ``name``'s text states (``results/<name>_verdicts.json``: rule, inputs,
        word and sentence of each), so a test can recompute every one and find any claim no rule produced."""
        made = list(verdicts)
        self.save_json(f"{name}_verdicts", [v._asdict() for v in made])
        return made

    def load_verdicts(self, name: str) -> list[verdict.Verdict]:
        path = self.results / f"{name}_verdicts.json"
        return [verdict.Verdict(**v) for v in json.loads(path.read_text())] if path.exists() else []

    def save_csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        """One row per dict, the union of the rows' keys as columns."""
        keys: dict[str, None] = {}
        for r in rows:
            keys.update(dict.fromkeys(r))
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=list(keys))
        w.writeheader()
        w.writerows(rows)
        path = self.results / f"{name}.csv"
        report.write_text(path, buf.getvalue())
        return path

    def load_csv(self, name: str) -> list[dict[str, str]]:
        with open(self.results / f"{name}.csv", newline="") as f:
            return list(csv.DictReader(f))

    def save_figure(self, fig: Any, name: str) -> Path:
        self.figures.mkdir(parents=True, exist_ok=True)
        return report.save_figure(fig, self.figures / name, formats=("png",))[0]

    def write_section(self, name: str, body: str) -> None:
        """Replace the README section ``name``, or insert it before the first later one of :attr:`order`."""
        text = self.readme.read_text() if self.readme.exists() else "# bpkit experiments\n"
        block = f"<!-- study:{name} -->\n{body.strip()}\n<!-- /study:{name} -->"
        report.write_text(self.readme, _placed(text, name, block, self.order))

    def write_timing(self, line: str) -> None:
        """The wall-time line of ``scripts/reproduce_all``, kept under the README's title."""
        text = self.readme.read_text() if self.readme.exists() else "# bpkit experiments\n"
        start, end = "<!-- reproduce_all -->", "<!-- /reproduce_all -->"
        block = f"{start}\n{line}\n{end}"
        if start in text:
            text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
        else:
            head, _, rest = text.partition("\n")
            text = f"{head}\n\n{block}\n{rest}"
        report.write_text(self.readme, text)

    def section_text(self, name: str) -> str:
        text = self.readme.read_text()
        return text.split(f"<!-- study:{name} -->")[1].split(f"<!-- /study:{name} -->")[0]

    def sweep_and_answer(self, name: str, title: str, chunk_size: int | None = 64) -> list:
        """:func:`sweep_and_answer` with this folder's config, store, results and figures."""
        return sweep_and_answer(self, name, title, chunk_size)

    def cli(self, name: str, doc: str, argv: list[str] | None, run: Callable[[argparse.Namespace], bool | None],
            write: Callable[[], None], options: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
        """A study's command line.  ``run(args)`` computes and stores the results (skipped with
        ``--report-only``; returning False stops there); ``write()`` rebuilds the figures and README
        section from the stored results, and the section is printed.  ``options`` adds arguments."""
        ap = argparse.ArgumentParser(description=doc.splitlines()[0])
        ap.add_argument("--report-only", action="store_true",
                        help="rebuild figures and README section from stored results")
        if options:
            options(ap)
        args = ap.parse_args(argv)
        from bpkit import cache, machine

        cache.enable()
        machine.cpu_devices(CPU_DEVICES)  # its runs on two cores (bpkit.lanes.train_many, the sweep engine)
        if not args.report_only and run(args) is False:
            return 0
        write()
        print(self.section_text(name))
        return 0


def studies(root: str | Path) -> list[str]:
    """The studies ``<root>/studies.txt`` lists, in order."""
    lines = (Path(root) / "studies.txt").read_text().splitlines()
    return [t for t in (line.split("#")[0].strip() for line in lines) if t]


def _placed(text: str, name: str, block: str, order: tuple[str, ...]) -> str:
    start, end = f"<!-- study:{name} -->", f"<!-- /study:{name} -->"
    if start in text:
        return text[: text.index(start)] + block + text[text.index(end) + len(end):]
    later = [n for n in order[order.index(name) + 1:] if f"<!-- study:{n} -->" in text] if name in order else []
    if later:
        at = text.index(f"<!-- study:{later[0]} -->")
        return text[:at] + block + "\n\n" + text[at:]
    return text.rstrip() + "\n\n" + block + "\n"


def sweep_and_answer(folder: Folder, name: str, title: str, chunk_size: int | None = 64) -> list:
    """Run ``<folder>/<name>.toml`` into ``<stores>/<name>.sqlite`` (resumable), keep its tuned answers
    (:func:`bpkit.compare.answers`) in ``results/<name>_answers.csv`` and draw the report's success and
    cost figures, ``<name>_success_<i>.png`` and ``<name>_cost_<i>.png`` for the i-th problem.
    ``chunk_size``: 64 runs per chunk, small groups padded to 64, as the studies not yet redone were
    computed (a run's last bits depend on its chunk); None: the sweep's defaults (``bpkit sweep``'s, each
    group in one chunk within the memory budget).  Returns the answers."""
    from bpkit import compare, figures
    from bpkit.store import Store
    from bpkit.sweep import run_sweep

    store = folder.stores / f"{name}.sqlite"
    store.parent.mkdir(parents=True, exist_ok=True)
    flat = load_config(folder.root / f"{name}.toml")
    with Store(store) as s:  # closed before the report reads it: at rest a store is one file
        how: dict[str, Any] = {} if chunk_size is None else {"chunk_size": chunk_size, "memory_budget_mb": None}
        counts = run_sweep(flat, s, progress=True, **how)
    print(f"{counts['runs']} runs, {counts['written']} new, in {counts['groups']} compiled groups")
    runs, errors = report.load_runs(store, each=compare.slim)  # in the grid's order; curves cut to what answers read
    if errors:
        raise SystemExit(f"{store}: {len(errors)} unreadable runs, e.g. {errors[0]}")
    answers = compare.answers(runs, tune_seeds=flat["compare.tune_seeds"])
    report.write_text(folder.results / f"{name}_answers.csv", tables.answers_csv(answers))
    folder.figures.mkdir(parents=True, exist_ok=True)
    for i, problem in enumerate(dict.fromkeys(a.problem for a in answers)):  # one figure per problem, as the report
        mine = [a for a in answers if a.problem == problem]
        figures.success_heatmap(mine, f"{title}: {problem}", folder.figures / f"{name}_success_{i + 1}")
        figures.cost_figure(mine, f"{title}: {problem}", folder.figures / f"{name}_cost_{i + 1}")
    return answers


def load_config(path: Path, **overrides: Any) -> dict[str, Any]:
    """A study's TOML config, validated and flattened, with dotted-key overrides."""
    from bpkit import config as cfg

    flat = cfg.load(path)
    flat.update(overrides)
    return cfg.validate(flat)


def run_grid(flat: dict[str, Any], summarise: Callable[[Any, dict[str, Any], Any], dict[str, Any]],
             max_chunk: int = 256, progress: bool = True) -> list[dict[str, Any]]:
    """Every run of a (validated, flat) sweep config through the sweep engine, one summary row per run:
    ``summarise(run, out, data)`` gets the run's spec, its outcome as a dict (each curve under its own
    name, so ``loss_evals`` is the curve; ``epochs``, ``stop_reason``, final metrics) and its data set.
    Curves are not kept, so big grids stay small."""
    from bpkit import config as cfg
    from bpkit import engine, experiment

    runs = cfg.expand(flat)
    data: dict[tuple, Any] = {}
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


def train_many(net: Any, x: Any, y: Any, seeds: Iterable[int], lrs: Iterable[float], *, optimizer: str = "sgd",
               **kwargs: Any) -> Any:
    """Every (seed, lr) pair of ``itertools.product(seeds, lrs)`` in one compiled, vmapped program:
    :func:`bpkit.lanes.train_many` with the learning rate as a column; the stacked results as host arrays."""
    import jax

    from bpkit.lanes import train_many as library_train_many

    pairs = list(itertools.product(seeds, lrs))
    return jax.device_get(library_train_many(net, optimizer, [p[0] for p in pairs], x, y,
                                             hyper={"learning_rate": [p[1] for p in pairs]}, **kwargs))


def span(values: Iterable[float], fmt: str = "{}") -> str:
    """``lo-hi`` of ``values`` (one value when they are all equal), each formatted by ``fmt``."""
    vals = list(values)
    lo, hi = min(vals), max(vals)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def fmt(v: float | None, spec: str = "{:.0f}") -> str:
    """``spec.format(v)``, or "-" for a missing or non-finite value."""
    return "-" if v is None or not np.isfinite(v) else spec.format(v)


def median_or_dash(values: list[float], fmt: str = "{:.0f}") -> str:
    return fmt.format(float(np.median(values))) if values else "-"


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

    def est(f: str) -> str:
        return compare.fmt_cost(stats.Estimate(float(a[f]), float(a[f + "_lo"]), float(a[f + "_hi"])))

    setting = a["setting"] if a["tuned"] == "True" else "none succeeded"
    return pct, est("epochs"), est("cu"), f"{setting} (of {a['budget']})"
