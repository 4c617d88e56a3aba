"""bpkit's training against FANN 2.2's C library, side by side from the same weights, in float64.

Each test runs FANN's own epoch (``fann_train_epoch``) and bpkit's compiled
loop for 20-30 epochs and compares the loss after every epoch and the final
weights.  bpkit uses the ``fann_clipped`` rule (FANN's output-form derivative
with its clipping) and half MSE, which is FANN's error with its linear error
function.  FANN keeps learning rates and the RPROP/quickprop constants in C
``float``, so the tests pick values a float holds exactly or pass bpkit the
float-rounded value.  Agreement is at rounding level (measured: about 1e-13
relative); the tolerance is 1e-9.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bpkit import MLP, backprop, loss_value, optim
from bpkit import fann as fann_ref
from bpkit.stopping import StopRules
from bpkit.training import train

# Each case builds its own optimizer (FANN's settings differ per case): the recompile warning is expected here.
pytestmark = [pytest.mark.skipif(fann_ref.load() is None, reason=fann_ref.WHY_MISSING),
              pytest.mark.filterwarnings("ignore:bpkit.train compiles the run again")]

F32 = lambda v: float(np.float32(v))  # what a C float holds
RNG = np.random.default_rng(7)
X = RNG.uniform(-1, 1, (8, 3))
Y = (RNG.uniform(size=(8, 2)) > 0.5).astype(np.float64)
# bpkit activation -> (FANN activation, steepness): FANN's sigmoid is 1/(1 + exp(-2 s z)).
ACT = {"sigmoid": (fann_ref.SIGMOID, 0.5), "sigmoid_symmetric": (fann_ref.SIGMOID_SYMMETRIC, 0.5),
       "tanh": (fann_ref.SIGMOID_SYMMETRIC, 1.0)}


def _pair(hidden, scale, output="sigmoid", steepness=(1.0, 1.0)):
    net = MLP((3, 4, 2), hidden=hidden, output=output, steepness=steepness)
    params = net.init(jax.random.key(3), scheme="uniform", scale=scale, dtype=jnp.float64)
    # bpkit's steepness k on top of FANN's steepness for its activation (FANN's sigmoid at s is bpkit's at 2 s)
    ref = fann_ref.Net((3, 4, 2), hidden=ACT[hidden][0], steepness_hidden=ACT[hidden][1] * steepness[0],
                       output=ACT[output][0], steepness_output=ACT[output][1] * steepness[1])
    ref.set_params(params)
    return net, params, ref


def _compare(net, params, ref, algorithm, optimizer, epochs, batch_size=None, setup=(), loss="mse"):
    for name, value in setup:
        ref.set(name, value)
    y = 2 * Y - 1 if net.output != "sigmoid" else Y  # targets in the output's range
    if loss != "mse":  # FANN's tanh error function: bpkit's atanh error on (y - a) / r
        ref.set("train_error_function", fann_ref.ERRORFUNC_TANH)
    trajectory = ref.train_epochs(X, y, epochs, algorithm)
    r = train(net, optimizer, params, jnp.asarray(X), jnp.asarray(y), key=jax.random.key(0), loss=loss,
              source="fann_clipped", batch_size=batch_size, shuffle=False,
              rules=StopRules(max_epochs=epochs, stall_epochs=None))
    want = np.array([float(loss_value(net, jax.tree.map(jnp.asarray, p), X, y, loss)) for p in trajectory])
    got = np.asarray(r.history.loss[:epochs])
    np.testing.assert_allclose(got, want, rtol=1e-9)
    for mine, theirs in zip(r.params, trajectory[-1], strict=True):
        for leaf in ("w", "b"):
            np.testing.assert_allclose(np.asarray(mine[leaf]), theirs[leaf], rtol=1e-9, atol=1e-11)
    assert float(np.max(np.abs(want[-1] - want[0]))) > 1e-3  # it learned something: the test can tell


# scale 1: outputs inside FANN's clip range; scale 4: saturated units, the clip decides the derivative.
CASES = [(h, s) for h in ACT for s in (1.0, 4.0)]


def _clipped(net, params, hidden):
    """Whether some hidden or output value lies outside FANN's clip range at the start (the clip matters)."""
    _, cache = net.forward(params, X)
    lo, hi = (0.01, 0.99) if hidden == "sigmoid" else (-0.98, 0.98)
    return bool(np.any((np.asarray(cache.activations[1]) < lo) | (np.asarray(cache.activations[1]) > hi)))


@pytest.mark.parametrize("hidden, scale", CASES)
def test_incremental_training_matches_fann(hidden, scale):
    net, params, ref = _pair(hidden, scale)
    assert _clipped(net, params, hidden) == (scale > 1)
    _compare(net, params, ref, fann_ref.INCREMENTAL, optax.sgd(0.5), 20, batch_size=1,
             setup=[("learning_rate", 0.5)])


@pytest.mark.parametrize("hidden, scale", CASES)
def test_batch_training_matches_fann(hidden, scale):
    net, params, ref = _pair(hidden, scale)
    # FANN: w += (lr / N) sum_i slope_i, with lr / N = 0.09375 held exactly by a float.
    _compare(net, params, ref, fann_ref.BATCH, optax.sgd(0.75), 30, setup=[("learning_rate", 0.75)])


@pytest.mark.parametrize("decay", [0.0, -1e-4])
@pytest.mark.parametrize("hidden", list(ACT))
def test_quickprop_matches_fann(hidden, decay):
    net, params, ref = _pair(hidden, 1.0)
    # FANN adds decay * w to the *summed* slope; bpkit's slope is the mean: decay / N, sign flipped.
    opt = optim.quickprop(learning_rate=0.75, mu=1.75, decay=-F32(decay) / len(X))
    _compare(net, params, ref, fann_ref.QUICKPROP, opt, 30,
             setup=[("learning_rate", 0.75), ("quickprop_mu", 1.75), ("quickprop_decay", decay)])


@pytest.mark.parametrize("hidden", list(ACT))
def test_irprop_minus_matches_fann(hidden):
    net, params, ref = _pair(hidden, 1.0)
    opt = optim.rprop(F32(0.1), variant="fann", eta_minus=0.5, eta_plus=F32(1.2), min_step=0.0, max_step=50.0)
    _compare(net, params, ref, fann_ref.RPROP, opt, 30, setup=[
        ("rprop_delta_zero", 0.1), ("rprop_increase_factor", 1.2), ("rprop_decrease_factor", 0.5),
        ("rprop_delta_min", 0.0), ("rprop_delta_max", 50.0)])


def test_fann_irprop_departs_from_igel_and_huesken():
    # The documented departures are real: the published iRprop- does not follow FANN's trajectory.
    net, params, ref = _pair("sigmoid", 1.0)
    trajectory = ref.train_epochs(X, Y, 10, fann_ref.RPROP)
    r = train(net, optim.rprop(F32(0.1), variant="irprop-", min_step=0.0), params, jnp.asarray(X), jnp.asarray(Y),
              key=jax.random.key(0), source="fann_clipped", rules=StopRules(max_epochs=10, stall_epochs=None))
    gap = max(float(np.max(np.abs(np.asarray(m[k]) - t[k]))) for m, t in zip(r.params, trajectory[-1],
                                                                             strict=True) for k in "wb")
    assert gap > 1e-2


@pytest.mark.parametrize("act", ["sigmoid", "sigmoid_symmetric", "tanh"])
def test_fann_clipped_derivative_is_fanns_on_a_dense_grid(act):
    # One incremental step of a 1-1 net from many biases: FANN's weight change is lr * (d - y) * f'_clip(y) * x.
    fann_act, steep = ACT[act]
    net = MLP((1, 1), hidden="identity", output=act)
    ref = fann_ref.Net((1, 1), output=fann_act, steepness_output=steep)
    ref.set("learning_rate", 1.0)
    target = 1.0  # never reached: every step is non-zero
    biases = np.linspace(-12, 12, 97)
    x, y = np.array([[1.0]]), np.array([[target]])

    def bpkit_step(b):  # one gradient step on the bias, with FANN's clipped derivative
        params = [{"w": jnp.array([[0.5]]), "b": jnp.reshape(b, (1,))}]
        return -backprop(net, params, jnp.asarray(x), jnp.asarray(y), loss="mse", rule="fann_clipped")[0]["b"][0]

    mine = np.asarray(jax.jit(jax.vmap(bpkit_step))(jnp.asarray(biases)))
    theirs = []
    for b in biases:
        ref.set_params([{"w": np.array([[0.5]]), "b": np.array([b])}])
        theirs.append(ref.train_epochs(x, y, 1, fann_ref.INCREMENTAL)[0][0]["b"][0] - b)
    # FANN halves the error of a symmetric output unit (fann_update_MSE): half the step.
    half = 0.5 if fann_act == fann_ref.SIGMOID_SYMMETRIC else 1.0
    np.testing.assert_allclose(np.array(theirs), half * mine, rtol=1e-12, atol=1e-15)
    assert np.sum(np.abs(mine) > 0) == len(biases)  # the clip keeps every derivative away from 0


# FANN's tanh error function (its default for batch and iRPROP-): the atanh error, whose span r is 2 on a
# symmetric output unit (FANN halves that unit's error before the log).
ERROR_CASES = [("sigmoid", "sigmoid", "atanh"), ("tanh", "sigmoid_symmetric", "atanh_symmetric")]


@pytest.mark.parametrize("hidden, output, loss", ERROR_CASES)
@pytest.mark.parametrize("algorithm", ["incremental", "batch", "rprop", "quickprop"])
def test_fanns_tanh_error_function_is_the_atanh_loss(hidden, output, loss, algorithm):
    net, params, ref = _pair(hidden, 4.0, output)
    if output == "sigmoid":  # saturated outputs: errors beyond the +-17 cap at the start
        params[-1] = jax.tree.map(lambda v: 8 * v, params[-1])
        ref.set_params(params)
        e = Y - np.asarray(net.apply(params, X))
        assert np.any(np.abs(e) > 0.9999999)
    # Not so for the symmetric output: FANN computes it as 2/(1 + exp(-z)) - 1 and bpkit as tanh(z/2), equal to
    # rounding, but near a = -+1 the error's log(1 - e) magnifies that rounding (measured: 1e-5 after 25 epochs).
    opt, code, setup = {
        "incremental": (optax.sgd(0.25), fann_ref.INCREMENTAL, [("learning_rate", 0.25)]),
        "batch": (optax.sgd(0.75), fann_ref.BATCH, [("learning_rate", 0.75)]),
        "rprop": (optim.rprop(F32(0.1), variant="fann", eta_minus=0.5, eta_plus=F32(1.2), min_step=0.0,
                              max_step=50.0), fann_ref.RPROP, [("rprop_delta_zero", 0.1)]),
        "quickprop": (optim.quickprop(learning_rate=0.75, mu=1.75), fann_ref.QUICKPROP,
                      [("learning_rate", 0.75), ("quickprop_mu", 1.75), ("quickprop_decay", 0.0)]),
    }[algorithm]
    _compare(net, params, ref, code, opt, 25, batch_size=1 if algorithm == "incremental" else None,
             setup=setup, loss=loss)


# FANN's clips: iRPROP- and quickprop keep every weight within +-1500, and fann_run clips each neuron's sum
# (|z| <= 600 for its sigmoids at steepness 0.5).  Without them bpkit leaves FANN's trajectory at the epoch where
# a weight first reaches 1500 (parity8: epoch 503; thyroid: epoch 59, and a sum past 600 at epoch 215).
@pytest.mark.parametrize("name, sizes, epochs", [("parity8", (8, 16, 1), 1000), ("thyroid", (21, 16, 8, 3), 300)])
def test_fanns_clips_let_irprop_follow_fann_on_its_benchmark_sets_over_every_epoch(name, sizes, epochs):
    from grids import fann_sets

    from bpkit import datasets

    d = datasets.load_fann(fann_sets() / f"{name}.train")
    x, y = np.asarray(d.x_train, np.float64), np.asarray(d.y_train, np.float64)
    net = MLP(sizes, hidden="sigmoid", output="sigmoid", sum_limit=600.0)
    params = net.init(jax.random.key(0), scheme="uniform", scale=0.1, dtype=jnp.float64)  # FANN's +-0.1
    ref = fann_ref.Net(sizes)
    ref.set_params(params)
    ref.set("train_error_function", fann_ref.ERRORFUNC_TANH)  # FANN's default for iRPROP-
    trajectory = ref.train_epochs(x, y, epochs, fann_ref.RPROP)
    largest = [max(np.max(np.abs(v)) for layer in p for v in layer.values()) for p in trajectory]
    reached = [i for i, m in enumerate(largest) if m >= 1500]
    assert reached and reached[0] <= epochs - 200  # the clip acts, with epochs enough after it to tell
    opt = optim.make("rprop", learning_rate=F32(0.1), variant="fann", eta_minus=0.5, eta_plus=F32(1.2),
                     min_step=0.0, max_step=50.0, weight_limit=1500.0)
    r = train(net, opt, params, jnp.asarray(x), jnp.asarray(y), key=jax.random.key(0), loss="atanh",
              source="fann_clipped", shuffle=False, rules=StopRules(max_epochs=epochs, stall_epochs=None))
    want = np.array([float(loss_value(net, jax.tree.map(jnp.asarray, p), x, y, "atanh")) for p in trajectory])
    np.testing.assert_allclose(np.asarray(r.history.loss[:epochs]), want, rtol=1e-9)
    for mine, theirs in zip(r.params, trajectory[-1], strict=True):
        for leaf in ("w", "b"):
            np.testing.assert_allclose(np.asarray(mine[leaf]), theirs[leaf], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("algorithm", ["quickprop", "rprop"])
def test_the_weight_limit_is_fanns_from_weights_at_the_edge(algorithm):
    # Some weights start near +-1500, so that steps cross the limit from the first epoch on.
    net, params, ref = _pair("sigmoid", 1.0)
    edge = np.zeros((3, 4))
    edge[0, :2], edge[1, 2:] = 1499.9375, -1499.25
    params[0]["w"] = params[0]["w"] + jnp.asarray(edge)
    ref.set_params(params)
    opt, code, setup = {
        "quickprop": (optim.quickprop(learning_rate=0.75, mu=1.75, weight_limit=1500.0), fann_ref.QUICKPROP,
                      [("learning_rate", 0.75), ("quickprop_mu", 1.75), ("quickprop_decay", 0.0)]),
        "rprop": (optim.rprop(F32(0.1), variant="fann", eta_minus=0.5, eta_plus=F32(1.2), min_step=0.0,
                              max_step=50.0, weight_limit=1500.0), fann_ref.RPROP, [("rprop_delta_zero", 0.1)]),
    }[algorithm]
    _compare(net, params, ref, code, opt, 30, setup=setup)
    # the limit was used: without it bpkit ends elsewhere
    free = optim.quickprop(learning_rate=0.75, mu=1.75) if algorithm == "quickprop" else optim.rprop(
        F32(0.1), variant="fann", eta_minus=0.5, eta_plus=F32(1.2), min_step=0.0, max_step=50.0)
    r = train(net, free, params, jnp.asarray(X), jnp.asarray(Y), key=jax.random.key(0), source="fann_clipped",
              shuffle=False, rules=StopRules(max_epochs=30, stall_epochs=None))
    assert float(np.max(np.abs(np.asarray(r.params[0]["w"]) - ref.params()[0]["w"]))) > 1e-3


@pytest.mark.parametrize("hidden", list(ACT))
@pytest.mark.parametrize("algorithm", ["incremental", "rprop"])
def test_fanns_activation_steepness_is_bpkits_steepness(hidden, algorithm):
    # FANN's steepness 0.125 on the hidden layer and 1.5 on the output (bpkit's 0.25 and 3 on its sigmoids)
    steep = (0.25 if hidden != "tanh" else 0.125, 3.0)
    net, params, ref = _pair(hidden, 2.0, steepness=steep)
    opt, code, setup = {
        "incremental": (optax.sgd(0.25), fann_ref.INCREMENTAL, [("learning_rate", 0.25)]),
        "rprop": (optim.rprop(F32(0.1), variant="fann", eta_minus=0.5, eta_plus=F32(1.2), min_step=0.0,
                              max_step=50.0), fann_ref.RPROP, [("rprop_delta_zero", 0.1)]),
    }[algorithm]
    _compare(net, params, ref, code, opt, 25, batch_size=1 if algorithm == "incremental" else None, setup=setup)
    plain = MLP(net.sizes, hidden=hidden, output="sigmoid")  # the steepness matters: at 1 the outputs differ
    assert not np.allclose(np.asarray(plain.apply(params, X)), np.asarray(net.apply(params, X)), atol=1e-3)


def test_fann_trains_a_sweeps_runs_again_from_the_same_starts(tmp_path):
    from grids import fann_sets

    from bpkit import config as cfg
    from bpkit.store import Store
    from bpkit.sweep import run_sweep

    folder = fann_sets()
    flat = cfg.validate({"name": "p8", "seeds": [0, 1], "data.path": str(folder / "parity8.train"),
                         "data.test_path": str(folder / "parity8.test"), "network.hidden": [16],
                         "source": "fann_clipped", "network.init": "uniform", "network.init_scale": 0.5,
                         "network.sum_limit": 600,
                         "optimizer.name": "rprop", "optimizer.variant": "fann", "optimizer.min_step": 0,
                         "optimizer.weight_limit": 1500, "loss": "atanh", "training.max_epochs": 20,
                         "training.stall_epochs": 0})
    with Store(tmp_path / "p8.sqlite") as store:
        run_sweep(flat, store, progress=False)
        stored = {r["run_id"]: r for r in store.runs()[0]}
    runs = cfg.expand(flat)
    rows = fann_ref.side_by_side(runs, stored, precision="float")
    assert len(rows) == 2
    for r in rows:  # 20 epochs in float32 from the same weights: the same net to float rounding
        assert r["fann_test_loss"] == pytest.approx(r["bpkit_test_loss"], rel=1e-4)
        assert r["fann_test_error"] == pytest.approx(r["bpkit_test_error"], abs=2 / 256)
    assert rows[0]["bpkit_test_loss"] != rows[1]["bpkit_test_loss"]  # two seeds, two starts
    with pytest.raises(ValueError, match="FANN cannot train this run as bpkit does: RPROP variant irprop-"):
        fann_ref.like(runs[0].replace(**{"optimizer.variant": "irprop-"}), (8, 16, 1))
    import importlib.util  # the script's table: one row per (problem, method), its verdict by the interval rule

    spec = importlib.util.spec_from_file_location("side", pathlib.Path(__file__).parents[1] / "scripts" /
                                                  "fann_side_by_side.py")
    side = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(side)
    table = side.table(rows)
    assert len(table.rows) == 1 and table.rows[0][2] == "2" and table.rows[0][-1] == "same"
    apart = [{**r, "fann_test_error": r["bpkit_test_error"] + 0.5} for r in rows]
    assert side.table(apart).rows[0][-1] == "apart"
