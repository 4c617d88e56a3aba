"""The results store: one SQLite file, one row per run, written in atomic transactions.

A run's id is ``<config hash>-<seed>``, where the hash is SHA-256 over the
run's config as canonical JSON (sorted keys) without its seed.  Rows are only
ever inserted, never updated, each batch in one transaction (SQLite's journal
makes a commit all-or-nothing), so a sweep killed at any moment leaves the
runs committed before it, intact; re-running it skips them (``INSERT OR
IGNORE`` on the primary key, so no run is stored twice).

Per run: the full config (JSON), hash, seed, status and stop reason, epochs,
final train/validation/test loss and accuracy, loss and gradient
evaluations, cu (Moeller's forward-pass equivalents: a loss evaluation 1 cu,
a gradient 3 cu), wall time, the per-epoch curves (JSON; with
``training.measures_per_epoch = m`` also ``curves["within"]``, each field a list of
m records per epoch), and the bpkit and jax versions and the device kind.  Plain
data only: SQL columns and JSON text.

Example:
    >>> import tempfile, os
    >>> from bpkit.store import Store
    >>> s = Store(os.path.join(tempfile.mkdtemp(), "r.sqlite"))
    >>> len(s.run_ids())
    0
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sqlite3
from collections.abc import Callable, Container, Iterable, Sequence
from pathlib import Path
from typing import Any

from bpkit.spec import LATER_KEYS

FORMAT = "bpkit-results"
SCHEMA_VERSION = 1
COLUMNS = (
    ("run_id", "TEXT PRIMARY KEY"), ("config_hash", "TEXT NOT NULL"), ("seed", "INTEGER NOT NULL"),
    ("config", "TEXT NOT NULL"), ("status", "TEXT NOT NULL"), ("stop_reason", "TEXT"), ("epochs", "INTEGER"),
    ("train_loss", "REAL"), ("val_loss", "REAL"), ("test_loss", "REAL"),
    ("train_acc", "REAL"), ("val_acc", "REAL"), ("test_acc", "REAL"),
    ("loss_evals", "REAL"), ("grad_evals", "REAL"), ("cu", "REAL"), ("wall_time", "REAL"),
    ("curves", "TEXT"), ("bpkit_version", "TEXT"), ("jax_version", "TEXT"), ("device", "TEXT"),
)
NAMES = tuple(c for c, _ in COLUMNS)


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of a config without its seed and label, as canonical JSON.

    A key of :data:`bpkit.spec.LATER_KEYS` (added after runs were stored) at its default is left
    out too: such a run is the run stored before that key existed."""
    body = {k: v for k, v in config.items()
            if k not in ("seed", "label") and not (k in LATER_KEYS and v == LATER_KEYS[k])}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def run_id(config: dict[str, Any]) -> str:
    return f"{config_hash(config)}-{int(config['seed'])}"


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _json(v: Any) -> str:
    """JSON text of ``v`` with NaN and infinities as ``null``.

    Walked element by element in Python only when ``v`` holds such a float: a sweep's
    curves come with them already ``None`` (:func:`bpkit.sweep.listed`), and walking millions
    of numbers costs more than encoding them.  The text is the same either way.
    """
    try:
        return json.dumps(v, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere
        return json.dumps(_json_safe(v))


class Store:
    """A bpkit results store at ``path`` (created if missing).

    Raises:
        ValueError: the path is not writable, the file is not a bpkit store,
            or it was written by an incompatible version.
    """

    def __init__(self, path: str | Path, create: bool = True, *, hook: Callable[[str], None] | None = None):
        self.path = Path(path)
        # Called with a stage name ("opened": connected, nothing written yet; "commit": inside
        # a write transaction, before it commits). Tests inject one to kill the process at an
        # exact instant; bpkit itself never passes one.
        self._hook = hook or (lambda stage: None)
        if not self.path.exists():
            if not create:
                raise ValueError(f"{self.path}: no such results store")
            parent = self.path.parent if str(self.path.parent) else Path(".")
            if not parent.is_dir():
                raise ValueError(f"{self.path}: cannot create the store, folder {parent} does not exist")
        elif self.path.is_dir():
            raise ValueError(f"{self.path}: is a folder; give a file path for the results store")
        elif not self.path.is_file():
            raise ValueError(f"{self.path}: not a regular file; give a file path for the results store")
        elif self.path.stat().st_size > 0:
            # Never initialise a file with content: SQLite would turn a short text file
            # into an empty database, overwriting what the user saved there.
            with open(self.path, "rb") as f:
                header = f.read(16)
            if header != b"SQLite format 3\x00":
                raise ValueError(f"{self.path}: not a bpkit results store (not an SQLite file); nothing was changed")
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            # Read before writing anything: another program's SQLite file is left as it was.
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self.path}: not a bpkit results store ({e})") from None
        if tables and not {"meta", "runs"} <= tables:
            raise ValueError(f"{self.path}: an SQLite file, but not a bpkit results store")
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.OperationalError as e:
            raise ValueError(f"{self.path}: cannot write the results store ({e})") from None
        self._hook("opened")
        if not tables:
            # An empty file or an SQLite file with an empty schema holds nothing: a store whose
            # creation was killed before its one creating transaction committed looks like this.
            if not create:
                raise ValueError(f"{self.path}: an empty file, not a bpkit results store")
            self._create()
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{self.path}: an SQLite file, but not a bpkit results store")
        version = int(meta.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{self.path}: store schema version {version}, this bpkit reads version {SCHEMA_VERSION}"
            )

    def _create(self) -> None:
        """The tables, in one transaction: a store is either complete or holds nothing.

        ``IF NOT EXISTS`` and ``OR IGNORE``: two processes creating the same store at once
        both end with the one complete store (SQLite serialises their transactions).
        """
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db.executemany(
                    "INSERT OR IGNORE INTO meta VALUES (?, ?)",
                    [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))],
                )
                self._db.execute(f"CREATE TABLE IF NOT EXISTS runs ({', '.join(f'{c} {t}' for c, t in COLUMNS)})")
        except sqlite3.OperationalError as e:
            raise ValueError(f"{self.path}: cannot write the results store ({e})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT run_id FROM runs")}

    def add(self, records: Iterable[dict[str, Any]]) -> int:
        """Insert runs in one transaction; runs already stored are skipped.  Returns rows added."""
        rows = []
        for rec in records:
            r = dict(rec)
            config = _json_safe(r["config"])
            r["config"] = json.dumps(config, sort_keys=True)
            r["curves"] = json.dumps(_json_safe(r.get("curves", {})))
            r.setdefault("run_id", run_id(config))
            r.setdefault("config_hash", config_hash(config))
            for k, v in r.items():
                if isinstance(v, float) and not math.isfinite(v):
                    r[k] = None
            rows.append(tuple(r.get(c) for c in NAMES))
        try:
            with self._db:  # one transaction: all rows or none
                cur = self._db.executemany(
                    f"INSERT OR IGNORE INTO runs ({', '.join(NAMES)}) VALUES ({', '.join('?' * len(NAMES))})", rows
                )
                self._hook("commit")
        except sqlite3.OperationalError as e:
            raise ValueError(f"{self.path}: cannot write the results store ({e})") from None
        return cur.rowcount

    def add_grid(self, ids: Sequence[str]) -> None:
        """Record a grid's run ids in the grid's order (once per grid), so that a report can read
        the runs in that order though a sweep writes them group by group (:meth:`grid_order`)."""
        value = json.dumps(list(ids))
        key = "grid:" + hashlib.sha256(value.encode()).hexdigest()[:16]
        try:
            with self._db:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
        except sqlite3.OperationalError as e:
            raise ValueError(f"{self.path}: cannot write the results store ({e})") from None

    def set_compare(self, settings: dict[str, Any]) -> None:
        """Record how a comparison of these runs chooses and reports (the sweep config's ``[compare]``
        table), so that ``bpkit report STORE``, which has no config, does as the config said.  The
        last sweep's settings stand."""
        try:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 ("compare", json.dumps(settings, sort_keys=True)))
        except sqlite3.OperationalError as e:
            raise ValueError(f"{self.path}: cannot write the results store ({e})") from None

    def compare_settings(self) -> dict[str, Any]:
        """The settings :meth:`set_compare` recorded; empty for a store without them."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'compare'").fetchone()
        return json.loads(row[0]) if row else {}

    def grid_order(self) -> dict[str, int]:
        """Run id -> position in the grids recorded by :meth:`add_grid`, the first recorded first
        (a run in two grids keeps its first position); empty for a store written before bpkit kept them."""
        order: dict[str, int] = {}
        for (value,) in self._db.execute("SELECT value FROM meta WHERE key LIKE 'grid:%' ORDER BY rowid"):
            for i in json.loads(value):
                order.setdefault(i, len(order))
        return order

    def runs(self, order: str = "run_id", each: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
             ids: Container[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """All runs as dicts (config and curves parsed), and a message per corrupt row (by run id).

        ``order``: ``"run_id"``, or ``"written"`` (the order the sweep stored them: compiled group by
        group; :meth:`grid_order` and :func:`bpkit.sweep.in_grid_order` give the grid's order).
        ``each``: applied to every run as it is read, e.g. :func:`bpkit.compare.slim`, so a large
        store never sits in memory whole.
        ``ids``: only the runs with these run ids (the others are not parsed).
        """
        if order not in ("run_id", "written"):
            raise ValueError(f"order must be 'run_id' or 'written', got {order!r}")
        out, errors = [], []
        by = "run_id" if order == "run_id" else "rowid"
        for row in self._db.execute(f"SELECT {', '.join(NAMES)} FROM runs ORDER BY {by}"):
            if ids is not None and row[0] not in ids:  # NAMES[0] is run_id
                continue
            rec = dict(zip(NAMES, row, strict=True))
            try:
                rec["config"] = json.loads(rec["config"])
                rec["curves"] = json.loads(rec["curves"]) if rec["curves"] else {}
            except (TypeError, json.JSONDecodeError) as e:
                errors.append(f"run {rec['run_id']}: unreadable stored JSON ({e})")
                continue
            out.append(each(rec) if each else rec)
        return out, errors

    def integrity_ok(self) -> bool:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def to_dataframe(self):
        """The runs as a pandas DataFrame (pandas is optional)."""
        import pandas as pd

        return pd.DataFrame(self.runs()[0])

    def export_parquet(self, path: str | Path) -> int:
        """Write the runs (config and curves as JSON text) to Parquet; needs pandas and pyarrow."""
        try:
            import pandas as pd
        except ImportError:
            raise ValueError("Parquet export needs pandas and pyarrow: pip install pandas pyarrow") from None
        runs, _ = self.runs()
        df = pd.DataFrame([{**r, "config": json.dumps(r["config"], sort_keys=True),
                            "curves": json.dumps(r["curves"])} for r in runs])
        try:
            df.to_parquet(path, index=False)
        except ImportError:
            raise ValueError("Parquet export needs pyarrow: pip install pyarrow") from None
        return len(runs)

    def export_csv(self, path: str | Path) -> int:
        """Write the scalar columns (and the config as JSON) to a CSV file; returns rows written."""
        runs, _ = self.runs()
        cols = [c for c in NAMES if c != "curves"]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for r in runs:
                w.writerow([json.dumps(r[c], sort_keys=True) if c == "config" else r[c] for c in cols])
        return len(runs)
