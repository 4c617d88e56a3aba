"""Small grids and helpers the sweep-level tests share (a config, axes, measured runs; a store's rows; a run alone)."""

import json
import math
import textwrap

import jax

from bpkit import datasets

CONFIG = textwrap.dedent("""
    name = "t"
    seeds = [0, 1, 2]
    [data]
    name = "xor"
    [network]
    hidden = [2]
    activation = ["tanh", "sigmoid"]
    [optimizer]
    name = "sgd"
    learning_rate = [0.5, 1.0]
    [training]
    batch_size = 2
    max_epochs = 40
""")


def stored_table(store):
    runs, errors = store.runs()
    assert not errors
    return {r["run_id"]: (r["epochs"], r["train_loss"], r["curves"]["loss"]) for r in runs}


AXES = textwrap.dedent("""
    name = "axes"
    seeds = [0, 1]
    [network]
    hidden = [2]
    activation = ["tanh", "sigmoid"]
    [training]
    max_epochs = 30
    criterion_40_20_40 = true
    [[axis.method]]
    label = "online"
    optimizer.name = "sgd"
    optimizer.learning_rate = 2.0
    training.batch_size = 1
    [[axis.method]]
    label = "CG"
    optimizer.name = "cg"
    training.batch_size = "full"
""")


MEASURED = textwrap.dedent("""
    name = "m"
    seeds = [0, 1, 2, 3]
    dtype = "float64"
    [network]
    hidden = [3]
    activation = "tanh"
    [optimizer]
    learning_rate = [1.0, 3.0]
    [training]
    batch_size = 1
    max_epochs = 300
    goal = 0.02
    stall_epochs = 0
""")


def alone(run, **measurement):
    """The run through ``train()`` itself: the sweep's init and training keys, from the seed."""
    import jax.numpy as jnp

    from bpkit import MLP, optim
    from bpkit.experiment import stop_rules
    from bpkit.training import train

    kinit, ktrain = jax.random.split(jax.random.key(run.seed))
    net = MLP((2, *run.network.hidden, 1), hidden=run.network.activation)
    x, y = datasets.load("xor").x_train, datasets.load("xor").y_train
    # optim.make: the learning rate is data (one program for every rate), bitwise what optax.sgd gives
    sgd = optim.make("sgd", learning_rate=run.optimizer.learning_rate)
    return train(net, sgd, net.init(kinit, dtype=jnp.float64), x, y, key=ktrain,
                 batch_size=run.training.batch_size, rules=stop_rules(run), **measurement)


def toml_value(v):
    """A Python value as TOML text (NaN and infinities included)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON escapes control characters as TOML does
    return "[" + ", ".join(toml_value(x) for x in v) + "]"


def fann_sets():
    """FANN's benchmark data sets (../shared/fann-datasets beside the repository, or $BPKIT_FANN_DATASETS);
    the calling test skips, saying where it looked, when they are absent."""
    import os
    import pathlib

    import pytest

    default = pathlib.Path(__file__).resolve().parents[2] / "shared" / "fann-datasets"
    folder = pathlib.Path(os.environ.get("BPKIT_FANN_DATASETS") or default)
    if not (folder / "parity8.train").is_file():
        pytest.skip(f"FANN's benchmark sets are not at {folder} (the shared folder beside the repository, or "
                    f"$BPKIT_FANN_DATASETS)")
    return folder
