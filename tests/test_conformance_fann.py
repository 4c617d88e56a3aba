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

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bpkit import MLP, backprop, loss_value, optim
from bpkit import fann as fann_ref
from bpkit.stopping import StopRules
from bpkit.training import train

pytestmark = pytest.mark.skipif(fann_ref.load() is None, reason=fann_ref.WHY_MISSING)

F32 = lambda v: float(np.float32(v))  # what a C float holds
RNG = np.random.default_rng(7)
X = RNG.uniform(-1, 1, (8, 3))
Y = (RNG.uniform(size=(8, 2)) > 0.5).astype(np.float64)
# bpkit activation -> (FANN activation, steepness): FANN's sigmoid is 1/(1 + exp(-2 s z)).
ACT = {"sigmoid": (fann_ref.SIGMOID, 0.5), "sigmoid_symmetric": (fann_ref.SIGMOID_SYMMETRIC, 0.5),
       "tanh": (fann_ref.SIGMOID_SYMMETRIC, 1.0)}


def _pair(hidden, scale):
    net = MLP((3, 4, 2), hidden=hidden, output="sigmoid")
    params = net.init(jax.random.key(3), scheme="uniform", scale=scale, dtype=jnp.float64)
    ref = fann_ref.Net((3, 4, 2), hidden=ACT[hidden][0], steepness_hidden=ACT[hidden][1])
    ref.set_params(params)
    return net, params, ref


def _compare(net, params, ref, algorithm, optimizer, epochs, batch_size=None, setup=()):
    for name, value in setup:
        ref.set(name, value)
    trajectory = ref.train_epochs(X, Y, epochs, algorithm)
    r = train(net, optimizer, params, jnp.asarray(X), jnp.asarray(Y), key=jax.random.key(0), loss="mse",
              source="fann_clipped", batch_size=batch_size, shuffle=False,
              rules=StopRules(max_epochs=epochs, stall_epochs=None))
    want = np.array([float(loss_value(net, jax.tree.map(jnp.asarray, p), X, Y)) for p in trajectory])
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
@pytest.mark.filterwarnings("ignore:bpkit.train compiles the run again")  # a fresh optax.sgd per case, on purpose
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
