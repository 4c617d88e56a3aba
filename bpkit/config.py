"""Experiment configs: TOML files expanded into typed, frozen runs (:class:`bpkit.spec.Run`).

A config file has top-level keys and the tables ``[data]``, ``[network]``,
``[optimizer]`` and ``[training]``; every key, its default and its check is
declared once in :mod:`bpkit.spec` (:data:`bpkit.spec.FIELDS`).  Unknown keys, wrong types and out-of-range values are
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
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bpkit import datasets, spec
from bpkit.spec import Run, cut, short

SWEEP_KEYS = frozenset(k for k, info in spec.FIELDS.items() if spec.Role.SWEEP in info.roles)  # seeds, [compare]
MAX_RUNS = 200_000  # runs per config: each is a Python object before anything is compiled
MAX_CONFIG_BYTES = 1 << 20


def is_grid(key: str, value: Any) -> bool:
    """Whether a config value lists several grid points (a list of lists for list fields)."""
    return (key not in SWEEP_KEYS and isinstance(value, list)
            and (key not in spec.LIST_FIELDS or (bool(value) and isinstance(value[0], list))))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if key == "axis":
            out["axis"] = _axes(v)
            continue
        if isinstance(v, dict):
            if key not in {*spec.TABLES, "compare"}:
                raise ValueError(f"unknown table [{cut(key)}]; valid tables: data, network, optimizer, training, "
                                 f"compare")
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
            if "axis" in flat or SWEEP_KEYS & set(flat):
                raise ValueError(f"axis.{name} entry {i + 1}: axes cannot nest or set seeds or [compare]")
            for key, v in flat.items():
                if key not in spec.FIELDS:
                    raise ValueError(f"unknown config key {short(key)} in axis.{cut(name)} entry {i + 1}; "
                                     f"valid keys: {', '.join(spec.FIELDS)}")
                grid = is_grid(key, v)
                for item in (v if grid else [v]):
                    spec.check_value(key, item)
            flat["label"] = _label(name, i, label)
            flat_entries.append(flat)
        axes[name] = flat_entries
    _disjoint(axes)
    return axes


def _label(axis: str, i: int, label: Any) -> str:
    """An axis entry's label: printable text (it heads report lines and table cells)."""
    if label is None:
        return f"{axis}{i + 1}"
    if not isinstance(label, str) or not label.isprintable() or not 0 < len(label) <= 80 or "/" in label:
        raise ValueError(f"axis.{cut(axis)} entry {i + 1}: label must be printable text of 1..80 characters "
                         f"without '/' (it heads report lines; '/' joins labels), got {short(label)}")
    return label


def _disjoint(axes: dict[str, list[dict[str, Any]]]) -> None:
    """Each field belongs to one axis: two axes setting it would overwrite each other's entries."""
    owner: dict[str, str] = {}
    for name, entries in axes.items():
        for key in {k for e in entries for k in e if k != "label"}:
            if key in owner:
                raise ValueError(f"{key} is set by axis.{cut(owner[key])} and axis.{cut(name)}; a field belongs "
                                 f"to one axis (merge them, or set it in one only)")
            owner[key] = name


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


def load(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
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
        if key == "axis" or key.startswith("axis."):
            raise ValueError(f"--set cannot change an axis ({cut(key)}); edit the config's [[axis.<name>]] tables, "
                             f"or --set the fields themselves")
        flat[key] = value
    return validate(flat)


def validate(flat: dict[str, Any]) -> dict[str, Any]:
    """Check every key, type and range (each grid value too); fill defaults."""
    for key in flat:
        if key not in spec.FIELDS and key != "axis":
            raise ValueError(f"unknown config key {short(key)}; valid keys: {', '.join(spec.FIELDS)}")
    out = dict(spec.DEFAULTS)
    out["axis"] = flat.get("axis", {})
    for key, v in flat.items():
        if key == "axis":
            continue
        grid = is_grid(key, v)
        for item in (v if grid else [v]):
            spec.check_value(key, item)
        if grid and not v:
            raise ValueError(f"{key} is an empty list; give at least one value")
        if grid:
            _once_each(key, v)
        out[key] = v
    tune = out["compare.tune_seeds"]
    if tune and not (set(tune) < set(out["seeds"])):
        raise ValueError(f"compare.tune_seeds must be some of the seeds, not all (the others report), got "
                         f"{short(tune)} for seeds {short(out['seeds'])}")
    if out["compare.tune_first"] and not tune:
        raise ValueError("compare.tune_first = true needs compare.tune_seeds: the seeds that choose each setting")
    total = count_runs(out)
    if total > MAX_RUNS:
        raise ValueError(f"the config asks for {total if total < 10**12 else 'over 10^12'} runs, more than "
                         f"{MAX_RUNS} per config; split the grid over several configs")
    return out


def _once_each(key: str, values: list) -> None:
    """A grid lists each value once: a repeated value (1 and 1.0 too) would make the same run twice."""
    for i, v in enumerate(values):
        if any(v == w and type(v) is not bool and type(w) is not bool for w in values[:i]):
            raise ValueError(f"{key} lists {short(v)} twice (as {short(values[values.index(v)])} and {short(v)}); "
                             f"give each grid value once")


def unique_ids(runs: list[Run]) -> list[str]:
    """The runs' ids (:func:`bpkit.store.run_id`), refused where two runs are the same run (two axis
    entries that set the same fields, say): a sweep would compute it twice and store it once."""
    from bpkit.store import run_id

    ids = [run_id(r.as_dict()) for r in runs]
    if len(set(ids)) < len(ids):
        seen: dict[str, Run] = {}
        for r, i in zip(runs, ids, strict=True):
            if i in seen:
                raise ValueError(f"the config makes one run twice (seed {r.seed}, labels {seen[i].label!r} and "
                                 f"{r.label!r}): two grid points or axis entries set the same values")
            seen[i] = r
    return ids


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
                                   if k != "label" and is_grid(k, v))
        if total > limit:
            return total
    return total


def _grid(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """The product of the listed fields of one flat config (no axes, no seeds)."""
    lists = []
    for key, v in flat.items():
        if key in SWEEP_KEYS or key in ("axis", "label"):
            continue
        grid = is_grid(key, v)
        lists.append([(key, x) for x in v] if grid else [(key, v)])
    return [dict(point) for point in itertools.product(*lists)]


def expand(flat: dict[str, Any]) -> list[Run]:
    """The sweep's runs: one :class:`bpkit.spec.Run` per point of (axes x grid) and seed, axes' labels kept.

    Raises:
        ValueError: a point whose fields contradict each other (one line).
    """
    axes = flat.get("axis", {})
    runs = []
    for choice in itertools.product(*axes.values()):
        merged = {k: v for k, v in flat.items() if k != "axis"}
        labels = []
        for entry in choice:
            merged.update({k: v for k, v in entry.items() if k != "label"})
            labels.append(entry["label"])
        for point in _grid(merged):
            first = spec.from_flat({**point, "label": "/".join(labels)})  # checks the point once
            spec.check_in_dtype(first)
            runs += [dataclasses.replace(first, seed=seed) for seed in flat["seeds"]]
    return _with_content(runs)


def _with_content(runs: list[Run]) -> list[Run]:
    """Each run that reads a data file, with the file's SHA-256 (``data.sha256``): its identity."""
    digests: dict[str, str] = {}

    def digest(path: str) -> str:
        if path and path not in digests:
            digests[path] = datasets.file_sha256(path)
        return digests.get(path, "")

    out = []
    for r in runs:
        if r.data.test_path and not r.data.path:
            raise ValueError("data.test_path needs data.path: the test file goes with a training file")
        if r.data.path:
            r = dataclasses.replace(r, data=dataclasses.replace(r.data, sha256=digest(r.data.path),
                                                                test_sha256=digest(r.data.test_path)))
        out.append(r)
    return out
