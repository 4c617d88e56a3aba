"""From a run's spec to the library's objects: data, net, optimizer recipe, stop rules, trainer options.

:func:`build` is the one place a :class:`bpkit.spec.Run` becomes what the training loop
takes, and the one place the checks that need the data are made (batch size against
the examples, measurements per epoch against the batches, losses against targets,
targets against the output activation's range), each one line, before anything is
compiled.

Example:
    >>> from bpkit import config
    >>> run = config.expand(config.load("experiments/xor.toml"))[0]   # doctest: +SKIP
    >>> ex = build(run, load_data(run))                                 # doctest: +SKIP
    >>> ex.net.sizes, ex.optimizer, ex.options["batch_size"]            # doctest: +SKIP
    ((2, 2, 1), 'sgd', 1)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from bpkit import activations as acts
from bpkit import datasets, losses, optim, stopping
from bpkit._validate import require_reachable_targets
from bpkit.network import MLP
from bpkit.spec import DISCRETE, VMAPPED, Run

ACTIVATION = "network.activation"  # the column of a program shared by several hidden activations


def load_data(run: Run) -> datasets.Dataset:
    """The data set a run names: a CSV or FANN file, or a named set."""
    d = run.data
    if d.path:
        for path, digest in ((d.path, d.sha256), (d.test_path, d.test_sha256)):
            if digest and datasets.file_sha256(path) != digest:
                raise ValueError(f"{path}: the file changed after the sweep read it; run the sweep again")
        return datasets.load_file(d.path, targets=d.targets, seed=d.split_seed, test_path=d.test_path or None)
    return datasets.load(d.name, seed=d.split_seed)


def stop_rules(run: Run) -> stopping.StopRules:
    """The run's stop rules (an off rule is None in both)."""
    t = run.training
    return stopping.StopRules(max_epochs=t.max_epochs, goal=t.goal, min_grad_norm=t.min_grad_norm,
                              criterion_40_20_40=t.criterion_40_20_40, bit_fail=t.bit_fail, patience=t.patience,
                              stall_epochs=t.stall_epochs, stop_on=t.stop_on, max_cu=t.max_cu)


def network(run: Run, data: datasets.Dataset) -> MLP:
    """The run's net on ``data``: its input and output widths come from the data."""
    sizes = (data.inputs, *run.network.hidden, data.outputs)
    steepness = (run.network.steepness,) * (len(sizes) - 2) + (run.network.output_steepness,)
    return MLP(sizes, hidden=run.network.activation, output=run.network.output, shortcuts=run.network.shortcuts,
               sum_limit=run.network.sum_limit, steepness=steepness)


class Experiment(NamedTuple):
    """A run's pieces, as the training loop and a sweep's program take them."""

    net: MLP
    optimizer: str  # a bpkit.optim.make name
    static_hyper: tuple[tuple[str, Any], ...]  # the optimizer's hyperparameters fixed in the program
    data_hyper: tuple[tuple[str, str], ...]  # (hyperparameter, config key) of those passed as data
    columns: tuple[str, ...]  # the program's data, one column per run: the seed, the init scale, data_hyper
    options: dict[str, Any]  # bpkit.loop.Options
    init: str
    bias_init: float
    dtype: Any
    arrays: dict[str, Any]  # x, y (training), xv, yv (validation), xt, yt (test), in the run's dtype
    target_range: tuple[float, float]  # (lo, hi) of the training targets
    bit_fail_limit: float | None = None  # count each run's final bit fails at this limit (None: not counted)
    dead_units: bool = False  # count each run's dead hidden units at its start and at its end
    hidden_choices: tuple[str, ...] = ()  # two or more: the hidden activation is data, a code into these

    def net_for(self, values: dict[str, Any]) -> MLP:
        """The net of the run with column ``values`` (traced in a group's program): ``net``, or with merged
        hidden activations, ``net`` with the run's own (:func:`bpkit.activations.switched` on its code)."""
        if not self.hidden_choices:
            return self.net
        chosen = acts.switched(values[ACTIVATION], self.hidden_choices)
        return dataclasses.replace(self.net, hidden=(chosen,) * len(self.net.hidden))

    @property
    def codes(self) -> dict[str, Callable[[Any], int]]:
        """Each discrete column's int32 code of a value: :data:`bpkit.spec.DISCRETE`, and with merged hidden
        activations the activation's place among ``hidden_choices``."""
        return {**DISCRETE, ACTIVATION: self.hidden_choices.index} if self.hidden_choices else DISCRETE


def _targets(y: np.ndarray | None, run: Run, task: str) -> np.ndarray | None:
    rng = run.data.target_range
    if y is None or not rng or task != "classification":
        return y
    lo, hi = rng
    with np.errstate(over="ignore", invalid="ignore"):  # a range too wide is refused by _finite, in one line
        return lo + (hi - lo) * y


_WHAT = {"x": "training inputs", "y": "training targets", "xv": "validation inputs", "yv": "validation targets",
         "xt": "test inputs", "yt": "test targets"}


def _finite(arrays: dict[str, Any], run: Run, name: str) -> None:
    """Refuse data that are not finite in the run's dtype (beyond float32's range, or targets that
    data.target_range maps out of it): every loss and gradient would be NaN."""
    for k, a in arrays.items():
        if a is not None and not bool(jnp.all(jnp.isfinite(a))):
            why = " once data.target_range maps them" if k.startswith("y") and run.data.target_range else ""
            wider = " or use dtype = 'float64'" if run.dtype != "float64" else ""
            raise ValueError(f"{name}: the {_WHAT[k]} are not finite in {run.dtype}{why}; rescale them{wider}")


def _batch_size(run: Run, data: datasets.Dataset) -> int | None:
    """The trainer's batch size (None: the full batch), checked against the data."""
    bs, n = run.training.batch_size, len(data.x_train)
    if isinstance(bs, int) and bs > n:
        raise ValueError(f"training.batch_size = {bs} is larger than the {n} training examples of "
                         f"{data.name}; use 1..{n} or 'full'")
    batch_size = bs if isinstance(bs, int) and bs < n else None  # "full", or all n examples: batch mode
    m = run.training.measures_per_epoch
    batches = 1 if batch_size is None else math.ceil(n / batch_size)
    if m > batches:
        raise ValueError(f"training.measures_per_epoch = {m} is more than the {batches} batch(es) of an epoch "
                         f"of {data.name} at training.batch_size = {bs}; use 1..{batches}")
    return batch_size


def _hyper(run: Run, plain_momentum: bool) -> tuple[tuple, tuple]:
    """The optimizer's (static, data) hyperparameters: data are the vmapped ones (:data:`VMAPPED`),
    but for momentum fixed at 0 where ``plain_momentum`` (plain gradient descent, no velocity)."""
    name = run.optimizer.name
    fields = {k: f"optimizer.{k}" for k in optim.HYPERPARAMETERS[name]}
    fixed = {"optimizer.momentum": 0.0} if plain_momentum and "momentum" in fields else {}
    static = tuple((k, fixed.get(f, run.get(f))) for k, f in fields.items() if f not in VMAPPED or f in fixed)
    data = tuple((k, f) for k, f in fields.items() if f in VMAPPED and f not in fixed)
    return static, data


def build(run: Run, data: datasets.Dataset, plain_momentum: bool = False,
          hidden_choices: tuple[str, ...] = ()) -> Experiment:
    """The pieces of ``run`` on ``data``, every check that needs the data made first.

    ``plain_momentum``: momentum is 0 in every run sharing the program, so it is plain
    gradient descent, without a velocity buffer.  ``hidden_choices``: the hidden activations
    of the runs sharing the program, where there are several (:func:`bpkit.plan.merges_activation`): the
    activation is then a column, its code the choice's place.

    Raises:
        ValueError: the run cannot train on these data (one line).
    """
    dtype = jnp.dtype(run.dtype)
    net = network(run, data)
    batch_size = _batch_size(run, data)
    y_tr = _targets(data.y_train, run, data.task)
    assert y_tr is not None  # every data set has training targets
    lo, hi = float(np.min(y_tr)), float(np.max(y_tr))
    splits = {"x": data.x_train, "y": y_tr, "xv": data.x_val, "yv": _targets(data.y_val, run, data.task),
              "xt": data.x_test, "yt": _targets(data.y_test, run, data.task)}
    with np.errstate(over="ignore"):  # values beyond the dtype are refused by _finite, in one line
        arrays = {k: (None if v is None else jnp.asarray(v, dtype)) for k, v in splits.items()}
    _finite(arrays, run, data.name)
    if data.task == "classification" and run.loss != "mse" and not np.all((data.y_train == 0) | (data.y_train == 1)):
        raise ValueError(f"loss {run.loss!r} needs 0/1 targets; {data.name} has other values (use loss = 'mse')")
    losses.get(run.loss).check_output_activation(net.output)
    require_reachable_targets(net.activations[-1], net.sizes[-1], y_tr, data.name)
    options = dict(loss=run.loss, source=run.source, batch_size=batch_size, shuffle=run.training.shuffle,
                   rules=stop_rules(run), measure_every=run.training.measure_every,
                   measures_per_epoch=run.training.measures_per_epoch,
                   # batch mode with autodiff measures the gradient anyway: its next step's, its norm free
                   grad_norm=run.training.grad_norm or (batch_size is None and run.source == "autodiff"))
    static, data_hyper = _hyper(run, plain_momentum)
    used = {"seed", "network.init_scale"} | {f for _, f in data_hyper}
    columns = tuple(k for k in VMAPPED if k in used) + ((ACTIVATION,) if len(hidden_choices) > 1 else ())
    return Experiment(net, run.optimizer.name, static, data_hyper, columns, options, run.network.init,
                      run.network.bias_init, dtype, arrays, (lo, hi), run.training.measure_bit_fails,
                      run.training.measure_dead_units, hidden_choices if len(hidden_choices) > 1 else ())

