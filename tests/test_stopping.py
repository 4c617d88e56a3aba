"""The stop rules, against brute-force counts: 40-20-40 is an integer count of wrong outputs."""

import ctypes

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bpkit import MLP, datasets, optim, stopping
from bpkit.stopping import StopRules
from bpkit.training import train


def _outputs(n, dtype, k=1):
    """n patterns x k outputs, targets alternating 0/1, outputs 0.1/0.9: every output right."""
    y = ((np.arange(n * k) % 3) == 1).astype(dtype).reshape(n, k)
    return np.where(y > 0.5, 0.9, 0.1).astype(dtype), y


def _brute_force(out, y, lo, hi):
    wrong = 0
    for o, t in zip(out.ravel().tolist(), y.ravel().tolist(), strict=True):
        if t > (lo + hi) / 2:
            wrong += not o > hi - 0.4 * (hi - lo)
        else:
            wrong += not o < lo + 0.4 * (hi - lo)
    return wrong


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_perfect_output_counts_zero_wrong_for_every_pattern_count(dtype):
    # A float mean of a boolean mask is not 1.0 for many counts (float32: 41, 47, 55, 61, 82, 194, ...);
    # the rule counts wrong outputs as an integer.  NumPy arrays run the same source, fast.
    lo, hi = dtype(0), dtype(1)
    for n in range(1, 2049):
        out, y = _outputs(n, dtype)
        assert stopping.count_wrong_40_20_40(out, y, lo, hi) == 0, n
        out[n // 2, 0] = 0.5  # one output in the middle 20%: exactly one wrong
        assert stopping.count_wrong_40_20_40(out, y, lo, hi) == 1, n


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("n", [41, 47, 55, 61, 82, 194, 2000])
def test_counts_under_jit_match_a_brute_force_count(n, dtype):
    out, y = _outputs(n, np.dtype(dtype), k=3)
    rng = np.random.default_rng(n)
    out = (out + rng.uniform(-0.5, 0.5, out.shape)).astype(np.dtype(dtype))  # some right, some wrong
    got = jax.jit(stopping.count_wrong_40_20_40)(jnp.asarray(out), jnp.asarray(y), dtype(0), dtype(1))
    assert got.dtype == jnp.int32 and int(got) == _brute_force(out, y, 0.0, 1.0)
    perfect, _ = _outputs(n, np.dtype(dtype), k=3)
    assert int(jax.jit(stopping.count_wrong_40_20_40)(perfect, y, dtype(0), dtype(1))) == 0
    args = (StopRules(criterion_40_20_40=True), 1, jnp.asarray(0.3, dtype), 1.0)
    assert int(stopping.stop_reason(*args, jnp.int32(0), 0, 0)) == stopping.CRITERION


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_a_perfect_two_spirals_output_stops_training(dtype):
    # 194 patterns: in float32 the old mean of right outputs was 0.99999994 < 1.0, so a perfect
    # run never stopped on the criterion and was never counted a success.
    y = jnp.asarray(datasets.load("two_spirals").y_train, dtype)
    assert y.shape == (194, 1)
    x = jnp.eye(194, dtype=dtype)  # one input per pattern: output weights +-8 make every output right
    net = MLP((194, 1), hidden="identity", output="sigmoid")
    params = [{"w": (16 * y - 8).astype(dtype), "b": jnp.zeros(1, dtype)}]
    r = train(net, optax.sgd(1e-3), params, x, y, key=jax.random.key(0),
              rules=StopRules(max_epochs=5, criterion_40_20_40=True))
    assert r.reason == "40-20-40" and int(r.epochs) == 1
    assert int(r.history.wrong[0]) == 0 and int(r.history.wrong[1]) == -1  # -1: past the stop


def test_line_search_failure_is_its_own_reason_after_the_criteria():
    base = (1, jnp.asarray(0.3), 1.0, jnp.int32(2), 0, 0)
    assert int(stopping.stop_reason(StopRules(), *base, jnp.asarray(True))) == stopping.LINE_SEARCH_FAILED
    assert int(stopping.stop_reason(StopRules(), *base, jnp.asarray(False))) == stopping.RUNNING
    reached = (1, jnp.asarray(0.3), 1.0, jnp.int32(0), 0, 0)  # the criterion holds too: it wins
    assert int(stopping.stop_reason(StopRules(criterion_40_20_40=True), *reached, True)) == stopping.CRITERION
    assert stopping.reason_name(stopping.LINE_SEARCH_FAILED) == "line_search_failed"


def _brute_bit_fails(out, y, lo, hi, limit):
    span = (hi - lo) or 1.0
    return sum(abs(t - o) >= limit * span for o, t in zip(out.ravel().tolist(), y.ravel().tolist(), strict=True))


@pytest.mark.parametrize("lo", [0.0, -1.0])
def test_bit_fails_are_a_brute_force_count_and_fanns(lo):
    rng = np.random.default_rng(4)
    y = np.where(rng.uniform(size=(300, 3)) > 0.5, 1.0, lo)
    out = np.clip(y + rng.normal(scale=0.4, size=y.shape), lo, 1.0)
    got = jax.jit(stopping.count_bit_fails, static_argnums=4)(jnp.asarray(out), jnp.asarray(y), lo, 1.0, 0.35)
    assert got.dtype == jnp.int32 and int(got) == _brute_bit_fails(out, y, lo, 1.0, 0.35)
    assert 0 < int(got) < y.size
    from bpkit import fann as fann_ref  # FANN counts the same outputs (fann_test over the patterns)

    lib = fann_ref.load()
    if lib is None:
        pytest.skip(fann_ref.WHY_MISSING)
    act = fann_ref.SIGMOID if lo == 0 else fann_ref.SIGMOID_SYMMETRIC
    ref = fann_ref.Net((1, 3), output=act)  # no hidden layer: the outputs below are the net's own outputs
    ref.lib.fann_set_bit_fail_limit(ref.ann, 0.35)
    ref.lib.fann_reset_MSE(ref.ann)
    net = MLP((1, 3), hidden=(), output="sigmoid" if lo == 0 else "sigmoid_symmetric")
    ref.set_params([{"w": np.zeros((1, 3)), "b": np.zeros(3)}])
    x = rng.uniform(-4, 4, (300, 1))
    params = [{"w": rng.uniform(-2, 2, (1, 3)), "b": rng.uniform(-1, 1, 3)}]
    ref.set_params(params)
    for row, t in zip(x, y, strict=True):
        ref.lib.fann_test(ref.ann, (ctypes.c_double * 1)(*row), (ctypes.c_double * 3)(*t))
    mine = stopping.count_bit_fails(net.apply(jax.tree.map(jnp.asarray, params), jnp.asarray(x)), jnp.asarray(y),
                                    lo, 1.0, 0.35)
    assert int(mine) == ref.lib.fann_get_bit_fail(ref.ann) and 0 < int(mine) < y.size


def test_training_stops_at_the_first_epoch_without_a_bit_fail():
    x, y = jnp.asarray(datasets.load("xor").x_train), jnp.asarray(datasets.load("xor").y_train)
    net = MLP((2, 2, 1), hidden="tanh", output="sigmoid")
    params = net.init(jax.random.key(1))
    sgd = optim.make("sgd", learning_rate=2.0)
    r = train(net, sgd, params, x, y, key=jax.random.key(0), batch_size=1,
              rules=StopRules(max_epochs=3000, bit_fail=0.35, stall_epochs=None))
    full = train(net, sgd, params, x, y, key=jax.random.key(0), batch_size=1,
                 rules=StopRules(max_epochs=int(r.epochs), stall_epochs=None))
    counts = [int(stopping.count_bit_fails(net.apply(p, x), y, 0.0, 1.0, 0.35)) for p in [full.params]]
    assert r.reason == "bit_fail" and counts == [0]
    wrong = np.asarray(r.history.wrong[: int(r.epochs)])
    assert wrong[-1] == 0 and np.all(wrong[:-1] > 0)  # the first epoch with none: brute force over the curve
    with pytest.raises(ValueError, match="one output criterion"):
        StopRules(criterion_40_20_40=True, bit_fail=0.35)
