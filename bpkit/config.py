"""Experiment configs: TOML files mapped onto a typed, frozen :class:`RunConfig`.

A config file has top-level keys and the tables ``[data]``, ``[network]``,
``[optimizer]`` and ``[training]``; every key and its default is in
:data:`SCHEMA`.  Unknown keys, wrong types and out-of-range values are
rejected with a one-line message naming the key.  ``--set key=value``
(dotted key, TOML value) overrides a field from the command line.

A *sweep* makes any field a list: the grid is the product of all listed
fields (for a field that is itself a list, such as ``network.hidden``, a list
of lists).  ``seeds`` is always a list: the seeds of every grid point.

Fields that must change *together* go in an axis: each ``[[axis.<name>]]``
table is one point of that axis, a set of overrides applied together (say,
online = sgd with batch size 1, CG = cg with the full batch).  The sweep is
the product of all axes and all listed fields; an axis entry may use lists
too.  ``label`` names an entry in reports.

Example (``experiments/xor.toml``)::

    name = "xor"
    seeds = [0, 1, 2, 3]
    [data]
    name = "xor"
    [network]
    hidden = [2]
    activation = ["sigmoid", "tanh"]     # a grid over two activations
    [optimizer]
    name = "sgd"
    learning_rate = [0.5, 1.0]           # vmapped, not recompiled
    [training]
    batch_size = 1
    max_epochs = 2000
    criterion_40_20_40 = true
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from bpkit import activations as acts
from bpkit import losses as losses_
from bpkit.gradients import SOURCES
from bpkit.network import INIT_SCHEMES
from bpkit.optim import OPTIMIZERS, RPROP_VARIANTS
from bpkit.stopping import STOP_ON

def _pos(v):
    return v > 0


def _nonneg(v):
    return v >= 0


# dotted key: (types, default, check or choices, description)
SCHEMA: dict[str, tuple[tuple[type, ...], Any, Any, str]] = {
    "name": ((str,), "experiment", "filename", "experiment name (names results/<name>.sqlite)"),
    "seeds": ((list,), [0], "seeds", "seeds, one run each (vmapped)"),
    "dtype": ((str,), "float32", ("float32", "float64"), "float32 or float64"),
    "loss": ((str,), "mse", tuple(losses_.REGISTRY), "loss"),
    "source": ((str,), "autodiff", SOURCES, "gradient source"),
    "data.name": ((str,), "xor", None, "data set name (see bpkit datasets), or a file's name"),
    "data.path": ((str,), "", None, "a CSV or FANN file instead of a named set"),
    "data.targets": ((int,), 1, _pos, "CSV: how many trailing columns are targets"),
    "data.split_seed": ((int,), 0, "seed", "seed of the train/validation/test split"),
    "data.target_range": ((list,), [], "range", "map 0/1 targets to [lo, hi], e.g. [-1, 1]"),
    "network.hidden": ((list,), [], "sizes", "hidden layer sizes"),
    "network.activation": ((str,), "sigmoid", tuple(acts.REGISTRY) + tuple(acts.ALIASES), "hidden activation"),
    "network.output": ((str,), "sigmoid", tuple(acts.REGISTRY) + tuple(acts.ALIASES), "output activation"),
    "network.shortcuts": ((bool,), False, None, "every layer feeds every later layer (Lang & Witbrock's two spirals net)"),
    "network.init": ((str,), "lecun_normal", tuple(INIT_SCHEMES), "init scheme"),
    "network.init_scale": ((float, int), 1.0, _pos, "init scale (vmapped)"),
    "network.bias_init": ((float, int), 0.0, None, "added to every initial bias, e.g. 0.1 to start ReLU units alive"),
    "optimizer.name": ((str,), "sgd", tuple(OPTIMIZERS), "optimizer"),
    "optimizer.learning_rate": ((float, int), 0.1, _pos, "learning rate (vmapped)"),
    "optimizer.momentum": ((float, int), 0.0, lambda v: 0 <= v < 1, "momentum in [0, 1) (vmapped)"),
    "optimizer.beta": ((str,), "pr+", ("fr", "pr", "pr+", "hs", "dy"), "CG beta"),
    "optimizer.powell_beale": ((bool,), False, None, "CG: Powell-Beale restarts"),
    "optimizer.c1": ((float, int), 1e-4, lambda v: 0 < v < 1, "CG: Wolfe sufficient-decrease constant, 0 < c1 < c2 (vmapped)"),
    "optimizer.c2": ((float, int), 0.4, lambda v: 0 < v < 1, "CG: Wolfe curvature constant, c1 < c2 < 1 (vmapped)"),
    "optimizer.hvp": ((str,), "exact", ("exact", "finite_difference"), "SCG Hessian-vector product"),
    "optimizer.lambda_init": ((float, int), 5e-7, _pos, "SCG: initial lambda, Moeller's lambda_1 (vmapped)"),
    "optimizer.sigma": ((float, int), 5e-5, _pos, "SCG: finite-difference step for hvp = 'finite_difference' (vmapped)"),
    "optimizer.mu": ((float, int), 1.75, _pos, "quickprop maximum growth factor"),
    "optimizer.variant": ((str,), "irprop-", RPROP_VARIANTS, "RPROP variant (irprop- is optax.rprop's)"),
    "training.batch_size": ((int, str), "full", "batch", "examples per update: 1 online, 'full' batch"),
    "training.shuffle": ((bool,), True, None, "draw each epoch's order from the key"),
    "training.max_epochs": ((int,), 1000, _pos, "epoch budget"),
    "training.goal": ((float, int), -1.0, None, "stop at this training loss (negative: off)"),
    "training.min_grad_norm": ((float, int), -1.0, None, "stop at this gradient norm (negative: off)"),
    "training.criterion_40_20_40": ((bool,), False, None, "stop when every output is right by 40-20-40"),
    "training.patience": ((int,), 0, _nonneg, "validation patience in epochs (0: off)"),
    "training.stall_epochs": ((int,), 10, _nonneg, "stop after this many epochs without change (0: off)"),
    "training.measure_every": ((int,), 1, _pos,
                               "online and mini-batch: measure the full-data loss every k epochs and at the last "
                               "(NaN between; the stop rules are judged when measured)"),
    "training.measures_per_epoch": ((int,), 1, _pos,
                                    "online and mini-batch: m measurements per epoch, stored as curves['within'] "
                                    "(m x epochs; the stop rules are judged at epoch ends)"),
    "training.stop_on": ((str,), "first", STOP_ON,
                         "'first': the first success criterion met ends the run; 'all': run until goal and 40-20-40 both held"),
}
LIST_FIELDS = {k for k, (t, *_) in SCHEMA.items() if t == (list,)}
INT_MAX = 2**31 - 1  # counts, sizes and epochs are int32 inside the compiled loop
SEED_MAX = 2**32 - 1  # a seed is one uint32 word of the key: a larger one would alias a smaller
MAX_RUNS = 200_000  # runs per config: each is a Python object before anything is compiled
MAX_CONFIG_BYTES = 1 << 20
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
# Data of the compiled program, not part of it: a sweep vmaps them (seed first).  CG's beta and
# Powell-Beale switch go in as integers (an index into optim.BETA_NAMES; 0 or 1), so a grid's
# CG variants share one program.
VMAPPED = ("seed", "network.init_scale", "optimizer.learning_rate", "optimizer.momentum", "optimizer.mu",
           "optimizer.c1", "optimizer.c2", "optimizer.lambda_init", "optimizer.sigma",
           "optimizer.beta", "optimizer.powell_beale")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One run: every schema field (dots as underscores) plus its seed."""

    values: tuple[tuple[str, Any], ...]

    def __getitem__(self, key: str) -> Any:
        return dict(self.values)[key]

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.values}

    def static_key(self) -> tuple:
        """What shapes the compiled program: everything but the vmapped fields."""
        return tuple((k, v) for k, v in self.values if k not in VMAPPED and k != "label")


def is_grid(key: str, value: Any) -> bool:
    """Whether a config value lists several grid points (a list of lists for list fields)."""
    return (key != "seeds" and isinstance(value, list)
            and (key not in LIST_FIELDS or (bool(value) and isinstance(value[0], list))))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if key == "axis":
            out["axis"] = _axes(v)
            continue
        if isinstance(v, dict):
            if key not in {"data", "network", "optimizer", "training"}:
                raise ValueError(f"unknown table [{_cut(key)}]; valid tables: data, network, optimizer, training")
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _axes(tree: Any) -> dict[str, list[dict[str, Any]]]:
    """``[[axis.<name>]]`` tables -> {name: [flat overrides, ...]}, each checked."""
    if not isinstance(tree, dict) or not all(isinstance(v, list) and v for v in tree.values()):
        raise ValueError("axis must be tables [[axis.<name>]], each axis with at least one entry")
    axes = {}
    for name, entries in tree.items():
        flat_entries = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ValueError(f"axis.{name} entry {i + 1} must be a table of overrides")
            label = entry.pop("label", None)
            flat = _flatten(entry)
            if "axis" in flat or "seeds" in flat:
                raise ValueError(f"axis.{name} entry {i + 1}: axes cannot nest or set seeds")
            for key, v in flat.items():
                if key not in SCHEMA:
                    raise ValueError(f"unknown config key {_short(key)} in axis.{_cut(name)} entry {i + 1}; valid keys: {', '.join(SCHEMA)}")
                grid = is_grid(key, v)
                for item in (v if grid else [v]):
                    _check_value(key, item)
            flat["label"] = str(label) if label is not None else f"{name}{i + 1}"
            flat_entries.append(flat)
        axes[name] = flat_entries
    return axes


def _type_name(types) -> str:
    words = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true/false", "list": "a list"}
    if float in types:  # an int is a number too
        types = tuple(t for t in types if t is not int)
    return " or ".join(words[t.__name__] for t in types)


def _check_number(key: str, v: Any) -> None:
    """Integers within int32 (uint32 for seeds), floats finite: bounds the compiled loop can hold."""
    if isinstance(v, bool):
        return
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{key} = {v!r} is not a finite number")
    if isinstance(v, int) and abs(v) > INT_MAX and key != "data.split_seed":
        raise ValueError(f"{key} = {v} is too large; the limit is {INT_MAX} (2^31 - 1)")


def _check_value(key: str, v: Any) -> None:
    types, _, check, _ = SCHEMA[key]
    if isinstance(v, bool) and bool not in types or not isinstance(v, types):
        raise ValueError(f"{key} must be {_type_name(types)}, got {_short(v)}")
    _check_number(key, v)
    if check is None:
        return
    if isinstance(check, tuple):
        if v not in check:
            raise ValueError(f"{key} = {_short(v)} is not valid; valid: {', '.join(map(str, check))}")
    elif check == "filename":
        if not NAME_PATTERN.fullmatch(v):
            raise ValueError(f"{key} = {_short(v)} cannot name a file; use 1-100 letters, digits, '-', '_' "
                             f"or '.', not starting with a dot")
    elif check == "seed":
        if not (isinstance(v, int) and 0 <= v <= SEED_MAX):
            raise ValueError(f"{key} = {_short(v)} is out of range: an integer in 0..{SEED_MAX}")
    elif check == "seeds":
        if not v or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in v):
            raise ValueError(f"seeds must be a non-empty list of integers in 0..{SEED_MAX} "
                             f"(a seed is one 32-bit word of the key), got {_short(v)}")
        if len(set(v)) != len(v):
            raise ValueError(f"seeds lists a seed twice; each seed names one run, got {_short(v)}")
    elif check == "sizes":
        if not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= INT_MAX for s in v):
            raise ValueError(f"network.hidden must be a list of positive integers, got {_short(v)}")
    elif check == "range":
        if v and not (len(v) == 2 and all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                          and math.isfinite(s) for s in v) and v[0] < v[1]):
            raise ValueError(f"data.target_range must be [lo, hi] with finite lo < hi, got {_short(v)}")
    elif check == "batch":
        if v != "full" and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise ValueError(f"training.batch_size must be a positive integer or 'full', got {_short(v)}")
    elif not check(v):
        raise ValueError(f"{key} = {_short(v)} is out of range: {SCHEMA[key][3]}")


def _short(v: Any, limit: int = 60) -> str:
    """``repr(v)``, cut to ``limit`` characters: an error message stays one short line."""
    return _cut(repr(v), limit)


def _cut(text: str, limit: int = 60) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value (bare words are strings)."""
    if "=" not in text:
        raise ValueError(f"--set needs key=value, got {text!r}")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def load(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """Read and validate a config file; returns the flat dict, grids still as lists."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such config file")
    if not path.is_file():
        raise ValueError(f"{path}: is a folder or a device, not a config file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, more than a config may hold "
                         f"({MAX_CONFIG_BYTES} bytes); is this the right file?")
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise ValueError(f"{path}: a binary file, not a TOML config")
    try:
        tree = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text, not a TOML config") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: malformed TOML: {e}") from None
    flat = _flatten(tree)
    for text in overrides:
        key, value = parse_override(text)
        flat[key] = value
    return validate(flat)


def validate(flat: dict[str, Any]) -> dict[str, Any]:
    """Check every key, type and range (each grid value too); fill defaults."""
    for key in flat:
        if key not in SCHEMA and key != "axis":
            raise ValueError(f"unknown config key {_short(key)}; valid keys: {', '.join(SCHEMA)}")
    out = {k: d for k, (_, d, _, _) in SCHEMA.items()}
    out["axis"] = flat.get("axis", {})
    for key, v in flat.items():
        if key == "axis":
            continue
        grid = is_grid(key, v)
        for item in (v if grid else [v]):
            _check_value(key, item)
        if grid and not v:
            raise ValueError(f"{key} is an empty list; give at least one value")
        out[key] = v
    total = count_runs(out)
    if total > MAX_RUNS:
        raise ValueError(f"the config asks for {total if total < 10**12 else 'over 10^12'} runs, more than "
                         f"{MAX_RUNS} per config; split the grid over several configs")
    return out


def count_runs(flat: dict[str, Any], limit: int = MAX_RUNS) -> int:
    """How many runs :func:`expand` would make, counted without making them.

    Stops counting past ``limit`` (the answer is then some number above it), so a
    grid of 10^20 points is refused at once instead of filling the memory.
    """
    axes = list(flat.get("axis", {}).values())
    seeds = len(flat["seeds"])
    if math.prod(len(a) for a in axes) * seeds > limit:
        return math.prod(len(a) for a in axes) * seeds
    total = 0
    for choice in itertools.product(*axes):
        merged = {k: v for k, v in flat.items() if k != "axis"}
        for entry in choice:
            merged.update({k: v for k, v in entry.items() if k != "label"})
        total += seeds * math.prod(len(v) for k, v in merged.items()
                                   if k not in ("seeds", "label") and is_grid(k, v))
        if total > limit:
            return total
    return total


def _grid(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """The product of the listed fields of one flat config (no axes, no seeds)."""
    lists = []
    for key, v in flat.items():
        if key in ("seeds", "axis", "label"):
            continue
        grid = is_grid(key, v)
        lists.append([(key, x) for x in v] if grid else [(key, v)])
    return [dict(point) for point in itertools.product(*lists)]


def _check_run(point: dict[str, Any]) -> None:
    """What no single key can check: fields that constrain each other in one grid point."""
    every, m = point["training.measure_every"], point["training.measures_per_epoch"]
    if every > 1 and m > 1:
        raise ValueError(f"training.measure_every = {every} and training.measures_per_epoch = {m}: give one "
                         f"of them (measurements every k epochs, or m per epoch), not both")
    if m > 1 and point["training.batch_size"] == "full":
        raise ValueError(f"training.measures_per_epoch = {m} needs online or mini-batch training; with "
                         f"training.batch_size = 'full' an epoch is one step, measured at its end (use 1)")
    if point["optimizer.name"] == "cg" and not point["optimizer.c1"] < point["optimizer.c2"]:
        raise ValueError(f"optimizer.c1 = {point['optimizer.c1']} must be below optimizer.c2 = "
                         f"{point['optimizer.c2']} (a Wolfe line search needs 0 < c1 < c2 < 1)")


def expand(flat: dict[str, Any]) -> list[RunConfig]:
    """The sweep's runs: one RunConfig per point of (axes x grid) and seed, axes' labels kept."""
    axes = flat.get("axis", {})
    runs = []
    for choice in itertools.product(*axes.values()):
        merged = {k: v for k, v in flat.items() if k != "axis"}
        labels = []
        for entry in choice:
            merged.update({k: v for k, v in entry.items() if k != "label"})
            labels.append(entry["label"])
        for point in _grid(merged):
            point["label"] = "/".join(labels)
            _check_run(point)
            for seed in flat["seeds"]:
                values = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in point.items())
                runs.append(RunConfig(values + (("seed", seed),)))
    return runs
