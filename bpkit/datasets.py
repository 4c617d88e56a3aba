"""Data sets, all offline: classic benchmarks, scikit-learn's bundled sets, CSV and FANN files.

Every loader returns a :class:`Dataset` of float arrays with targets shaped
``(N, outputs)``: one 0/1 column for two classes, one-hot columns for more,
real values for regression.

* Classic problems (CMU benchmark definitions) are defined by their full
  pattern set, so they have no split: ``xor``, ``parity<N>`` (all ``2^N``
  patterns, target 1 for an odd count of ones), ``encoder<N>`` (the ``N``
  one-hot patterns, reproduced at the output), ``two_spirals`` (2 x 97
  points: ``angle = i pi / 16``, ``radius = 6.5 (104 - i) / 104``, point
  ``(r sin a, r cos a)`` class 1 and its negation class 0).
* ``sine`` (regression, ``y = sin(x)`` on ``[-pi, pi]`` plus noise) and the
  sets scikit-learn ships (``digits``, ``iris``, ``wine``, ``breast_cancer``)
  get a seeded train/validation/test split (60/20/20) and inputs standardised
  with the training part's mean and standard deviation.

Example:
    >>> from bpkit import datasets
    >>> d = datasets.load("parity3")
    >>> d.x_train.shape, d.y_train.shape
    ((8, 3), (8, 1))
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import importlib.util
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set with its split; ``x_val`` etc. are None where there is no split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    task: str = "classification"
    standardisation: tuple[np.ndarray, np.ndarray] | None = None  # (mean, std) the raw inputs were scaled by

    @property
    def inputs(self) -> int:
        return self.x_train.shape[1]

    @property
    def outputs(self) -> int:
        return self.y_train.shape[1]

    def summary(self) -> str:
        parts = [f"train {len(self.x_train)}"]
        if self.x_val is not None:
            parts.append(f"val {len(self.x_val)}")
        if self.x_test is not None:
            parts.append(f"test {len(self.x_test)}")
        return f"{self.name}: {self.inputs} inputs, {self.outputs} outputs, {self.task}, " + ", ".join(parts)


def _check(name: str, x: np.ndarray, y: np.ndarray) -> None:
    if len(x) == 0:
        raise ValueError(f"data set {name!r} is empty; it needs at least one example")
    if len(x) != len(y):
        raise ValueError(f"data set {name!r} has {len(x)} inputs but {len(y)} targets")
    for what, a in (("inputs", x), ("targets", y)):
        bad = ~np.isfinite(a)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(f"data set {name!r} has a non-finite value in its {what}, row {row + 1}")


MAX_CLASSES = 10_000
MAX_ONE_HOT_BYTES = 512 << 20  # float64 one-hot targets, checked before they are made


def one_hot(labels: np.ndarray, classes: int | None = None) -> np.ndarray:
    """0/1 column for two classes, one-hot columns for more."""
    labels = np.asarray(labels)
    classes = int(labels.max()) + 1 if classes is None else classes
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must lie in 0..{classes - 1}, got {labels.min()}..{labels.max()}")
    size = len(labels) * classes * 8
    if classes > MAX_CLASSES or size > MAX_ONE_HOT_BYTES:
        raise ValueError(f"labels up to {classes - 1} mean {classes} classes: one-hot targets for {len(labels)} "
                         f"examples would take {size / 2**20:,.0f} MiB; bpkit takes at most {MAX_CLASSES} classes "
                         f"and {MAX_ONE_HOT_BYTES >> 20} MiB (labels are class indices 0..K-1)")
    if classes == 2:
        return labels.astype(np.float64)[:, None]
    return np.eye(classes)[labels]


def xor() -> Dataset:
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
    return Dataset("xor", x, np.array([[0], [1], [1], [0]], np.float64))


def parity(n: int) -> Dataset:
    if not 1 <= n <= 16:
        raise ValueError(f"parity needs 1..16 bits, got {n}")
    x = np.array([[(i >> b) & 1 for b in range(n)] for i in range(2**n)], np.float64)
    return Dataset(f"parity{n}", x, (x.sum(1) % 2)[:, None])


def encoder(n: int) -> Dataset:
    if not 2 <= n <= 256:
        raise ValueError(f"encoder needs 2..256 patterns, got {n}")
    eye = np.eye(n)
    return Dataset(f"encoder{n}", eye, eye.copy())


def two_spirals() -> Dataset:
    i = np.arange(97)
    a = i * math.pi / 16
    r = 6.5 * (104 - i) / 104
    p = np.stack([r * np.sin(a), r * np.cos(a)], 1)
    x = np.concatenate([p, -p])
    y = np.concatenate([np.ones(97), np.zeros(97)])[:, None]
    return Dataset("two_spirals", x, y)


def split(
    name: str, x: np.ndarray, y: np.ndarray, seed: int, task: str, fractions=(0.6, 0.2, 0.2), standardize=True
) -> Dataset:
    """Seeded shuffle into train/validation/test, inputs standardised on the training part."""
    _check(name, x, y)
    order = np.random.default_rng(seed).permutation(len(x))
    n_tr = int(round(fractions[0] * len(x)))
    n_va = int(round(fractions[1] * len(x)))
    tr, va, te = order[:n_tr], order[n_tr:n_tr + n_va], order[n_tr + n_va:]
    x = np.asarray(x, np.float64)
    scale = standardisation(x[tr]) if standardize else None
    if scale is not None:
        x = (x - scale[0]) / scale[1]
    return Dataset(name, x[tr], y[tr], x[va], y[va], x[te], y[te], task, scale)


def standardised(train: np.ndarray, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
    """``train`` and each of ``xs`` standardised with ``train``'s column means and standard deviations
    (a constant column is only centred: its deviation counts as 1).

    Example:
        >>> standardised(np.array([[0.0], [2.0]]), np.array([[4.0]]))[1].tolist()
        [[3.0]]
    """
    mu, sd = standardisation(train)
    return tuple((x - mu) / sd for x in (train, *xs))


def standardisation(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``train``'s column means and standard deviations, a constant column's deviation counted as 1."""
    sd = train.std(0)
    return train.mean(0), np.where(sd > 0, sd, 1.0)


def sine(seed: int = 0, n: int = 200, noise: float = 0.05) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-math.pi, math.pi, (n, 1))
    y = np.sin(x) + noise * rng.standard_normal((n, 1))
    return split("sine", x, y, seed, "regression")


def _digits_file() -> Path | None:
    """scikit-learn's ``digits.csv.gz`` (what ``load_digits`` reads), found without importing
    scikit-learn; None if it is not where scikit-learn 0.2x-1.x keeps it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def _sklearn(name: str, seed: int) -> Dataset:
    # Digits is read straight from scikit-learn's file, as its load_digits does (65 columns: 64
    # pixels, then the label), without importing scikit-learn, which costs memory and time.
    path = _digits_file() if name == "digits" else None
    if path is not None:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
        x, target = table[:, :-1], table[:, -1].astype(int)
    else:
        from sklearn import datasets as skd  # ships these sets inside the package: no download

        loader = {"digits": skd.load_digits, "iris": skd.load_iris, "wine": skd.load_wine,
                  "breast_cancer": skd.load_breast_cancer}[name]
        d = loader()
        x, target = d.data, d.target
    return split(name, x.astype(np.float64), one_hot(target), seed, "classification")


_NAMED: dict[str, tuple[Callable[[int], Dataset], str]] = {
    "xor": (lambda seed: xor(), "XOR, 4 patterns, 2-2-1"),
    "two_spirals": (lambda seed: two_spirals(), "two spirals, 194 patterns (CMU)"),
    "sine": (sine, "y = sin(x) + noise, 200 points, regression"),
    "digits": (lambda seed: _sklearn("digits", seed), "8x8 digits, 1797 x 64, 10 classes (scikit-learn)"),
    "iris": (lambda seed: _sklearn("iris", seed), "iris, 150 x 4, 3 classes (scikit-learn)"),
    "wine": (lambda seed: _sklearn("wine", seed), "wine, 178 x 13, 3 classes (scikit-learn)"),
    "breast_cancer": (lambda seed: _sklearn("breast_cancer", seed), "569 x 30, 2 classes (scikit-learn)"),
}
_PATTERNED = {
    "parity": (parity, "parity<N>: all 2^N patterns of N bits, e.g. parity3"),
    "encoder": (encoder, "encoder<N>: N one-hot patterns reproduced, e.g. encoder8 (for 8-3-8)"),
}


def names() -> dict[str, str]:
    """Name (or pattern) -> one-line description, for ``bpkit datasets``."""
    return {**{k: v[1] for k, v in _NAMED.items()}, **{f"{k}<N>": v[1] for k, v in _PATTERNED.items()}}


def load(name: str, seed: int = 0) -> Dataset:
    """A data set by name; ``seed`` fixes the split (and the noise of ``sine``)."""
    if name in _NAMED:
        return _NAMED[name][0](seed)
    m = re.fullmatch(r"([a-z_]+?)(\d+)", name)
    if m and m.group(1) in _PATTERNED:
        return _PATTERNED[m.group(1)][0](int(m.group(2)))
    raise ValueError(f"unknown data set {name!r}; valid: {', '.join(names())}")


# -- user files --------------------------------------------------------------------------------


def load_csv(path: str | Path, targets: int = 1, seed: int = 0, task: str = "classification") -> Dataset:
    """A CSV file with a header row; the last ``targets`` columns are the targets.

    With ``task="classification"`` and one target column of integer labels,
    the labels become 0/1 or one-hot columns.
    """
    path = Path(path)
    x, y = _csv_arrays(path, targets, task)
    if task == "classification" and targets == 1:
        y = one_hot(y[:, 0].astype(int))
    return split(path.stem, x, y, seed, task)


def _csv_arrays(path: Path, targets: int, task: str) -> tuple[np.ndarray, np.ndarray]:
    """A CSV file's inputs and targets (labels still one column)."""
    rows = []
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = next(_rows(reader, path), None)
        if not header:
            raise ValueError(f"{path}: empty file; a CSV needs a header line and data rows")
        for line, row in enumerate(_rows(reader, path), start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
            try:
                rows.append([float(v) for v in row])
            except ValueError:
                raise ValueError(f"{path}: line {line} has a field that is not a number") from None
    if not rows:
        raise ValueError(f"{path}: no data rows after the header")
    if not 1 <= targets < len(header):
        raise ValueError(f"targets must be 1..{len(header) - 1} columns for {len(header)} columns, got {targets}")
    a = np.array(rows)
    x, y = a[:, :-targets], a[:, -targets:]
    if task == "classification" and targets == 1 and not np.all(y == np.round(y)):
        raise ValueError(f"{path}: classification labels must be integers 0..K-1")
    return x, y


def _rows(reader: Any, path: Path) -> Iterator[list[str]]:
    """The CSV reader's rows, its errors (a field beyond its size limit, a NUL) as one line naming the line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ValueError(f"{path}: line {reader.line_num} cannot be read as CSV ({e})") from None
        yield row


_FANN_HEADER = re.compile(r"\s*\d+\s+\d+\s+\d+\s*")


def is_fann(path: str | Path) -> bool:
    """Whether a data file is in FANN's format, told by its content, whatever its name (FANN's own sets
    end in ``.train`` and ``.test``): its first line that is not blank is three integers separated by
    blanks, ``num_pairs num_inputs num_outputs`` (a CSV header has commas)."""
    with _open_text(Path(path)) as f:
        for line in f:
            if line.strip():
                return bool(_FANN_HEADER.fullmatch(line.rstrip("\r\n")))
    return False


def load_file(path: str | Path, targets: int = 1, seed: int = 0, test_path: str | Path | None = None,
              task: str = "classification") -> Dataset:
    """A data file in FANN's format or CSV (:func:`is_fann` tells which); with ``test_path``, a second
    file in the same format holds the test set, and the first one is all training data (no
    validation split; CSV inputs standardised on it).

    Example:
        >>> d = load_file("../shared/fann-datasets/parity8.train",
        ...               test_path="../shared/fann-datasets/parity8.test")  # doctest: +SKIP
        >>> d.summary()  # doctest: +SKIP
        'train 256, test 256, 8 inputs, 1 outputs'
    """
    fann = is_fann(path)
    if test_path is None:
        return load_fann(path) if fann else load_csv(path, targets, seed, task)
    if is_fann(test_path) != fann:
        raise ValueError(f"{test_path}: the test file must be in the format of {path} "
                         f"({'FANN' if fann else 'CSV'})")
    if fann:
        train, test = load_fann(path), load_fann(test_path)
        xs, ys, xt, yt = train.x_train, train.y_train, test.x_train, test.y_train
    else:
        (xs, ys), (xt, yt) = _csv_arrays(Path(path), targets, task), _csv_arrays(Path(test_path), targets, task)
    if xs.shape[1] != xt.shape[1] or ys.shape[1] != yt.shape[1]:
        raise ValueError(f"{test_path}: {xt.shape[1]} inputs and {yt.shape[1]} targets, but {path} has "
                         f"{xs.shape[1]} and {ys.shape[1]}")
    scale = None
    if not fann:
        if task == "classification" and targets == 1:
            classes = int(max(ys.max(), yt.max())) + 1
            ys, yt = one_hot(ys[:, 0].astype(int), classes), one_hot(yt[:, 0].astype(int), classes)
        scale = standardisation(xs)
        xs, xt = standardised(xs, xt)
    return Dataset(Path(path).stem, xs, ys, None, None, xt, yt, task, scale)


def load_fann(path: str | Path, seed: int = 0) -> Dataset:
    """A file in FANN's format (``.data``, ``.train``, ``.test``): a header ``num_pairs num_inputs
    num_outputs``, then alternating input and output lines.  Used as given, without a split."""
    path = Path(path)
    with _open_text(path) as f:
        lines = [(i, ln.split()) for i, ln in enumerate(f, start=1) if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty file; a FANN file starts with 'num_pairs num_inputs num_outputs'")
    (hl, head), body = lines[0], lines[1:]
    try:
        n, n_in, n_out = (int(v) for v in head)
    except ValueError:
        raise ValueError(f"{path}: line {hl} must be three integers 'num_pairs num_inputs num_outputs'") from None
    if len(body) != 2 * n:
        raise ValueError(f"{path}: the header promises {n} pairs ({2 * n} lines), the file has {len(body)} data lines")
    xs: list[list[float]] = []
    ys: list[list[float]] = []
    for k, (line, fields) in enumerate(body):
        want = n_in if k % 2 == 0 else n_out
        if len(fields) != want:
            kind = "input" if k % 2 == 0 else "output"
            raise ValueError(f"{path}: line {line} has {len(fields)} values, an {kind} line needs {want}")
        try:
            vals = [float(v) for v in fields]
        except ValueError:
            raise ValueError(f"{path}: line {line} has a value that is not a number") from None
        (xs if k % 2 == 0 else ys).append(vals)
    x, y = np.array(xs), np.array(ys)
    _check(path.name, x, y)
    return Dataset(path.stem, x, y)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 (hex) of a data file's bytes: a run's data is identified by its content, so an edited
    file makes new runs and the same bytes under another path the same runs.

    Example:
        >>> file_sha256("bpkit/datasets/data/digits.csv.gz")[:8]  # doctest: +SKIP
        '3f2a...'
    """
    path = Path(path)
    _open_text(path).close()  # the same one-line refusals as loading it
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_text(path: Path):
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: is a folder or a device, not a data file")
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError as e:
        raise ValueError(f"{path}: cannot read the data file ({(e.strerror or str(e)).lower()})") from None
    if b"\x00" in data:
        raise ValueError(f"{path}: a binary file, not text")
    return open(path, newline="", encoding="utf-8")
