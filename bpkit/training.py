"""``train()``: one run of a net, by any optax transform, in one compiled program.

The loop itself is :mod:`bpkit.loop` (its state and the named steps of an epoch); many
runs side by side are :mod:`bpkit.lanes`.  This module is the function a user calls: it
checks its arguments (one line each), splits an optimizer made by
:func:`bpkit.optim.make` into the static recipe and its data hyperparameters (so another
learning rate reuses the compiled program), and jits the run.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from bpkit import MLP
    >>> from bpkit.training import train
    >>> from bpkit.stopping import StopRules
    >>> net = MLP((2, 2, 1), hidden="tanh", output="sigmoid")
    >>> x = jnp.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = jnp.array([[0.], [1.], [1.], [0.]])
    >>> r = train(net, optax.sgd(0.5), net.init(jax.random.key(0)), x, y, key=jax.random.key(1),
    ...           batch_size=1, rules=StopRules(max_epochs=50))
    >>> int(r.epochs)
    50
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax

from bpkit import _validate, optim, stopping
from bpkit.gradients import check_targets, objective
from bpkit.loop import Options, TrainResult, run_trainer, trainer_parts, x64_mode
from bpkit.network import MLP, Params
from bpkit.spec import OPTIMIZER_DATA

Array = jax.Array


def _split(optimizer: optax.GradientTransformation, dtype: Any) -> tuple[Any, dict[str, Array] | None]:
    """``(static part, data part)`` of an optimizer: its :class:`bpkit.optim.Recipe` and its data
    hyperparameters (:data:`bpkit.spec.OPTIMIZER_DATA`, numbers only) when :func:`bpkit.optim.make`
    built it, else the transform itself (hashed by identity) and None."""
    found = optim.recipe(optimizer)
    if found is None:
        return optimizer, None
    name, hyper = found
    data = {k: jnp.asarray(v, dtype) for k, v in hyper.items()
            if k in OPTIMIZER_DATA and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return optim.Recipe(name, tuple(sorted((k, v) for k, v in hyper.items() if k not in data))), data


@partial(jax.jit, static_argnames=("net", "optimizer", "options"))
def _train_jit(params, x, y, key, x_val, y_val, hyper, *, net, optimizer, options):
    if isinstance(optimizer, optim.Recipe):
        optimizer = optimizer.build(hyper)
    return run_trainer(trainer_parts(net, optimizer, options), params, x, y, key, x_val, y_val)


def train(
    net: MLP,
    optimizer: optax.GradientTransformation,
    params: Params,
    x: Array,
    y: Array,
    *,
    key: Array,
    loss: str = "mse",
    source: str = "autodiff",
    batch_size: int | None = None,
    shuffle: bool = True,
    rules: stopping.StopRules = stopping.StopRules(),
    x_val: Array | None = None,
    y_val: Array | None = None,
    checkpoints: tuple[int, ...] = (),
    measure_every: int = 1,
    measures_per_epoch: int = 1,
    replicas: int = 1,
    grad_norm: bool = True,
) -> TrainResult:
    """Train ``net`` from ``params`` on ``(x, y)``: :func:`bpkit.loop.run_trainer`, jitted.

    ``checkpoints``, ``measure_every``, ``measures_per_epoch``, ``replicas``, ``grad_norm`` and the rest: see
    :class:`bpkit.loop.Options`.  Compiles once per (net, optimizer, options) and data shapes.
    An optimizer from :func:`bpkit.optim.make` counts by name and its static hyperparameters
    only: its learning rate, momentum and the other numbers of :data:`bpkit.spec.OPTIMIZER_DATA`
    are data, so ``make("sgd", learning_rate=0.5)`` then ``make("sgd", learning_rate=0.7)`` share
    one compiled program.  Any other optax transform is part of the program (hashed by
    identity): reuse the same object to reuse the program.

    Raises:
        ValueError: on bad shapes, names or ranges (one line each).
    """
    n = x.shape[0]
    if batch_size is not None and not (isinstance(batch_size, int) and 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be an integer in 1..{n} (the number of examples) or None, "
                         f"got {batch_size!r}")
    # A full batch_size is the batch-mode program.
    options = Options(loss, source, None if batch_size == n else batch_size, shuffle, rules, tuple(checkpoints),
                      measure_every, measures_per_epoch, replicas, grad_norm)
    _check(net, optimizer, params, x, y, x_val, y_val, options)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    static, hyper = _split(optimizer, dtype)
    _say_once_if_recompiled(net, static, options)
    with x64_mode(dtype):
        return _train_jit(params, x, y, key, x_val, y_val, hyper, net=net, optimizer=static, options=options)


_LAST: dict[tuple[MLP, Options], int] = {}  # (net, options) -> id of the last transform not from optim.make
_SAID: list[bool] = []


def _say_once_if_recompiled(net: MLP, static: Any, options: Options) -> None:
    """Warn, once per process, when a transform :func:`bpkit.optim.make` did not build differs from the one
    the same run took before: it is part of the compiled program (hashed by identity), so every new
    object compiles the run again (about a second), silently."""
    if isinstance(static, optim.Recipe):
        return
    last = _LAST.get((net, options))
    _LAST[(net, options)] = id(static)
    if last is not None and last != id(static) and not _SAID:
        _SAID.append(True)
        warnings.warn("bpkit.train compiles the run again for a new optax transform object (about a second each "
                      "time): build it once and reuse it, or use bpkit.optim.make(name, ...), whose numbers are "
                      "data of one compiled program", stacklevel=3)


def _check(net: MLP, optimizer: Any, params: Params, x: Array, y: Array, x_val: Array | None, y_val: Array | None,
           options: Options) -> None:
    """``train()``'s arguments, checked before anything compiles (one line each)."""
    check_targets(net, x, y, options.loss)
    objective(net, options.loss, options.source)  # rejects an unknown source
    net.check_params(params)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__}")
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    if x_val is not None and y_val is not None:
        check_targets(net, x_val, y_val, options.loss)
    if options.rules.patience is not None and x_val is None:
        raise ValueError("the patience rule needs a validation set (x_val, y_val)")
    _validate.require_finite("params", params)
