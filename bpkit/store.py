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

import contextlib
import csv
import fnmatch
import glob
import hashlib
import json
import math
import os
import socket
import sqlite3
from collections.abc import Callable, Container, Iterable, Sequence
from pathlib import Path
from typing import Any

from bpkit import spec
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
    out too: such a run is the run stored before that key existed.  A data file is identified by its
    content (``data.sha256``), not by its path: an edited file makes new runs, the same bytes under
    another name the same runs."""
    by_content = bool(config.get("data.sha256"))
    body = {k: v for k, v in config.items()
            if k not in ("seed", "label") and not (k in LATER_KEYS and v == LATER_KEYS[k])
            and not (by_content and k in ("data.path", "data.test_path"))}
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
    """A bpkit results store at ``path``.

    A store is created on its first write, whole (tables, settings and all) under a temporary
    name and then linked into place, so ``path`` is never a half-made store; a sweep refused or
    stopped before its first run finished leaves no file.  An existing file is recognised first,
    read-only: a file that is not a bpkit store, or a damaged one, is never written to.
    ``readonly=True`` opens a store for reading only (a report; a store in a read-only folder).

    Raises:
        ValueError: the path is not a store or cannot hold one (a folder, a symbolic link when
            writing, another program's file, a damaged store, an incompatible version).
    """

    def __init__(self, path: str | Path, create: bool = True, *, readonly: bool = False,
                 make_folder: bool = False, hook: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.readonly = readonly
        self._make_folder = make_folder  # a new store's missing folder is made when it is created
        # Called with a stage name ("opened": connected, nothing written yet; "commit": inside
        # a write transaction, before it commits). Tests inject one to kill the process at an
        # exact instant; bpkit itself never passes one.
        self._hook = hook or (lambda stage: None)
        self._pending: dict[str, str] = {}  # settings of a store not created yet, written with it
        self._db: sqlite3.Connection | None = None
        if _state(self.path, writing=not readonly, make_folder=make_folder) == "new":
            if not create or readonly:
                raise ValueError(f"{self.path}: no such results store")
            return
        self._db = _open(self.path, readonly)

    @property
    def exists(self) -> bool:
        """Whether the store's file exists (a new store is created on its first write)."""
        return self._db is not None

    def create(self) -> None:
        """Create the store now if it does not exist yet (a multi-process sweep's writer does, so
        that the others can open it)."""
        if self._db is not None:
            return
        if self._make_folder:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        _create(self.path, self._hook)
        self._db = _open(self.path, readonly=False)  # another process's, if it created the store first
        pending, self._pending = self._pending, {}
        if pending:
            self._write(_SET_META, list(pending.items()))

    def _attached(self) -> sqlite3.Connection | None:
        """The connection; a store another process created since this one was opened is opened now."""
        if (self._db is None and not self.readonly and self.path.exists()
                and _state(self.path, writing=True) == "file"):
            self._db = _open(self.path, readonly=False)
        return self._db

    def _writable(self) -> sqlite3.Connection:
        if self.readonly:
            raise ValueError(f"{self.path}: opened read-only")
        self.create()
        assert self._db is not None
        return self._db

    def close(self) -> None:
        """Close; after writing, fold the write-ahead log into the file, so that at rest the store
        is the one file ``path`` (best effort: another process still using it does so later)."""
        if self._db is None:
            return
        if not self.readonly:
            _settle(self._db)
        self._db.close()
        self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, rows: Sequence[tuple], stage: str = "") -> int:
        """``sql`` over ``rows`` in one transaction (all rows or none); returns rows changed.
        ``stage``: the hook's name for the instant before it commits (runs: "commit")."""
        db = self._writable()
        try:
            with db:
                cur = db.executemany(sql, rows)
                if stage:
                    self._hook(stage)
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # committed rows reach the main file too
        except sqlite3.OperationalError as e:
            raise ValueError(f"{self.path}: cannot write the results store ({e})") from None
        return cur.rowcount

    def run_ids(self) -> set[str]:
        db = self._attached()
        return set() if db is None else {r[0] for r in db.execute("SELECT run_id FROM runs")}

    def add(self, records: Iterable[dict[str, Any]]) -> int:
        """Insert runs in one transaction; runs already stored are skipped.  Returns rows added."""
        rows = []
        for rec in records:
            r = dict(rec)
            config = _json_safe(r["config"])
            r["config"] = json.dumps(config, sort_keys=True)
            r["curves"] = _json(r.get("curves", {}))  # walked in Python only if a NaN or infinity is left
            r.setdefault("run_id", run_id(config))
            r.setdefault("config_hash", config_hash(config))
            for k, v in r.items():
                if isinstance(v, float) and not math.isfinite(v):
                    r[k] = None
            rows.append(tuple(r.get(c) for c in NAMES))
        return self._write(f"INSERT OR IGNORE INTO runs ({', '.join(NAMES)}) VALUES "
                           f"({', '.join('?' * len(NAMES))})", rows, "commit")

    def _set(self, key: str, value: str) -> None:
        if self._db is None and not self.readonly:
            self._pending[key] = value  # written when the store is created
            return
        self._write(_SET_META, [(key, value)])

    def _get(self, pattern: str) -> list[tuple[str, str]]:
        """The settings whose key matches the GLOB ``pattern``, in the order recorded."""
        db = self._attached()
        if db is None:
            return [(k, v) for k, v in self._pending.items() if fnmatch.fnmatchcase(k, pattern)]
        return db.execute("SELECT key, value FROM meta WHERE key GLOB ? ORDER BY rowid", (pattern,)).fetchall()

    def add_grid(self, ids: Sequence[str]) -> None:
        """Record a grid's run ids in the grid's order (once per grid), so that a report can read
        the runs in that order though a sweep writes them group by group (:meth:`grid_order`)."""
        value = json.dumps(list(ids))
        self._set("grid:" + hashlib.sha256(value.encode()).hexdigest()[:16], value)

    def set_compare(self, settings: dict[str, Any]) -> None:
        """Record how a comparison of these runs chooses and reports (the sweep config's ``[compare]``
        table), so that ``bpkit report STORE``, which has no config, does as the config said.  The
        last sweep's settings stand."""
        self._set("compare", json.dumps(settings, sort_keys=True))

    def compare_settings(self) -> dict[str, Any]:
        """The settings :meth:`set_compare` recorded; empty for a store without them."""
        rows = self._get("compare")
        try:
            value = json.loads(rows[0][1]) if rows else {}
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise ValueError(f"{self.path}: a damaged results store (its compare settings are not a JSON "
                             f"object); nothing was changed")
        return value

    def grid_order(self) -> dict[str, int]:
        """Run id -> position in the grids recorded by :meth:`add_grid`, the first recorded first
        (a run in two grids keeps its first position); empty for a store written before bpkit kept them.
        A damaged grid record is passed over: the order only arranges a report."""
        order: dict[str, int] = {}
        for _, value in self._get("grid:*"):
            try:
                ids = json.loads(value)
            except json.JSONDecodeError:
                continue
            for i in ids if isinstance(ids, list) else ():
                if isinstance(i, str):
                    order.setdefault(i, len(order))
        return order

    def runs(self, order: str = "run_id", each: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
             ids: Container[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """All runs as dicts (config and curves parsed), and a message per damaged row (by run id).

        ``order``: ``"run_id"``, or ``"written"`` (the order the sweep stored them: compiled group by
        group; :meth:`grid_order` gives the grid's order).
        ``each``: applied to every run as it is read, e.g. :func:`bpkit.compare.slim`, so a large
        store never sits in memory whole.
        ``ids``: only the runs with these run ids (the others are not parsed).
        """
        if order not in ("run_id", "written"):
            raise ValueError(f"order must be 'run_id' or 'written', got {order!r}")
        out: list[dict[str, Any]] = []
        errors: list[str] = []
        db = self._attached()
        if db is None:
            return out, errors
        by = "run_id" if order == "run_id" else "rowid"
        try:
            for row in db.execute(f"SELECT {', '.join(NAMES)}, {_ROW_OK} FROM runs ORDER BY {by}"):
                if ids is not None and row[0] not in ids:  # NAMES[0] is run_id
                    continue
                rec, problem = _parse(row)
                if problem:
                    errors.append(f"run {str(row[0])[:40]!r}: damaged row ({problem}); left out")
                else:
                    out.append(each(rec) if each else rec)
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self.path}: a damaged results store ({e}); nothing was changed") from None
        return out, errors

    def integrity_ok(self) -> bool:
        return self._db is None or self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def copy(self, dest: str | Path) -> int:
        """A consistent copy of the store at ``dest`` (a new file), made with SQLite's backup API: safe
        while a sweep writes, and whole even after a killed one (whose last runs may still sit in the
        ``-wal`` file beside the store).  Returns the runs copied."""
        dest = Path(dest)
        if dest.exists() or dest.is_symlink():
            raise ValueError(f"{dest}: already exists; bpkit copies a store only to a new file")
        if self._db is None:
            raise ValueError(f"{self.path}: no such results store")
        if not dest.parent.is_dir():
            raise ValueError(f"{dest}: cannot make the copy, folder {dest.parent} does not exist")
        tmp = _temporary(dest)
        try:
            target = sqlite3.connect(tmp)
            with target:
                self._db.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
            target.close()
            os.link(tmp, dest)  # never over a file that appeared meanwhile
        except sqlite3.Error as e:
            raise ValueError(f"{self.path}: cannot copy the store to {dest} ({e})") from None
        finally:
            tmp.unlink(missing_ok=True)
        return len(self.run_ids())

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


# --- recognising, creating and settling a store ---------------------------------------------------------

# A setting replaces its old value in place: its row keeps its position (a grid's order is the rows').
_SET_META = "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
_HOST = socket.gethostname().replace("/", "_") or "host"
_SQLITE_HEADER = b"SQLite format 3\x00"
_KIND = {"TEXT": ("text",), "INTEGER": ("integer",), "REAL": ("real", "integer")}
# Every column of a row has its declared type (NULL only where allowed), the config is a JSON object,
# the curves a JSON object or NULL, and the run id is the config's hash and seed: one SQL expression, so
# that a sweep can vet a whole store before it writes, and a report each row as it reads it.
_ROW_OK = " AND ".join(
    [f"typeof({c}) IN ({', '.join(repr(k) for k in _KIND[t.split()[0]])}"
     f"{'' if 'NOT NULL' in t or 'PRIMARY' in t else ', ' + repr('null')})" for c, t in COLUMNS]
    + ["CASE WHEN json_valid(config) THEN json_type(config) = 'object' ELSE 0 END",
       "CASE WHEN curves IS NULL THEN 1 WHEN json_valid(curves) THEN json_type(curves) = 'object' ELSE 0 END",
       "run_id = config_hash || '-' || seed"])


def _state(path: Path, writing: bool, make_folder: bool = False) -> str:
    """``"new"`` (no file, or an empty one: nothing to lose) or ``"file"`` (an SQLite file, still to be
    recognised); refuses in one line what can never be a store."""
    if writing and path.is_symlink():
        raise ValueError(f"{path}: a symbolic link; give the store's own path (bpkit never writes through a "
                         f"link, which could lead outside the results folder)")
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{path}: cannot create the store, {parent} is a file, not a folder")
        if not (parent.is_dir() or make_folder):
            raise ValueError(f"{path}: cannot create the store, folder {parent} does not exist")
        return "new"
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file path for the results store")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file; give a file path for the results store")
    if path.stat().st_size == 0:
        if not writing:
            raise ValueError(f"{path}: an empty file, not a bpkit results store")
        return "new"
    with open(path, "rb") as f:
        if f.read(16) != _SQLITE_HEADER:
            raise ValueError(f"{path}: not a bpkit results store (not an SQLite file); nothing was changed")
    return "file"


def _open(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection to the store at ``path``.  A read-only connection recognises it first (its layout and
    pages, and for writing every row), so a writing connection exists only for a whole bpkit store."""
    ro = _connect_readonly(path)
    try:
        _check_layout(ro, path)
        if not readonly:
            _check_rows(ro, path)
    except BaseException:
        ro.close()
        raise
    if readonly:
        return ro
    ro.close()
    try:
        db = sqlite3.connect(path, timeout=30)
    except sqlite3.Error as e:
        raise ValueError(f"{path}: cannot open the results store for writing ({e})") from None
    _pragmas(db, path)
    return db


def _connect_readonly(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        if os.access(path.resolve().parent, os.W_OK):
            raise ValueError(f"{path}: cannot read the results store (SQLite cannot open it)") from None
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{path}: not a bpkit results store ({e}); nothing was changed") from None
    # A read-only folder: SQLite cannot make the files a write-ahead-log reader shares, and nobody can
    # be writing the store, so it is read as an immutable file.
    return sqlite3.connect(f"{uri}?immutable=1", uri=True)


def _check_layout(db: sqlite3.Connection, path: Path) -> None:
    """Raise unless ``db`` is a whole bpkit store of this version: its tables, every column, its
    format and version, and SQLite's own check of every page (read-only queries only)."""
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"meta", "runs"} <= tables:
            raise ValueError(f"{path}: an SQLite file, but not a bpkit results store; nothing was changed")
        try:
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('format', 'schema_version')"))
        except sqlite3.OperationalError:  # a meta table of another layout
            meta = {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: an SQLite file, but not a bpkit results store; nothing was changed")
        if str(meta.get("schema_version")) != str(SCHEMA_VERSION):
            raise ValueError(f"{path}: store schema version {str(meta.get('schema_version'))[:20]}, this bpkit "
                             f"reads version {SCHEMA_VERSION}")
        have = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
        if missing := [c for c in NAMES if c not in have]:
            raise ValueError(f"{path}: a damaged results store (the runs table lacks {', '.join(missing)}); "
                             f"nothing was changed")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{path}: a damaged results store ({e}); nothing was changed") from None
    if check != "ok":
        raise ValueError(f"{path}: a damaged results store (SQLite's check: {str(check).splitlines()[0]}); "
                         f"nothing was changed")


def _check_rows(db: sqlite3.Connection, path: Path) -> None:
    """Refuse to write to a store with damaged rows: a sweep would take them for finished runs."""
    try:
        rows = db.execute(f"SELECT run_id, config, {_ROW_OK} FROM runs").fetchall()
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{path}: a damaged results store ({e}); nothing was changed") from None
    bad = [r[0] for r in rows if not r[2] or _config_problem(r[1])]
    if bad:
        raise ValueError(f"{path}: a damaged results store ({len(bad)} row(s) whose columns or JSON are not a "
                         f"run's, e.g. run {str(bad[0])[:40]!r}); nothing was changed: restore a copy, or "
                         f"sweep into a new store with --store")


def _config_problem(text: str) -> str | None:
    try:
        return spec.stored_problem(json.loads(text))
    except json.JSONDecodeError as e:
        return f"unreadable stored JSON: {e}"


def count_runs(path: str | Path) -> int:
    """How many runs the store at ``path`` holds, read-only; 0 where there is no readable store."""
    try:
        with contextlib.closing(_connect_readonly(Path(path))) as db:
            return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])
    except (ValueError, sqlite3.Error, OSError):
        return 0


def _pragmas(db: sqlite3.Connection, path: Path) -> None:
    """A write-ahead log (a report can read while a sweep writes) and a full sync at every commit."""
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    except sqlite3.OperationalError as e:
        raise ValueError(f"{path}: cannot write the results store ({e})") from None


def _settle(db: sqlite3.Connection) -> None:
    """Fold the write-ahead log into the main file and leave it, so that at rest a store is one file
    (a copy of that file alone holds every run).  Skipped while another process uses the store."""
    try:
        db.execute("PRAGMA busy_timeout = 0")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error:
        pass  # another connection holds it: the last one to close settles it


def _create(path: Path, hook: Callable[[str], None]) -> None:
    """Make a whole, empty store under a temporary name beside ``path``, then link it into place:
    a process killed at any instant leaves either no store or a complete one.  Another process that
    created it meanwhile wins; its store is used."""
    _remove_stale(path)
    tmp = _temporary(path)
    try:
        db = sqlite3.connect(tmp)
        hook("opened")
        with db:
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.executemany("INSERT INTO meta VALUES (?, ?)",
                           [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))])
            db.execute(f"CREATE TABLE runs ({', '.join(f'{c} {t}' for c, t in COLUMNS)})")
        db.close()
        _link(tmp, path)
    except sqlite3.Error as e:
        raise ValueError(f"{path}: cannot create the results store ({e})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _link(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        if path.stat().st_size == 0:  # an empty file held nothing
            os.replace(tmp, path)
    except OSError:  # a file system without hard links
        if not path.exists() or path.stat().st_size == 0:
            os.replace(tmp, path)


def _temporary(path: Path) -> Path:
    """Where a file for ``path`` is made before it is linked into place (:func:`_remove_stale` finds it)."""
    return path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.new")


def _remove_stale(path: Path) -> None:
    """Remove the temporary files of creations on this host whose process is gone (killed)."""
    for f in path.parent.glob(f".{glob.escape(path.name)}.{glob.escape(_HOST)}.*.new"):
        pid = f.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            f.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _parse(row: tuple) -> tuple[dict[str, Any], str | None]:
    """A stored row as a run's dict, or why it is damaged."""
    rec = dict(zip(NAMES, row[:-1], strict=True))
    if not row[-1]:
        return rec, "its columns or JSON are not a run's"
    try:
        rec["config"] = json.loads(rec["config"])
        rec["curves"] = json.loads(rec["curves"]) if rec["curves"] else {}
    except (TypeError, json.JSONDecodeError) as e:
        return rec, f"unreadable stored JSON: {e}"
    return rec, spec.stored_problem(rec["config"]) or _curves_problem(rec["curves"])


_NUMBER = frozenset({int, float, type(None)})


def _curves_problem(curves: dict[str, Any]) -> str | None:
    """Why stored curves are not a run's (each a list of numbers or nulls; ``within``: lists of such
    lists), or None.  Every element is checked, by type in C (``map(type, ...)``): a report reads them all."""
    for key, v in curves.items():
        rows = v.values() if key == "within" and isinstance(v, dict) else [v]
        for row in rows:
            if key == "within" and isinstance(row, list) and all(isinstance(r, list) for r in row):
                row = [x for r in row for x in r]
            if not isinstance(row, list) or not set(map(type, row)) <= _NUMBER:
                return f"its curve {str(key)[:20]!r} is not a list of numbers"
    return None
