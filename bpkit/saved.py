"""A trained net on disk: its spec, its weights and the scaling of its data, in plain files.

* :func:`save` / :func:`load`: a NumPy ``.npz`` holding each layer's ``w`` and ``b`` and one JSON
  text, the spec (:class:`bpkit.MLP`'s fields, the dtype) and the :class:`Scaling`.  Loaded with
  ``allow_pickle=False``: nothing in the file is executed.
* :func:`to_fann` / :func:`save_fann`: FANN 2.2's ``.net`` text (``FANN_FLO_2.1``), which
  ``fann_create_from_file`` reads, for the activations FANN has (sigmoid, sigmoid_symmetric, tanh,
  identity) without shortcuts.

A :class:`Scaling` is FANN's (``fann_set_scaling_params``), per input and per output:
``x' = ((x - mean) / deviation + 1) * factor + new_min`` on the way in, and its inverse on the way
out, so a saved net applies to raw data (:meth:`SavedNet.predict`).  bpkit's standardisation
(``(x - mean) / std``) is ``Scaling.standardise(x_train)``: ``factor = 1``, ``new_min = -1``.

Example:
    >>> import jax, numpy as np
    >>> from bpkit import MLP, saved
    >>> net = MLP((2, 3, 1), hidden="tanh", output="sigmoid")
    >>> p = net.init(jax.random.key(0))
    >>> saved.save("/tmp/xor.npz", net, p, overwrite=True)   # doctest: +SKIP
    >>> again = saved.load("/tmp/xor.npz")                      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from bpkit.network import MLP, Params

FORMAT = "bpkit-net"
VERSION = 1
# bpkit activation -> (FANN's enum fann_activationfunc_enum, FANN's steepness for bpkit's steepness 1):
# the same function of the sum.
FANN_ACTIVATIONS = {"sigmoid": (3, 0.5), "sigmoid_symmetric": (5, 0.5), "tanh": (5, 1.0), "identity": (0, 1.0)}
_SIDES = ("in", "out")


class Scaling(NamedTuple):
    """FANN's scaling parameters for one side (inputs or outputs): one value per column."""

    mean: np.ndarray
    deviation: np.ndarray
    new_min: np.ndarray
    factor: np.ndarray

    @classmethod
    def standardise(cls, x: np.ndarray) -> Scaling:
        """bpkit's standardisation on ``x``'s columns (:func:`bpkit.datasets.standardisation`)."""
        from bpkit import datasets

        return cls.of_standardisation(*datasets.standardisation(np.asarray(x, np.float64)))

    @classmethod
    def of_standardisation(cls, mean: np.ndarray, std: np.ndarray) -> Scaling:
        """``(x - mean) / std`` in FANN's parameters: ``factor = 1``, ``new_min = -1``."""
        n = len(mean)
        return cls(np.asarray(mean, np.float64), np.asarray(std, np.float64), np.full(n, -1.0), np.ones(n))

    @classmethod
    def identity(cls, n: int) -> Scaling:
        return cls(np.zeros(n), np.ones(n), np.full(n, -1.0), np.ones(n))

    def scale(self, x: np.ndarray) -> np.ndarray:
        """``fann_scale_input``: raw -> the net's scale."""
        return ((np.asarray(x, np.float64) - self.mean) / self.deviation + 1.0) * self.factor + self.new_min

    def descale(self, y: np.ndarray) -> np.ndarray:
        """``fann_descale_output``: the net's scale -> raw."""
        return ((np.asarray(y, np.float64) - self.new_min) / self.factor - 1.0) * self.deviation + self.mean


@dataclasses.dataclass(frozen=True)
class SavedNet:
    """A net read back: its spec, params (NumPy, in the saved dtype) and scaling (None: raw data in and out)."""

    net: MLP
    params: Params
    inputs: Scaling | None = None
    outputs: Scaling | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The net's outputs on raw inputs, in raw units."""
        x = self.inputs.scale(x) if self.inputs is not None else np.asarray(x, np.float64)
        dtype = np.asarray(self.params[0]["w"]).dtype
        y = np.asarray(self.net.apply(self.params, jnp.asarray(x, dtype)), np.float64)
        return self.outputs.descale(y) if self.outputs is not None else y


def _scaling(net: MLP, inputs: Scaling | None, outputs: Scaling | None) -> dict[str, Any]:
    """The scaling of ``net``'s inputs and outputs as plain data, each checked (a one-line ValueError)."""
    def side(s: Scaling | None, n: int, what: str) -> dict[str, list[float]] | None:
        if s is None:
            return None
        arrays = [np.asarray(v, np.float64) for v in s]
        if any(a.shape != (n,) for a in arrays):
            raise ValueError(f"{what} scaling needs {n} values per parameter (one per column), got shapes "
                             f"{[a.shape for a in arrays]}")
        if np.any(arrays[1] == 0) or np.any(arrays[3] == 0) or not all(np.all(np.isfinite(a)) for a in arrays):
            raise ValueError(f"{what} scaling needs finite values and non-zero deviations and factors")
        return {k: a.tolist() for k, a in zip(Scaling._fields, arrays, strict=True)}

    return {"in": side(inputs, net.sizes[0], "input"), "out": side(outputs, net.sizes[-1], "output")}


def _spec(net: MLP, params: Params, inputs: Scaling | None, outputs: Scaling | None) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "sizes": list(net.sizes), "hidden": list(net.hidden),
            "output": net.output, "shortcuts": net.shortcuts, "sum_limit": net.sum_limit,
            "steepness": list(net.gains),
            "dtype": str(np.asarray(params[0]["w"]).dtype), "scaling": _scaling(net, inputs, outputs)}


def save(path: str | Path, net: MLP, params: Params, *, inputs: Scaling | None = None,
         outputs: Scaling | None = None, overwrite: bool = False) -> Path:
    """Write ``net`` and ``params`` (and the data's scaling) to ``path`` (``.npz``), whole or not at all:
    the file is written beside its place and renamed into it.  An existing file is kept unless
    ``overwrite``."""
    path = Path(path)
    net.check_params(params)
    spec = _spec(net, params, inputs, outputs)
    arrays = {f"layer{i}.{k}": np.asarray(layer[k]) for i, layer in enumerate(params) for k in ("w", "b")}
    buffer = io.BytesIO()
    arrays["spec"] = np.array(json.dumps(spec))
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # (numpy's stub takes any keyword for allow_pickle)
    _write(path, buffer.getvalue(), overwrite)
    return path


def _write(path: Path, data: bytes, overwrite: bool) -> None:
    """``data`` at ``path``, atomically: a temporary file in the same folder, synced, then linked (or
    renamed, with ``overwrite``) into place."""
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; give the file's own path")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists; give another path (or overwrite=True)")
    if not path.parent.is_dir():
        raise ValueError(f"{path.parent} is not a folder; create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ValueError(f"{path} exists; give another path (or overwrite=True)") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: str | Path) -> SavedNet:
    """A net :func:`save` wrote; a one-line ValueError names what is wrong with any other file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            contents = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a saved bpkit net ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    try:
        spec = json.loads(str(contents.pop("spec")))
        if spec.get("format") != FORMAT or spec.get("version") != VERSION:
            raise ValueError(f"format {spec.get('format')!r} version {spec.get('version')!r}, "
                             f"expected {FORMAT!r} version {VERSION}")
        net = MLP(tuple(spec["sizes"]), hidden=tuple(spec["hidden"]), output=spec["output"],
                  shortcuts=spec["shortcuts"], sum_limit=spec["sum_limit"], steepness=tuple(spec["steepness"]))
        params = [{k: contents.pop(f"layer{i}.{k}") for k in ("w", "b")} for i in range(net.num_layers)]
        if contents:
            raise ValueError(f"unexpected arrays {', '.join(sorted(contents))}")
        net.check_params(params)
        scaling = [None if spec["scaling"][s] is None else Scaling(*(np.asarray(spec["scaling"][s][k], np.float64)
                                                                     for k in Scaling._fields)) for s in _SIDES]
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a saved bpkit net ({e})") from None
    return SavedNet(net, params, *scaling)


class Retrained(NamedTuple):
    """A stored run trained again alone, as :func:`from_store` returns it."""

    saved: SavedNet
    loss: str  # the run's loss
    train_loss: float  # the retrained run's final training loss
    stored_loss: float | None  # the store's (None: the run diverged there)


def from_store(store_path: str | Path, run_id: str, check: Callable[[MLP], None] | None = None) -> Retrained:
    """A sweep's run as a saved net: the run trained again alone from its stored config and seed (a store
    keeps no weights), with its data's scaling (bpkit's standardisation of CSV and named sets, the
    ``data.target_range`` map of the targets).  Its final training loss is returned beside the stored one:
    a run's last bits depend on how many runs shared its compiled chunk, so one run alone can end apart from
    its sweep, visibly where training amplifies rounding (float32 iRPROP- on thyroid: 0.0239 against 0.0229)."""
    import jax

    from bpkit import engine, experiment, lanes, losses, spec
    from bpkit.store import Store

    with Store(store_path, readonly=True) as store:
        rows, _ = store.runs(ids={run_id})
    if not rows:
        raise ValueError(f"{store_path}: no run {run_id!r} (a store's run ids: its run_id column, e.g. through "
                         f"Store.export_csv)")
    row = rows[0]
    run = spec.from_flat(row["config"])
    data = experiment.load_data(run)
    ex = experiment.build(run, data)
    if check is not None:  # before the training: e.g. that FANN can run this net
        check(ex.net)
    with engine.x64_mode(run.dtype):
        one = engine.lane_alone(ex, run)  # the run's column values and initial weights, as its sweep had them
        result = lanes.run_trainer(one.trainer, one.params, ex.arrays["x"], ex.arrays["y"], one.key,
                                   ex.arrays["xv"], ex.arrays["yv"])
        out, cache = ex.net.forward(result.params, ex.arrays["x"])
        loss = float(losses.get(run.loss).value(cache.zs[-1], out, ex.arrays["y"]))
    params = jax.tree.map(np.asarray, result.params)
    inputs = None if data.standardisation is None else Scaling.of_standardisation(*data.standardisation)
    outputs = None
    if run.data.target_range and data.task == "classification":  # y_net = lo + (hi - lo) y
        lo, hi = run.data.target_range
        n = ex.net.sizes[-1]
        outputs = Scaling(np.zeros(n), np.ones(n), np.full(n, 2 * lo - hi), np.full(n, hi - lo))
    return Retrained(SavedNet(ex.net, params, inputs, outputs), run.loss, loss, row["train_loss"])


def to_fann(net: MLP, params: Params, *, inputs: Scaling | None = None, outputs: Scaling | None = None,
            error_function: str = "linear") -> str:
    """FANN 2.2's ``.net`` text for ``net``: FANN's defaults for every training setting (its RPROP,
    ``error_function`` "linear" or "tanh"), each layer's activation and steepness, the weights in
    ``%.20e`` and, if given, the scaling.  FANN runs it with the same function of the input (up to
    rounding, and FANN's clip of each sum to ``150 / steepness``)."""
    check_fann(net)
    if error_function not in ("linear", "tanh"):
        raise ValueError(f"error_function must be 'linear' or 'tanh', got {error_function!r}")
    net.check_params(params)
    _scaling(net, inputs, outputs)  # checked before a line is written
    e = lambda v: f"{float(v):.20e}"
    lines = ["FANN_FLO_2.1", f"num_layers={len(net.sizes)}"]
    for line in _FANN_DEFAULTS.format(error=int(error_function == "tanh")).splitlines():
        lines += [line, _FANN_LISTS[line]] if line in _FANN_LISTS else [line]
    lines.append("layer_sizes=" + "".join(f"{n + 1} " for n in net.sizes))
    if inputs is None and outputs is None:
        lines.append("scale_included=0")
    else:
        sides = (inputs or Scaling.identity(net.sizes[0]), outputs or Scaling.identity(net.sizes[-1]))
        lines.append("scale_included=1")
        for side, s in zip(_SIDES, sides, strict=True):
            for field, values in zip(Scaling._fields, s, strict=True):  # FANN's order: the inputs' four first
                lines.append(f"scale_{field}_{side}=" + "".join(f"{float(v):.9g} " for v in values))
    neurons = ["(0, 0, " + e(0) + ") "] * (net.sizes[0] + 1)
    for n_in, n, act, k in zip(net.sizes[:-1], net.sizes[1:], net.activations, net.gains, strict=True):
        code, base = FANN_ACTIVATIONS[act.name]
        steep = base * k  # FANN's steepness giving a = f(k z)
        neurons += [f"({n_in + 1}, {code}, {e(steep)}) "] * n + [f"(0, {code}, {e(steep)}) "]
    lines.append("neurons (num_inputs, activation_function, activation_steepness)=" + "".join(neurons))
    conns, first = [], 0  # neuron j of a layer: one connection from each neuron below, the bias last
    for n_in, layer in zip(net.sizes[:-1], params, strict=True):
        w, b = np.asarray(layer["w"], np.float64), np.asarray(layer["b"], np.float64)
        for j in range(w.shape[1]):
            conns += [f"({first + i}, {e(w[i, j])}) " for i in range(n_in)] + [f"({first + n_in}, {e(b[j])}) "]
        first += n_in + 1
    lines.append("connections (connected_to_neuron, weight)=" + "".join(conns))
    return "\n".join(lines) + "\n"


def check_fann(net: MLP) -> None:
    """Raise a one-line ValueError unless FANN can run ``net`` (a layered net of FANN's activations)."""
    if net.shortcuts:
        raise ValueError("FANN's .net export needs a layered net; this one has shortcuts")
    unknown = sorted({a.name for a in net.activations} - set(FANN_ACTIVATIONS))
    if unknown:
        raise ValueError(f"FANN has no activation like {', '.join(unknown)}; exportable: {', '.join(FANN_ACTIVATIONS)}")


def save_fann(path: str | Path, net: MLP, params: Params, *, overwrite: bool = False, **kw: Any) -> Path:
    """:func:`to_fann`'s text written to ``path`` atomically (``fann_create_from_file`` reads it)."""
    path = Path(path)
    _write(path, to_fann(net, params, **kw).encode(), overwrite)
    return path


_FANN_DEFAULTS = """learning_rate=0.700000
connection_rate=1.000000
network_type=0
learning_momentum=0.000000
training_algorithm=2
train_error_function={error}
train_stop_function=0
cascade_output_change_fraction=0.010000
quickprop_decay=-0.000100
quickprop_mu=1.750000
rprop_increase_factor=1.200000
rprop_decrease_factor=0.500000
rprop_delta_min=0.000000
rprop_delta_max=50.000000
rprop_delta_zero=0.100000
cascade_output_stagnation_epochs=12
cascade_candidate_change_fraction=0.010000
cascade_candidate_stagnation_epochs=12
cascade_max_out_epochs=150
cascade_min_out_epochs=50
cascade_max_cand_epochs=150
cascade_min_cand_epochs=50
cascade_num_candidate_groups=2
bit_fail_limit=3.49999999999999977796e-01
cascade_candidate_limit=1.00000000000000000000e+03
cascade_weight_multiplier=4.00000000000000022204e-01
cascade_activation_functions_count=10
cascade_activation_steepnesses_count=4"""
# FANN writes a space after each value of these lists (trailing spaces are part of its format)
_FANN_LISTS = {
    "cascade_activation_functions_count=10": "cascade_activation_functions=" + "".join(
        f"{c} " for c in (3, 5, 7, 8, 10, 11, 14, 15, 16, 17)),
    "cascade_activation_steepnesses_count=4": "cascade_activation_steepnesses=" + "".join(
        f"{v:.20e} " for v in (0.25, 0.5, 0.75, 1.0)),
}
