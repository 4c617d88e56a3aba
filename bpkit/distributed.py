"""Sweeps over several processes, on JAX's own runtime (``jax.distributed``).

Every process runs the same command.  ``jax.distributed.initialize`` joins
them (a coordinator address, the number of processes, this process's id),
after which ``jax.devices()`` lists the devices of all of them, and the sweep's
sharding (:func:`bpkit.sweep.chunk_args`) lays each chunk of runs across all
those devices: each process computes the runs on its own devices.  The chunk's
results are gathered to every process (:func:`gather`), and process 0 alone
writes the store.  No scheduler of bpkit's own: which process computes what
is JAX's sharding.

On CPU the processes exchange data through gloo (set here); on GPUs and TPUs
through the platform's own collectives.

The settings come from the command line (``--coordinator``, ``--num-processes``,
``--process-id``) or from the environment (:data:`ENV`).

Example, two processes on one machine::

    python3 -m bpkit sweep experiments/xor.toml --coordinator localhost:7777 --num-processes 2 --process-id 0 &
    python3 -m bpkit sweep experiments/xor.toml --coordinator localhost:7777 --num-processes 2 --process-id 1
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

ENV = {"coordinator": "BPKIT_COORDINATOR", "num_processes": "BPKIT_NUM_PROCESSES", "process_id": "BPKIT_PROCESS_ID"}
_ADDRESS = re.compile(r"[A-Za-z0-9_.\-]+:[0-9]{1,5}|\[[0-9A-Fa-f:]+\]:[0-9]{1,5}")


def settings(coordinator: str | None = None, num_processes: int | None = None,
             process_id: int | None = None) -> tuple[str, int, int] | None:
    """``(coordinator, num_processes, process_id)`` from the arguments, else :data:`ENV`; None for one process.

    Raises:
        ValueError: some but not all given, or out of range (one line).
    """
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    for k, v in given.items():
        if v is None and os.environ.get(ENV[k], "").strip():
            given[k] = os.environ[ENV[k]].strip()
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ValueError(f"a multi-process sweep needs a coordinator, the number of processes and this process's "
                         f"id; missing: {', '.join(missing)} (--{missing[0].replace('_', '-')} or ${ENV[missing[0]]})")
    addr = str(given["coordinator"])
    if not _ADDRESS.fullmatch(addr) or not 1 <= int(addr.rsplit(":", 1)[1]) <= 65535:
        raise ValueError(f"the coordinator must be host:port with a port in 1..65535 (e.g. localhost:7777), "
                         f"got {addr!r}")
    try:
        n, i = int(str(given["num_processes"])), int(str(given["process_id"]))
    except (TypeError, ValueError):
        raise ValueError(f"the number of processes and the process id must be integers, got "
                         f"{given['num_processes']!r} and {given['process_id']!r}") from None
    if not 1 <= n <= 65536 or not 0 <= i < n:
        raise ValueError(f"need 1 <= number of processes <= 65536 and 0 <= process id < {n}, got {n} and {i}")
    return addr, n, i


TIMEOUT_S = 120


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, timeout_s: int = TIMEOUT_S) -> bool:
    """Join a multi-process run (see :func:`settings`); True when there are several processes.

    ``timeout_s``: how long to wait for the coordinator, and for a silent peer before it counts as dead.
    Call before anything else touches JAX's devices.

    Raises:
        ValueError: the coordinator cannot be reached within ``timeout_s`` (process 1 and up), or its
            port is taken (process 0: another sweep, or a second process 0), in one line.  JAX's own
            runtime ends a process with an abort in those cases, so they are checked first.
    """
    found = settings(coordinator, num_processes, process_id)
    if found is None or found[1] == 1:
        return False
    addr, n, i = found
    _can_join(addr, i, timeout_s)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes exchange data through gloo
    jax.distributed.initialize(coordinator_address=addr, num_processes=n, process_id=i,
                               initialization_timeout=timeout_s, heartbeat_timeout_seconds=timeout_s)
    return True


def _can_join(addr: str, process_id: int, timeout_s: float) -> None:
    """Process 0 can bind the coordinator's port; any other process reaches it within ``timeout_s``."""
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    if process_id == 0:
        try:
            socket.create_server(("", int(port)), family=socket.AF_INET).close()
        except OSError as e:
            raise ValueError(f"the coordinator's port {port} cannot be bound here ({(e.strerror or str(e)).lower()}):"
                             f" is another sweep, or another process 0, using it?") from None
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=min(5.0, timeout_s)).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise ValueError(f"could not reach the coordinator at {addr} within {timeout_s:g} s "
                                 f"({(e.strerror or str(e)).lower()}): start process 0 first, or check the address "
                                 f"(--peer-timeout sets the wait)") from None
        time.sleep(0.25)


class Watch:
    """A daemon thread that ends this process in one line when a peer of a multi-process sweep falls
    silent, before JAX's runtime would end it with an abort and a C++ stack.

    Every second each process counts up its own key in the runtime's key-value store and reads its
    peers' keys; a peer whose count has not moved for ``timeout_s / 2`` seconds (JAX declares it dead at
    ``timeout_s``), or a key-value store that no longer answers (the coordinator is gone), ends this
    process with ``say(reason)``.  A peer that finished (:meth:`done`) is not waited for.
    """

    def __init__(self, timeout_s: float, say: Callable[[str], None]):
        from jax._src import distributed as jd  # the runtime's client: its key-value store has no public API

        self._client: Any = jd.global_state.client
        self._say, self._limit = say, timeout_s / 2
        self._me, self._n = jax.process_index(), jax.process_count()
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="bpkit-peers", daemon=True).start()

    def done(self) -> None:
        """This process's sweep is over: tell the peers, and stop watching."""
        self._stop.set()
        with contextlib.suppress(Exception):
            self._client.key_value_set(f"bpkit/done/{self._me}", "1", allow_overwrite=True)

    def _run(self) -> None:
        heard: dict[int, tuple[str | None, float]] = {i: (None, time.monotonic())
                                                      for i in range(self._n) if i != self._me}
        beat = 0
        while not self._stop.wait(1.0):
            beat += 1
            try:
                self._client.key_value_set(f"bpkit/alive/{self._me}", str(beat), allow_overwrite=True)
                for i, (seen, since) in list(heard.items()):
                    now, value = time.monotonic(), _try_get(self._client, f"bpkit/alive/{i}")
                    if _try_get(self._client, f"bpkit/done/{i}") is not None:
                        del heard[i]
                    elif value != seen:
                        heard[i] = (value, now)
                    elif now - since > self._limit and not self._stop.is_set():
                        self._say(f"process {i} of the sweep has been silent for {now - since:.0f} s (killed, or "
                                  f"its machine lost)")
            except Exception as e:  # the key-value store is gone with the coordinator
                if not self._stop.is_set():
                    self._say(f"the coordinator no longer answers ({str(e).splitlines()[0][:80]})")


def _try_get(client: Any, key: str) -> str | None:
    try:
        return client.key_value_try_get(key)
    except Exception as e:
        if "NOT_FOUND" in str(e) or "not found" in str(e).lower():
            return None
        raise


def is_writer() -> bool:
    """Whether this process writes results (process 0; the only one when there is one)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (nothing to wait for with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def gather(tree: Any) -> Any:
    """Host copies of arrays sharded over every process's devices, the whole array on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
