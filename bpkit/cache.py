"""JAX's persistent compilation cache: a program compiled once is reused by every later process.

bpkit's entry points (the CLI, the studies, ``scripts/bench.py``) call :func:`enable` first, so a
sweep run twice, or a study re-run, loads its compiled programs from disk instead of compiling
them again.  Library users opt in with ``bpkit.cache.enable()``.

Where: ``$BPKIT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/bpkit/jax`` (by default
``~/.cache/bpkit/jax``).  ``BPKIT_CACHE_DIR=off`` turns it off.  Programs are small (the
whole test suite leaves some megabytes), so the folder is not size-capped: JAX's cap keeps access
times under a file lock on every write, which slows cold compiles.  Deleting the folder is always
safe.  A folder that cannot be created or written leaves the cache off, with one warning, never an error:
the cache only saves time.

Example:
    >>> import bpkit.cache
    >>> path = bpkit.cache.enable()   # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import jax

ENV = "BPKIT_CACHE_DIR"


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/bpkit/jax``, or ``~/.cache/bpkit/jax`` (also where ``$XDG_CACHE_HOME`` is a
    relative path, which the XDG spec says to ignore)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bpkit" / "jax"


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent cache at ``path`` (default: see the module docstring).

    Every program is cached, however quick its compile (bpkit's sweeps compile
    many small programs).  Returns the folder, or None when the cache is off.
    """
    setting = str(path) if path is not None else os.environ.get(ENV, "")
    if setting.strip().lower() == "off":
        return None
    folder = Path(setting).expanduser() if setting.strip() else default_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()  # JAX would warn at every program it cannot write
    except OSError as e:
        print(f"bpkit: warning: the compilation cache folder {folder} cannot be written "
              f"({(e.strerror or type(e).__name__).lower()}); compiling without it (set {ENV} to another "
              f"folder, or to off)", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
