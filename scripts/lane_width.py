"""Which vmapped widths give a run the same bits as 64 lanes: the measurement behind the README's
determinism paragraph (a run's last bits depend on how many runs share its compiled program).

    python3 scripts/lane_width.py parity3 3,3,1 cg --epochs 300
    python3 scripts/lane_width.py digits 64,30,10 sgd --batch 10 --epochs 20 --widths 1,2,16,32

Seeds 0..63 run side by side in one program (``bpkit.lanes.train_many``); then seeds 0..w-1 at each
width w.  Prints, per width, the lanes whose loss history differs from the 64-lane run in any bit and
the largest relative difference of their last loss.
"""

from __future__ import annotations

import argparse

import numpy as np

REFERENCE = 64


def histories(x, y, sizes: tuple[int, ...], optimizer: str, batch: int | None, epochs: int, width: int):
    """Seeds 0..width-1 trained on ``(x, y)`` in one vmapped program: each run's loss after every epoch
    (width, epochs)."""
    import jax

    from bpkit import MLP
    from bpkit.lanes import train_many
    from bpkit.stopping import StopRules

    hyper = {"learning_rate": [0.5] * width} if optimizer == "sgd" else {}
    static = (("beta", "pr+"),) if optimizer == "cg" else ()
    r = train_many(MLP(sizes), optimizer, list(range(width)), x, y, hyper=hyper, static_hyper=static,
                   batch_size=batch, rules=StopRules(max_epochs=epochs, stall_epochs=None))
    return np.asarray(jax.device_get(r.history.loss))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="a bpkit data set, e.g. parity3, digits")
    p.add_argument("sizes", help="layer widths, e.g. 3,3,1")
    p.add_argument("optimizer", choices=("sgd", "cg"), help="sgd (learning rate 0.5) or cg (PR+)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: full batch)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--widths", default="1,2,3,4,5,6,7,8,10,12,14,16,20,24,32,33,48,62")
    a = p.parse_args()
    import jax.numpy as jnp

    from bpkit import datasets

    try:
        sizes = tuple(int(s) for s in a.sizes.split(","))
        widths = [int(s) for s in a.widths.split(",")]
        d = datasets.load(a.data)
    except ValueError as e:  # a one-line error naming what is valid, exit code 2
        p.error(f"{e}; sizes and widths are integers separated by commas, e.g. 3,3,1")
    x, y = jnp.asarray(d.x_train, jnp.float32), jnp.asarray(d.y_train, jnp.float32)
    ref = histories(x, y, sizes, a.optimizer, a.batch, a.epochs, REFERENCE)
    for w in widths:
        h = histories(x, y, sizes, a.optimizer, a.batch, a.epochs, w)
        apart = [i for i in range(w) if not np.array_equal(h[i], ref[i], equal_nan=True)]
        gap = max((abs(final(h[i]) - final(ref[i])) / abs(final(ref[i])) for i in apart), default=0.0)
        print(f"{w:3d} lanes: {len(apart)} differ from {REFERENCE} lanes {apart[:12]}, "
              f"largest relative difference of the final loss {gap:.1e}")


def final(history: np.ndarray) -> float:
    """A run's loss after its last epoch (the history is NaN past a run's stop)."""
    return float(history[np.isfinite(history)][-1])


if __name__ == "__main__":
    main()
