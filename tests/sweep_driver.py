"""``bpkit sweep`` in a subprocess, with a store hook injected to pause at an exact instant.

Tests only: bpkit's own code never pauses. Usage::

    python tests/sweep_driver.py --stage commit --nth 3 --flag F [--release R] [--seconds S] -- SWEEP ARGS

At the ``nth`` call of the store hook with ``stage`` ("opened", "commit", or "run_ids": after
the sweep read which runs are stored), the driver touches ``F`` and waits ``S`` seconds, or
until the file ``R`` exists, so a test can kill or interrupt the process exactly there.
"""

import argparse
import os
import signal
import sys
import time

# The bpkit beside these tests, as ``python -m bpkit`` run from the repository root would import.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bpkit.store as st  # noqa: E402  (after the path above: the bpkit beside these tests)
from bpkit import interrupt  # noqa: E402  (the same)
from bpkit.cli import main  # noqa: E402  (the same)


def make_hook(stage: str, nth: int, flag: str, release: str | None, seconds: float):
    calls = {"n": 0}

    def hook(s: str) -> None:
        if s != stage:
            return
        calls["n"] += 1
        if calls["n"] != nth:
            return
        open(flag, "w").close()
        deadline = time.time() + seconds
        while time.time() < deadline and not (release and os.path.exists(release)):
            time.sleep(0.02)

    return hook


def install(hook) -> None:
    base = st.Store

    class HookedStore(base):
        def __init__(self, path, create=True, **kw):
            super().__init__(path, create, hook=hook, **kw)

        def run_ids(self):
            ids = super().run_ids()
            hook("run_ids")
            return ids

    st.Store = HookedStore


if __name__ == "__main__":
    # A shell without job control starts background commands with SIGINT ignored, and that is
    # inherited; the Ctrl-C test needs the handler an interactive user's process has.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    p = argparse.ArgumentParser()
    p.add_argument("--stage", required=True)
    p.add_argument("--nth", type=int, default=1)
    p.add_argument("--flag", required=True)
    p.add_argument("--release")
    p.add_argument("--seconds", type=float, default=120.0)
    args, rest = p.parse_known_args()
    install(make_hook(args.stage, args.nth, args.flag, args.release, args.seconds))
    interrupt.install()  # as the bpkit command does (bpkit.cli.run)
    sys.exit(main(["sweep", *[a for a in rest if a != "--"]]))
