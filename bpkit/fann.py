"""FANN 2.2's C library through ctypes: the peer that the conformance tests and the bench check bpkit against.

FANN is a system package (Debian: libfann-dev), never a dependency of bpkit: ``load()``
returns None where the library is absent, and its callers then skip, saying why
(:data:`WHY_MISSING`); ``.ci/run`` installs it so that CI runs the conformance tests.
libdoublefann (``precision="double"``) is the tests' reference, libfloatfann (``"float"``)
times FANN in float32 for the bench.

FANN numbers its neurons layer by layer, each layer followed by a bias neuron
(value 1); neuron j of layer l has one connection from every neuron of layer
l-1, the bias last.  bpkit's params are ``[{"w": (n_{l-1}, n_l), "b": (n_l,)}]``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile

import numpy as np

LINEAR, SIGMOID, SIGMOID_SYMMETRIC = 0, 3, 5  # enum fann_activationfunc_enum
INCREMENTAL, BATCH, RPROP, QUICKPROP = 0, 1, 2, 3  # enum fann_train_enum
ERRORFUNC_LINEAR, ERRORFUNC_TANH = 0, 1  # enum fann_errorfunc_enum


class Connection(ctypes.Structure):  # struct fann_connection, fann_type = double
    _fields_ = [("from_neuron", ctypes.c_uint), ("to_neuron", ctypes.c_uint), ("weight", ctypes.c_double)]


class FloatConnection(ctypes.Structure):  # the same in libfloatfann, fann_type = float
    _fields_ = [("from_neuron", ctypes.c_uint), ("to_neuron", ctypes.c_uint), ("weight", ctypes.c_float)]


# precision -> (library name, its soname, fann_type, struct fann_connection)
PRECISIONS = {"double": ("doublefann", "libdoublefann.so.2", ctypes.c_double, Connection),
              "float": ("floatfann", "libfloatfann.so.2", ctypes.c_float, FloatConnection)}
_LIBS: dict = {}
WHY_MISSING = "FANN's libdoublefann is not installed (Debian: apt-get install libfann-dev)"


def load(precision: str = "double"):
    """The ctypes library of ``precision`` ("double": libdoublefann, the tests' reference;
    "float": libfloatfann, for float32 timings), or None."""
    if precision not in _LIBS:
        short, soname, T, Conn = PRECISIONS[precision]
        try:
            lib = ctypes.CDLL(ctypes.util.find_library(short) or soname)
        except OSError:
            return None
        P, F, D, U = ctypes.c_void_p, ctypes.c_float, T, ctypes.c_uint
        sig = {
            "fann_create_standard_array": (P, [U, ctypes.POINTER(U)]),
            "fann_destroy": (None, [P]),
            "fann_set_activation_function_hidden": (None, [P, ctypes.c_int]),
            "fann_set_activation_function_output": (None, [P, ctypes.c_int]),
            "fann_set_activation_steepness_hidden": (None, [P, D]),
            "fann_set_activation_steepness_output": (None, [P, D]),
            "fann_set_training_algorithm": (None, [P, ctypes.c_int]),
            "fann_set_train_error_function": (None, [P, ctypes.c_int]),
            "fann_set_learning_rate": (None, [P, F]),
            "fann_set_learning_momentum": (None, [P, F]),
            "fann_set_quickprop_decay": (None, [P, F]),
            "fann_set_quickprop_mu": (None, [P, F]),
            "fann_set_rprop_increase_factor": (None, [P, F]),
            "fann_set_rprop_decrease_factor": (None, [P, F]),
            "fann_set_rprop_delta_min": (None, [P, F]),
            "fann_set_rprop_delta_max": (None, [P, F]),
            "fann_set_rprop_delta_zero": (None, [P, F]),
            "fann_get_total_connections": (U, [P]),
            "fann_get_connection_array": (None, [P, ctypes.POINTER(Conn)]),
            "fann_set_weight_array": (None, [P, ctypes.POINTER(Conn), U]),
            "fann_read_train_from_file": (P, [ctypes.c_char_p]),
            "fann_destroy_train": (None, [P]),
            "fann_train_epoch": (F, [P, P]),
            "fann_run": (ctypes.POINTER(D), [P, ctypes.POINTER(D)]),
            "fann_save": (ctypes.c_int, [P, ctypes.c_char_p]),
            "fann_create_from_file": (P, [ctypes.c_char_p]),
            "fann_scale_input": (None, [P, ctypes.POINTER(D)]),
            "fann_descale_output": (None, [P, ctypes.POINTER(D)]),
            "fann_get_num_output": (U, [P]),
            "fann_test": (ctypes.POINTER(D), [P, ctypes.POINTER(D), ctypes.POINTER(D)]),
            "fann_reset_MSE": (None, [P]),
            "fann_get_bit_fail": (U, [P]),
            "fann_set_bit_fail_limit": (None, [P, D]),
        }
        for fn, (res, args) in sig.items():
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        _LIBS[precision] = lib
    return _LIBS[precision]


class Net:
    """One FANN network with bpkit-shaped params in and out."""

    def __init__(self, sizes, hidden=SIGMOID, output=SIGMOID, steepness_hidden=0.5, steepness_output=0.5,
                 precision="double"):
        self.lib = load(precision)
        _, _, self.type, self.connection = PRECISIONS[precision]
        self.sizes = tuple(sizes)
        layers = (ctypes.c_uint * len(sizes))(*sizes)
        self.ann = self.lib.fann_create_standard_array(len(sizes), layers)
        self.lib.fann_set_activation_function_hidden(self.ann, hidden)
        self.lib.fann_set_activation_function_output(self.ann, output)
        self.lib.fann_set_activation_steepness_hidden(self.ann, steepness_hidden)
        self.lib.fann_set_activation_steepness_output(self.ann, steepness_output)
        self.lib.fann_set_train_error_function(self.ann, ERRORFUNC_LINEAR)  # FANN's default is tanh-shaped
        self.lib.fann_set_learning_momentum(self.ann, 0.0)
        n = self.lib.fann_get_total_connections(self.ann)
        self.conns = (self.connection * n)()
        self.lib.fann_get_connection_array(self.ann, self.conns)
        starts = np.cumsum([0] + [s + 1 for s in sizes])  # first neuron of each layer
        self.where = []  # (layer, "w" or "b", row, col) per connection
        for c in self.conns:
            layer = int(np.searchsorted(starts, c.to_neuron, side="right")) - 1
            i, j = c.from_neuron - starts[layer - 1], c.to_neuron - starts[layer]
            self.where.append((layer - 1, "b", j, None) if i == sizes[layer - 1] else (layer - 1, "w", i, j))

    def __del__(self):
        if getattr(self, "ann", None):
            self.lib.fann_destroy(self.ann)

    def set(self, name, value):
        getattr(self.lib, f"fann_set_{name}")(self.ann, value)

    def set_params(self, params):
        for c, (layer, leaf, i, j) in zip(self.conns, self.where, strict=True):
            p = np.asarray(params[layer][leaf], np.float64)
            c.weight = float(p[i] if leaf == "b" else p[i, j])
        self.lib.fann_set_weight_array(self.ann, self.conns, len(self.conns))

    def params(self):
        self.lib.fann_get_connection_array(self.ann, self.conns)
        out = [{"w": np.zeros((m, n)), "b": np.zeros(n)} for m, n in zip(self.sizes[:-1], self.sizes[1:], strict=True)]
        for c, (layer, leaf, i, j) in zip(self.conns, self.where, strict=True):
            if leaf == "b":
                out[layer]["b"][i] = c.weight
            else:
                out[layer]["w"][i, j] = c.weight
        return out

    def run(self, x):
        rows = []
        for row in np.asarray(x, np.float64):
            buf = (self.type * len(row))(*row)
            res = self.lib.fann_run(self.ann, buf)
            rows.append([res[k] for k in range(self.sizes[-1])])
        return np.array(rows)

    def train_data(self, x, y):
        """FANN's training data for ``(x, y)`` (read from a file, FANN's one way in); free it with
        ``lib.fann_destroy_train``."""
        fd, path = tempfile.mkstemp(suffix=".data")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"{len(x)} {x.shape[1]} {y.shape[1]}\n")
                for a, b in zip(x, y, strict=True):
                    f.write(" ".join(repr(float(v)) for v in a) + "\n" + " ".join(repr(float(v)) for v in b) + "\n")
            return self.lib.fann_read_train_from_file(path.encode())
        finally:
            os.unlink(path)

    def train_epochs(self, x, y, epochs, algorithm, keep: bool = True):
        """Run ``epochs`` epochs of ``fann_train_epoch``; returns the params after each one (``keep=False``:
        none, an empty list)."""
        self.lib.fann_set_training_algorithm(self.ann, algorithm)
        data = self.train_data(x, y)
        try:
            trajectory = []
            for _ in range(epochs):
                self.lib.fann_train_epoch(self.ann, data)
                if keep:
                    trajectory.append(self.params())
            return trajectory
        finally:
            self.lib.fann_destroy_train(data)


# bpkit's optimizer name (and, for sgd, whether it is online) -> FANN's training algorithm
ALGORITHMS = {("sgd", True): INCREMENTAL, ("sgd", False): BATCH, ("rprop", False): RPROP,
              ("quickprop", False): QUICKPROP}


def algorithm(run) -> int | None:
    """FANN's training algorithm for ``run`` (a :class:`bpkit.spec.Run`), or None where FANN has none like it."""
    return ALGORITHMS.get((run.optimizer.name, run.training.batch_size == 1))


def like(run, sizes, precision: str = "float") -> Net:
    """A FANN net set up to train as ``run`` (a :class:`bpkit.spec.Run`) trains: its algorithm, learning rate
    (RPROP's initial step), momentum, quickprop's mu, RPROP's factors and bounds, and the tanh error
    function for the atanh loss.  Runs FANN cannot train alike (other losses, activations or rules than
    ``fann_clipped``, a shuffled online order, quickprop's decay) are refused: a ValueError names what differs."""
    net, opt, t = run.network, run.optimizer, run.training
    online = t.batch_size == 1
    problems = []
    if algorithm(run) is None:
        problems.append(f"optimizer {opt.name} with batch_size {t.batch_size}")
    if opt.name == "rprop" and opt.variant != "fann":
        problems.append(f"RPROP variant {opt.variant}")
    if run.loss not in ("mse", "atanh") or run.source != "fann_clipped":
        problems.append(f"loss {run.loss} with source {run.source}")
    if net.activation != "sigmoid" or net.output != "sigmoid" or (online and t.shuffle):
        problems.append("activations other than sigmoid, or a shuffled order")
    if run.data.target_range:
        problems.append("data.target_range (FANN trains on the targets as given)")
    if opt.name == "quickprop" and opt.decay:
        problems.append("quickprop's decay (FANN's is per summed slope: set it on the net)")
    if problems:
        raise ValueError(f"FANN cannot train this run as bpkit does: {'; '.join(problems)}")
    ref = Net(sizes, steepness_hidden=0.5 * net.steepness, steepness_output=0.5 * net.output_steepness,
              precision=precision)
    ref.set("train_error_function", ERRORFUNC_TANH if run.loss == "atanh" else ERRORFUNC_LINEAR)
    ref.set("learning_rate", opt.learning_rate)
    ref.set("learning_momentum", opt.momentum)
    if opt.name == "rprop":
        for name, value in (("rprop_delta_zero", opt.learning_rate), ("rprop_increase_factor", opt.eta_plus),
                            ("rprop_decrease_factor", opt.eta_minus), ("rprop_delta_min", opt.min_step),
                            ("rprop_delta_max", opt.max_step)):
            ref.set(name, value)
    if opt.name == "quickprop":
        ref.set("quickprop_mu", opt.mu)
        ref.set("quickprop_decay", 0.0)
    return ref


def side_by_side(runs, stored: dict[str, dict], precision: str = "float") -> list[dict]:
    """Each of ``runs`` (:class:`bpkit.spec.Run`, with ``stored``: run id -> the store's row) trained again by
    FANN from the same initial weights for the same epochs: per run, bpkit's and FANN's final test loss (the
    run's loss) and test error, as dicts.  FANN's loss and error are computed from its outputs by bpkit's own
    functions, so only the training differs."""
    import jax.numpy as jnp

    from bpkit import engine, experiment, losses, store

    out = []
    for run in runs:
        rid = store.run_id(run.as_dict())
        if rid not in stored:
            continue
        data = experiment.load_data(run)
        if data.x_test is None:
            raise ValueError(f"{data.name}: no test set to compare on (give data.test_path)")
        ex = experiment.build(run, data)
        ref = like(run, ex.net.sizes, precision)
        with engine.x64_mode(run.dtype):
            ref.set_params(engine.lane_alone(ex, run).params)  # the run's initial weights, as its sweep had them
        ref.train_epochs(np.asarray(data.x_train, np.float64), np.asarray(data.y_train, np.float64),
                         run.training.max_epochs, algorithm(run), keep=False)
        a = jnp.asarray(ref.run(data.x_test))
        y = jnp.asarray(data.y_test, a.dtype)
        lo, hi = float(np.min(data.y_train)), float(np.max(data.y_train))
        row = stored[rid]
        out.append({"problem": run.label.rsplit("/", 1)[0], "method": run.label.rsplit("/", 1)[-1], "seed": run.seed,
                    "bpkit_test_loss": row["test_loss"], "bpkit_test_error": 1 - row["test_acc"],
                    "fann_test_loss": float(losses.get(run.loss).value(a, a, y)),  # mse, atanh: z unused
                    "fann_test_error": 1 - float(engine.accuracy(a, y, lo, hi))})
    return out

