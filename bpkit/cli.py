"""The ``bpkit`` command line: thin, it parses, calls the library and prints.

Exit codes: 0 all as expected, 1 a check came out other than expected,
2 bad arguments or input (one line on stderr, no traceback unless ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line: ``bpkit: error: ...``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _csv(kind: type):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        try:
            return [kind(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None

    return parse


def _cmd_check(args: argparse.Namespace) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # the matrix checks float64 too
    from bpkit import matrix

    t0 = time.perf_counter()
    all_cases = matrix.cases(activations=args.activations, losses=args.losses, depths=args.depths,
                             dtypes=args.dtypes, ablations=not args.no_ablations, flax=not args.no_flax,
                             shortcuts=not args.no_shortcuts)
    results = matrix.run(all_cases, fuse=args.fused)
    act_reports = matrix.check_activations(args.activations, args.dtypes)
    elapsed = time.perf_counter() - t0
    ok = all(r.as_expected for r in results) and all(r.passed for r in act_reports)
    if args.json:
        json.dump({"passed": ok, "seconds": round(elapsed, 2), "cases": [_case_json(r) for r in results],
                   "activations": [_activation_json(a) for a in act_reports]}, sys.stdout, indent=1)
        print()
    else:
        _print_check(matrix, results, act_reports, elapsed, ok)
    return 0 if ok else 1


def _case_json(r) -> dict:
    c = r.case
    return {"label": c.label, "sizes": list(c.net.sizes), "hidden": list(c.net.hidden), "output": c.net.output,
            "loss": c.loss, "dtype": c.dtype, "rule": c.rule, "flax": c.flax, "expected_gradient": r.expected,
            "passed": r.passed, "as_expected": r.as_expected, "max_rel_error_vs_jax_grad": r.max_rel_ad,
            "max_rel_error_vs_finite_diff": r.max_rel_fd,
            **({"report": r.report.to_dict()} if not r.as_expected else {})}


def _activation_json(a) -> dict:
    return {"name": a.name, "dtype": a.dtype, "passed": a.passed, "max_abs_error": a.max_abs_error,
            "worst_z": a.worst_z, "output_form_zero_from": a.output_form_zero_from}


def _print_check(matrix, results: list, act_reports: list, elapsed: float, ok: bool) -> None:
    unexpected = [r for r in results if not r.as_expected]
    print("Hand-written backprop vs jax.grad vs finite differences (worst relative error over depths)")
    print(matrix.summary_table(results))
    print()
    print("Activation derivatives vs jax.grad on a dense grid (|z| <= 40, every kink)")
    for a in act_reports:
        print(" ", a)
    for r in unexpected:
        why = "the true gradient is identically 0 here, so the check proves nothing" if r.vacuous else (
            f"expected {'a gradient' if r.expected else 'not a gradient'}")
        print(f"\nUNEXPECTED: {r.case.label}: {why}")
        print(r.report)
    wrong = len(unexpected) + sum(not a.passed for a in act_reports)
    print(f"\n{len(results)} gradient checks ({sum(not r.expected for r in results)} ablations expected to fail), "
          f"{len(act_reports)} derivative checks, {elapsed:.0f}s: "
          + ("all as expected" if ok else f"{wrong} NOT as expected"))


def _cmd_datasets(args: argparse.Namespace) -> int:
    from bpkit import datasets

    for name, text in datasets.names().items():
        print(f"{name:<16} {text}")
    return 0


def _grid_keys(flat: dict) -> list[str]:
    from bpkit import config as cfg
    from bpkit.spec import FIELDS

    return [k for k, v in flat.items() if k in FIELDS and cfg.is_grid(k, v)]


def _lanes(text: str) -> int | str | None:
    """``--lanes``: "auto", "all" (None: one lane per run) or an integer W in 1..INT_MAX."""
    from bpkit.spec import INT_MAX

    if text in ("auto", "all"):
        return None if text == "all" else text
    if not (text.isdigit() and 1 <= int(text) <= INT_MAX):
        raise ValueError(f"--lanes must be 'auto', 'all' or an integer in 1..{INT_MAX} (runs stepped "
                         f"side by side), got {text!r}")
    return int(text)


def _check_sweep_options(args: argparse.Namespace, flat: dict) -> None:
    """The sweep's command-line options, each refused in one line (``args.lanes`` parsed in place)."""
    from bpkit import config as cfg
    from bpkit.spec import INT_MAX

    if args.verb == "run" and _grid_keys(flat):
        raise ValueError(f"{args.config} has a grid ({', '.join(_grid_keys(flat))}); use bpkit sweep")
    from bpkit import sweep

    if args.memory_budget is None:  # the library's default: a config gives the same numbers through either
        args.memory_budget = sweep.MEMORY_BUDGET_MB
    if args.chunk_size is not None and not 1 <= args.chunk_size <= INT_MAX:
        raise ValueError(f"--chunk-size must be an integer in 1..{INT_MAX}, got {args.chunk_size}")
    if not 0 < args.memory_budget < float("inf"):
        raise ValueError(f"--memory-budget must be a positive number of megabytes, got {args.memory_budget}")
    if not 1 <= args.peer_timeout <= 86400:
        raise ValueError(f"--peer-timeout must be a number of seconds in 1..86400, got {args.peer_timeout}")
    if args.compile_ahead is not None and not 0 <= args.compile_ahead <= 16:
        raise ValueError(f"--compile-ahead must be an integer in 0..16 (programs compiled in threads while "
                         f"one group runs), got {args.compile_ahead}")
    args.lanes = _lanes(args.lanes)
    cfg.unique_ids(cfg.expand(flat))  # checks what no single key can, before a store is made


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bpkit import config as cfg
    from bpkit import distributed, interrupt, machine
    from bpkit.store import Store

    several = distributed.settings(args.coordinator, args.num_processes, args.process_id)  # checked first
    if several is None:  # several processes start their platform only once joined (jax.distributed)
        machine.check_platform()
    flat = cfg.load(args.config, args.set or [])
    _check_sweep_options(args, flat)
    staged = flat["compare.tune_first"]
    if staged and several is not None:
        raise ValueError("compare.tune_first runs in one process: its second stage reads the first stage's runs "
                         "from the store; run it without --num-processes")
    if args.plan:
        if staged:
            rest = len(flat["seeds"]) - len(flat["compare.tune_seeds"])
            print(f"compare.tune_first: the first stage, on the tuning seeds; the second runs the setting each "
                  f"method chose there on the other {rest} seeds")
        return _print_plan(args, cfg.expand({**flat, "seeds": flat["compare.tune_seeds"]} if staged else flat))
    path = Path(args.store) if args.store else Path("results") / f"{flat['name']}.sqlite"
    if several is not None and distributed.initialize(*several, timeout_s=args.peer_timeout):
        return _sweep_processes(args, flat, path)
    interrupt.say(lambda: _stopped(path))
    with Store(path, make_folder=not args.store) as store:
        try:
            counts = _run_sweep(args, flat, store)
        except KeyboardInterrupt:  # in-process callers; on the command line bpkit.interrupt ends it
            print(f"\n{_stopped(path)}", file=sys.stderr)
            return 130
        meanwhile = (f", {counts['meanwhile']} stored meanwhile by another process (computed here too, kept once)"
                     if counts["meanwhile"] else "")
        print(f"{counts['runs']} runs in {counts['groups']} compiled group(s): {counts['written']} new, "
              f"{counts['skipped']} already in {path}{meanwhile}")
        _print_stored(args, flat, store)
    return 0


def _stopped(path) -> str:
    """The line a stopped sweep ends with: what is kept and how to resume."""
    from bpkit.store import count_runs

    n = count_runs(path)
    kept = (f"{n} finished runs are kept in {path}" if n else "no run had finished, so nothing was stored")
    return f"bpkit: interrupted; {kept}. Run the same command again to resume."


def _run_sweep(args: argparse.Namespace, flat: dict, store) -> dict[str, int]:
    from bpkit.sweep import run_sweep

    return run_sweep(flat, store, chunk_size=args.chunk_size, progress=not args.no_progress,
                     memory_budget_mb=args.memory_budget, compile_ahead=args.compile_ahead, lanes=args.lanes)


def _print_plan(args: argparse.Namespace, runs: list) -> int:
    from bpkit.plan import plan

    groups = plan(runs, runs, args.chunk_size, args.memory_budget, lanes=args.lanes)
    print(f"{len(runs)} runs in {len(groups)} compiled group(s); nothing run, no store written")
    for g in groups:
        r = g.members[0]
        hidden = f"{list(r.network.hidden)}{' shortcut' if r.network.shortcuts else ''}"
        print(f"  {g.data.name:<14} hidden {hidden:<10} {r.network.activation:<12} "
              f"{r.optimizer.name:<10} {len(g.members):>5} runs, chunk {g.chunk:>5}, "
              f"{'lanes ' + str(g.lanes) if g.lanes else 'a lane per run'}, "
              f"~{g.mb_per_run * g.chunk:,.1f} MB per chunk")
    return 0


def _print_stored(args: argparse.Namespace, flat: dict, store) -> None:
    """Warn of every corrupt row; for ``bpkit run``, print the config's runs.  Every row is read, but only
    what is printed is kept: a large store's curves held at once would take gigabytes."""
    from bpkit import config as cfg
    from bpkit.store import run_id

    shown = ("run_id", "seed", "stop_reason", "epochs", "train_loss", "train_acc", "cu")
    rows, errors = store.runs(each=lambda r: {k: r[k] for k in shown})
    for e in errors:
        print(f"bpkit: warning: {e}", file=sys.stderr)
    if args.verb != "run":
        return
    mine = {run_id(r.as_dict()) for r in cfg.expand(flat)}
    for r in rows:
        if r["run_id"] in mine:
            print(f"  seed {r['seed']:>3}  {r['stop_reason'] or '-':<10} epochs {_num(r['epochs'], 'd'):>5}  "
                  f"train loss {_num(r['train_loss'], '.4g')}  train acc {_num(r['train_acc'], '.3f')}  "
                  f"cu {_num(r['cu'], '.0f')}")


def _num(v, spec: str) -> str:
    """A stored number as text; a diverged run's missing (NaN) values as 'nan'."""
    return "nan" if v is None else format(v, spec)


def _sweep_processes(args: argparse.Namespace, flat: dict, path) -> int:
    """One process's part of a multi-process sweep: process 0 creates and writes the store, the
    others open it only to skip finished runs, and every process computes its devices' share."""
    import jax

    from bpkit import distributed, machine
    from bpkit.store import Store
    from bpkit.sweep import run_sweep

    machine.check_platform()
    watch = distributed.Watch(args.peer_timeout, lambda why: _lost(why, path))
    writer = distributed.is_writer()
    if writer:
        store = Store(path, make_folder=not args.store)
        store.create()  # before the others open it
    distributed.barrier("bpkit: store ready")
    if not writer:
        store = Store(path, create=False)
    with store:
        try:
            stats = run_sweep(flat, store, chunk_size=args.chunk_size, progress=not args.no_progress,
                              memory_budget_mb=args.memory_budget, compile_ahead=args.compile_ahead,
                              lanes=args.lanes)
        except jax.errors.JaxRuntimeError as e:  # a collective whose peer is gone
            _lost(f"a step shared with the other processes failed ({str(e).splitlines()[0][:120]})", path)
    watch.done()
    if writer:
        print(f"{stats['runs']} runs in {stats['groups']} compiled group(s) over {jax.process_count()} processes "
              f"({len(jax.devices())} devices): {stats['written']} new, {stats['skipped']} already in {path}")
    return 0


def _lost(why: str, path) -> NoReturn:
    """End this process of a multi-process sweep at once, in one line: a peer is gone."""
    from bpkit.store import count_runs

    os.write(2, (f"\nbpkit: error: {why}; this process stops too. {count_runs(path)} finished runs are kept in "
                 f"{path}: start every process again to resume.\n").encode())
    os._exit(1)


def _cmd_report(args: argparse.Namespace) -> int:
    from bpkit import report

    path, figs, errors = report.write(args.store, args.out, compare_with=args.compare)
    for e in errors:
        print(f"bpkit: warning: {e}", file=sys.stderr)
    print(f"wrote {path} and {len(figs)} figures in {path.parent}")
    return 0


def _cmd_copy(args: argparse.Namespace) -> int:
    from bpkit.store import Store

    with Store(args.store, readonly=True) as store:
        n = store.copy(args.dest)
    print(f"copied {n} runs from {args.store} to {args.dest}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bpkit import saved

    for out in (args.out, args.fann):  # before the training: where the files go
        if out is not None and (Path(out).exists() or Path(out).is_symlink()):
            raise ValueError(f"{out} exists; give a new file")
        if out is not None and not Path(out).resolve().parent.is_dir():
            raise ValueError(f"{Path(out).parent}: no such folder")
    r = saved.from_store(args.store, args.run_id, check=saved.check_fann if args.fann else None)
    saved.save(args.out, r.saved.net, r.saved.params, inputs=r.saved.inputs, outputs=r.saved.outputs)
    if args.fann:
        error = "tanh" if r.loss == "atanh" else "linear"
        saved.save_fann(args.fann, r.saved.net, r.saved.params, inputs=r.saved.inputs, outputs=r.saved.outputs,
                        error_function=error)
    stored = "diverged" if r.stored_loss is None else f"{r.stored_loss:.6g}"
    print(f"wrote {args.out}{' and ' + args.fann if args.fann else ''}: run {args.run_id} trained again alone, "
          f"final training loss {r.train_loss:.6g} (stored: {stored})")
    return 0


def one_line(e: BaseException) -> str:
    """An error as one plain line; an OS error names its path (``x: is a directory``)."""
    if isinstance(e, OSError):
        why = (e.strerror or type(e).__name__).rstrip(".")
        why = why[0].lower() + why[1:]
        paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
        return f"{' -> '.join(paths)}: {why}" if paths else f"{why} (operating system error)"
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


VERBS = ("check", "report", "datasets", "run", "sweep", "copy", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bpkit", description="Backpropagation, written by hand and checked.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    _add_check(sub)
    _add_report(sub)
    ds = sub.add_parser("datasets", help="list the built-in data sets", description="List the built-in data sets.")
    ds.set_defaults(func=_cmd_datasets)
    for verb, text in (("run", "train one experiment config (all its seeds)"),
                       ("sweep", "run a sweep config: a grid, vmapped and sharded, into a results store")):
        _add_sweep(sub.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ". Re-running resumes."))
    _add_copy(sub)
    _add_export(sub)
    for p in sub.choices.values():
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    assert tuple(sub.choices) == VERBS
    return parser


def _add_check(sub) -> None:
    check = sub.add_parser(
        "check", help="check hand-written backprop against jax.grad and finite differences",
        description="Run every activation x loss x depth x dtype (and the ablations, as expected failures, "
        "and the Flax model) through the gradient checker.")
    check.add_argument("--activations", type=_csv(str), help="comma-separated subset (default: all)")
    check.add_argument("--losses", type=_csv(str), help="comma-separated subset of mse,bce,softmax_ce,atanh")
    check.add_argument("--depths", type=_csv(int), default=[1, 2, 3, 4], help="weight layers (default 1,2,3,4)")
    check.add_argument("--dtypes", type=_csv(str), default=["float32", "float64"], help="float32,float64")
    check.add_argument("--no-ablations", action="store_true", help="skip the ablated rules")
    check.add_argument("--no-flax", action="store_true", help="skip the Flax model")
    check.add_argument("--no-shortcuts", action="store_true", help="skip the nets with shortcut connections")
    check.add_argument("--fused", action="store_true",
                       help="one compiled program per case: about a third of the memory; slower from a cold "
                            "cache, as fast from a warm one")
    check.add_argument("--json", action="store_true", help="print a machine-readable report")
    check.set_defaults(func=_cmd_check)


def _add_report(sub) -> None:
    rep = sub.add_parser("report", help="write a markdown report and figures from a results store",
                         description="Write report.md (per problem and criterion: success with intervals and "
                         "expected cu with restarts, each method tuned; then the flat table of every cell), "
                         "figures (PNG and SVG) and a CSV per table from a results store.")
    rep.add_argument("store", help="results store (.sqlite)")
    rep.add_argument("--out", help="output folder (default: <store>-report next to the store)")
    rep.add_argument("--compare", metavar="B.sqlite", help="a second store, its answers put beside the first's")
    rep.set_defaults(func=_cmd_report)


def _add_copy(sub) -> None:
    cp = sub.add_parser("copy", help="copy a results store to a new file, whole and consistent",
                        description="Copy a results store to a new file with SQLite's backup API: whole even "
                        "while a sweep writes it, or after one was killed (its last runs may still be in the "
                        "-wal file beside it). Refuses to overwrite a file.")
    cp.add_argument("store", help="results store (.sqlite)")
    cp.add_argument("dest", help="the copy (a new file)")
    cp.set_defaults(func=_cmd_copy)


def _add_export(sub) -> None:
    ex = sub.add_parser("export", help="save a sweep's run as a net (.npz, and FANN's .net)",
                        description="Train a stored run again alone from its config and seed (a store keeps no "
                        "weights) and save the net with its spec and its data's scaling (.npz); --fann also "
                        "writes FANN's .net. Prints the retrained run's final training loss beside the stored "
                        "one: a run alone can end apart from its vmapped sweep in the last bits, or more where "
                        "its training amplifies rounding.")
    ex.add_argument("store", help="results store (.sqlite)")
    ex.add_argument("run_id", help="the run's id (the store's run_id column)")
    ex.add_argument("out", help="the net (.npz, a new file)")
    ex.add_argument("--fann", metavar="NET", help="also write FANN's .net text here (a new file)")
    ex.set_defaults(func=_cmd_export)


def _add_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="TOML config file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    p.add_argument("--store", help="results store (default: results/<name>.sqlite)")
    p.add_argument("--chunk-size", type=int, default=None, help="runs per compiled chunk (caps the budget's)")
    p.add_argument("--memory-budget", type=float, default=None, metavar="MB",
                   help="estimated memory for one chunk of runs, in megabytes (default: bpkit.sweep.MEMORY_BUDGET_MB, "
                        "as for the library's run_sweep)")
    p.add_argument("--compile-ahead", type=int, default=None, metavar="N",
                   help="groups compiled in threads while one runs (default 1; 0: none; each costs "
                        "the memory of a compile)")
    p.add_argument("--lanes", default="auto", metavar="W|auto|all",
                   help="step each chunk's runs through W lanes, a lane taking the next run as soon as "
                        "its own stops; all: one lane per run, all stepped until the last stops; auto "
                        "(default): 8 on CPU for CG, L-BFGS and epochs of 1e6+ example-weights (4 for CG and "
                        "L-BFGS on such epochs), all otherwise (other W: other last bits)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--plan", action="store_true",
                   help="check the config, data and memory, print the groups and chunks, run nothing")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="multi-process sweep: process 0's address (or $BPKIT_COORDINATOR)")
    p.add_argument("--num-processes", type=int, metavar="N",
                   help="multi-process sweep: how many ($BPKIT_NUM_PROCESSES)")
    p.add_argument("--process-id", type=int, metavar="I",
                   help="multi-process sweep: this one, 0..N-1 ($BPKIT_PROCESS_ID)")
    p.add_argument("--peer-timeout", type=int, default=120, metavar="S",
                   help="multi-process sweep: seconds to wait for the coordinator, and for a silent peer before "
                        "it counts as dead (default 120)")
    p.set_defaults(func=_cmd_sweep)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verb", None):
        parser.error(f"missing verb; valid: {', '.join(VERBS)} (see bpkit --help)")
    if args.verb in ("run", "sweep"):
        from bpkit import interrupt

        interrupt.say(lambda: "bpkit: interrupted; the sweep had not started. Run the same command again to resume.")
    try:
        _prepare(args)
        return args.func(args)
    except BrokenPipeError:  # the reader closed our stdout (`bpkit sweep --plan | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141  # as a Unix tool killed by SIGPIPE
    except (ValueError, OSError, MemoryError) as e:
        if args.debug:
            raise
        print(f"bpkit: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bpkit: interrupted", file=sys.stderr)
        return 130


def _prepare(args: argparse.Namespace) -> None:
    """What every verb needs first: JAX's settings checked before JAX loads, the compilation cache."""
    from bpkit import machine

    machine.check_environment()
    from bpkit import cache

    cache.enable()  # compiled programs persist across processes ($BPKIT_CACHE_DIR=off: not)
    if args.verb == "check":
        machine.check_platform()


def run() -> NoReturn:
    """The ``bpkit`` program: :func:`main`, with Ctrl-C and SIGTERM ending it at once in one line
    (:mod:`bpkit.interrupt`)."""
    from bpkit import interrupt

    interrupt.install()
    sys.exit(main())


if __name__ == "__main__":
    run()
