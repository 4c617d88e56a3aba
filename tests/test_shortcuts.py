"""Shortcut connections (every layer feeds every later layer): forward against a sum written out
source by source, hand-written backprop against jax.grad and finite differences, the checker naming
the layers a forgotten shortcut breaks, the Flax mirror, and a sweep."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpkit import MLP, autodiff, backprop, check_gradient, losses
from bpkit.flax_model import FlaxMLP, from_flax, to_flax
from bpkit.gradients import loss_value

SPIRALS = MLP((2, 5, 5, 5, 1), hidden="tanh", output="sigmoid", shortcuts=True)


def _data(net, n=9, seed=1):
    kx, ky = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (n, net.sizes[0]), jnp.float64)
    y = jax.random.bernoulli(ky, 0.5, (n, net.sizes[-1])).astype(jnp.float64)
    return x, y


def test_lang_and_witbrock_net_has_138_weights():
    # Counted by hand: 2*5+5, (2+5)*5+5, (2+5+5)*5+5, (2+5+5+5)*1+1 = 15 + 40 + 65 + 18.
    assert SPIRALS.num_params == 138
    params = SPIRALS.init(jax.random.key(0))
    assert [p["w"].shape for p in params] == [(2, 5), (7, 5), (12, 5), (17, 1)]
    assert "shortcut" in str(SPIRALS)
    assert MLP((2, 5, 5, 5, 1)).num_params == 81


def test_forward_is_the_sum_over_every_earlier_layer():
    params = SPIRALS.init(jax.random.key(3), scheme="uniform", scale=0.8, dtype=jnp.float64)
    x, _ = _data(SPIRALS)
    outs = [np.asarray(x)]
    for l, layer in enumerate(params):  # z_l = sum_k a_k W_l[rows of a_k] + b_l, in numpy
        w, row, z = np.asarray(layer["w"]), 0, np.asarray(layer["b"])[None, :]
        for a in outs:
            z = z + a @ w[row: row + a.shape[1]]
            row += a.shape[1]
        assert row == w.shape[0]
        outs.append(np.tanh(z) if l < 3 else 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(SPIRALS.apply(params, x), outs[-1], rtol=1e-13)


@pytest.mark.parametrize("loss, hidden, output, rule", [
    ("mse", "tanh", "sigmoid", "exact"), ("mse", "tanh", "sigmoid", "output_form"),
    ("mse", ("relu", "sigmoid"), "identity", "exact"), ("bce", "sigmoid", "sigmoid", "output_form"),
    ("softmax_ce", "gelu", "softmax", "exact")])
def test_backprop_equals_jax_grad_and_finite_differences(loss, hidden, output, rule):
    n_hidden = 2 if isinstance(hidden, tuple) else 3
    net = MLP((3,) + (4,) * n_hidden + (3 if output == "softmax" else 2,), hidden=hidden, output=output, shortcuts=True)
    params = net.init(jax.random.key(0), scheme="uniform", scale=0.7, dtype=jnp.float64)
    x, y = _data(net)
    if loss == "softmax_ce":
        y = jax.nn.one_hot(jnp.arange(9) % 3, 3, dtype=jnp.float64)
    report = check_gradient(lambda p, x, y: loss_value(net, p, x, y, loss),
                            lambda p, x, y: backprop(net, p, x, y, loss, rule), params, x, y)
    assert report.passed, str(report)


def _forgets_shortcuts(net, params, x, y):
    """A plausible bug: each layer's dC/da taken from the layer above only, as without shortcuts."""
    out, cache = net.forward(params, x)
    acts = net.activations
    delta = (out - y) * acts[-1].deriv(cache.zs[-1]) / x.shape[0]
    grads = [None] * net.num_layers
    for l in range(net.num_layers - 1, -1, -1):
        grads[l] = {"w": net.layer_input(cache.activations, l).T @ delta, "b": delta.sum(0)}
        if l > 0:
            g = (delta @ params[l]["w"].T)[:, -net.sizes[l]:]  # only the block of a_l, the layer just below
            delta = g * acts[l - 1].deriv(cache.zs[l - 1])
    return grads


def test_checker_names_the_layers_a_forgotten_shortcut_breaks():
    params = SPIRALS.init(jax.random.key(4), scheme="uniform", scale=0.7, dtype=jnp.float64)
    x, y = _data(SPIRALS)
    report = check_gradient(lambda p, x, y: loss_value(SPIRALS, p, x, y, "mse"),
                            lambda p, x, y: _forgets_shortcuts(SPIRALS, p, x, y), params, x, y)
    flagged = {leaf.path for _, leaf in report.failures}
    # The top two layers' deltas are whole; a_1 and a_2 also feed later layers, so layers 0 and 1 are wrong.
    assert flagged == {"[0]['w']", "[0]['b']", "[1]['w']", "[1]['b']"}, str(report)


def test_flax_mirror_with_shortcuts():
    params = SPIRALS.init(jax.random.key(5), dtype=jnp.float64)
    x, y = _data(SPIRALS)
    module = FlaxMLP(SPIRALS)
    np.testing.assert_array_equal(module.apply(to_flax(params), x), SPIRALS.apply(params, x))
    chex.assert_trees_all_equal_structs(from_flax(module.init(jax.random.key(0), x)), params)
    mse = losses.get("mse")
    flax_grad = jax.grad(lambda v: mse.value(None, module.apply(v, x), y))(to_flax(params))
    chex.assert_trees_all_close(from_flax(flax_grad), backprop(SPIRALS, params, x, y), rtol=1e-10, atol=1e-14)
    chex.assert_trees_all_close(autodiff(SPIRALS, params, x, y), backprop(SPIRALS, params, x, y), rtol=1e-10,
                                atol=1e-14)


def test_a_sweep_trains_a_shortcut_net(tmp_path):
    from bpkit import config as cfg
    from bpkit.store import Store
    from bpkit.sweep import run_sweep

    p = tmp_path / "sc.toml"
    p.write_text('name = "sc"\nseeds = [0, 1]\n[data]\nname = "xor"\n[network]\nhidden = [2, 2]\n'
                 'shortcuts = [false, true]\nactivation = "tanh"\n[training]\nmax_epochs = 30\n')
    store = Store(tmp_path / "sc.sqlite")
    assert run_sweep(cfg.load(p), store, progress=False)["groups"] == 2
    runs, _ = store.runs()
    loss = {(r["config"]["network.shortcuts"], r["seed"]): r["train_loss"] for r in runs}
    assert len(loss) == 4 and loss[(True, 0)] != loss[(False, 0)]


def _fahlman_net(net, params):
    """bpkit's layers as quickprop1.c's unit list: connections[j] = bias, then every unit of u_l."""
    first = [1]
    for width in net.sizes:
        first.append(first[-1] + width)  # first unit of each layer; inputs start at 1
    connections, weights = [[] for _ in range(first[-1])], [[] for _ in range(first[-1])]
    for l, layer in enumerate(params):
        sources = list(range(1, first[l + 1])) if net.shortcuts else list(range(first[l], first[l + 1]))
        w, b = np.asarray(layer["w"]), np.asarray(layer["b"])
        for col, j in enumerate(range(first[l + 1], first[l + 2])):
            connections[j] = [0] + sources
            weights[j] = [float(b[col])] + [float(w[r, col]) for r in range(len(sources))]
    return connections, weights, first


@pytest.mark.parametrize("shortcuts", [False, True])
@pytest.mark.parametrize("offset, rule", [(0.1, "fahlman_offset"), (0.0, "exact")])
def test_backprop_matches_fahlmans_quickprop1_backward_pass(shortcuts, offset, rule):
    from references import fahlman_quickprop as fq

    net = MLP((3, 4, 3, 2), hidden="sigmoid", output="sigmoid", shortcuts=shortcuts)
    params = net.init(jax.random.key(6), scheme="uniform", scale=1.0, dtype=jnp.float64)
    x, y = _data(net, n=5)
    connections, weights, first = _fahlman_net(net, params)
    slopes = fq.epoch_slopes(np.asarray(x).tolist(), np.asarray(y).tolist(), net.sizes[0], first[-1],
                             first[-2], connections, weights, offset)
    grads = backprop(net, params, x, y, "mse", rule)  # half MSE averaged over the N examples: -slopes / N
    for l, layer in enumerate(grads):
        for col, j in enumerate(range(first[l + 1], first[l + 2])):
            want = -np.asarray(slopes[j]) / x.shape[0]
            np.testing.assert_allclose(want[0], layer["b"][col], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(want[1:], layer["w"][:, col], rtol=1e-12, atol=1e-15)


# quickprop1.c's defaults (INITIALIZE_GLOBALS): SIGMOID units in [-0.5, 0.5], the atanh error, the offset,
# SplitEpsilon, Decay -0.0001 on summed slopes, ModeSwitchThreshold 0, MaxFactor 1.75, WeightRange 0.7.
QUICKPROP1 = dict(epsilon=0.55, decay=-0.0001, momentum=0.9, max_factor=1.75, offset=0.1)


def _quickprop1_run(epochs, n_examples, **changes):
    from bpkit import config as cfg

    eps, decay = QUICKPROP1["epsilon"], QUICKPROP1["decay"]
    flat = cfg.validate({
        "dtype": "float64", "loss": "atanh", "source": "fahlman_offset", "data.name": "parity3",
        "data.target_range": [-0.5, 0.5], "network.hidden": [3, 3], "network.shortcuts": True,
        "network.activation": "sigmoid_centered", "network.output": "sigmoid_centered", "network.init": "uniform",
        "network.init_scale": 0.7, "training.max_epochs": epochs, "training.stall_epochs": 0,
        "optimizer.name": "quickprop", "optimizer.learning_rate": eps * n_examples,
        "optimizer.decay": -decay / n_examples, "optimizer.mu": QUICKPROP1["max_factor"],
        "optimizer.step_threshold": 0.0, "optimizer.split_epsilon": True, **changes})
    return cfg.expand(flat)[0]


def _quickprop1_gap(epochs, **changes):
    """The largest gap between bpkit's weights after ``epochs`` and quickprop1.c's, transcribed."""
    from references import fahlman_quickprop as fq

    from bpkit import engine, experiment, lanes

    run = _quickprop1_run(epochs, 8, **changes)
    ex = experiment.build(run, experiment.load_data(run))
    with engine.x64_mode(run.dtype):
        one = engine.lane_alone(ex, run)
        got = lanes.run_trainer(one.trainer, one.params, ex.arrays["x"], ex.arrays["y"], one.key,
                                ex.arrays["xv"], ex.arrays["yv"])
    assert int(got.epochs) == epochs
    connections, weights, first = _fahlman_net(ex.net, one.params)
    x, y = np.asarray(ex.arrays["x"]).tolist(), np.asarray(ex.arrays["y"]).tolist()
    assert {v for row in y for v in row} == {-0.5, 0.5}
    zeros = [[0.0] * len(c) for c in connections]
    dw, slopes, prev = [list(r) for r in zeros], [list(r) for r in zeros], [list(r) for r in zeros]
    for _ in range(epochs):
        fq.train_one_epoch(x, y, ex.net.sizes[0], first[-1], first[-2], connections, weights, dw, slopes, prev,
                           symmetric=True, hyper=True, split_epsilon=True, mode_switch_threshold=0.0, **QUICKPROP1)
        for pattern in x:  # no sum beyond quickprop1.c's clamp at +-15, where bpkit's sigmoid does not clamp
            outs = fq.forward_pass(pattern, ex.net.sizes[0], first[-1], connections, weights, symmetric=True)
            assert max(abs(v) for v in outs[first[1]:]) < 0.5
    assert max(abs(s) for row in dw for s in row) > 0.05  # it learnt: the steps are not all rounding
    _, mine, _ = _fahlman_net(ex.net, got.params)
    return max(abs(a - b) / max(abs(b), 1e-3)
               for j in range(first[1], first[-1]) for a, b in zip(mine[j], weights[j], strict=True))


def test_quickprop_follows_quickprop1c_epoch_by_epoch():
    """The config a study gives for Fahlman's quickprop1.c trains as quickprop1.c's TRAIN_ONE_EPOCH does,
    transcribed line by line (tests/references/fahlman_quickprop.py), from the same weights.  Quickprop's
    secant steps amplify rounding (float64 gaps of 1e-16 after one epoch, 1e-14 after ten, 1e-8 after
    thirty): twelve epochs are compared to 1e-9."""
    assert _quickprop1_gap(12) < 1e-9


@pytest.mark.parametrize("change", [{"optimizer.split_epsilon": False}, {"optimizer.step_threshold": 0.001},
                                    {"network.activation": "tanh"}, {"loss": "mse"}, {"source": "exact"},
                                    {"optimizer.decay": 0.0}])
def test_each_quickprop1c_setting_matters_to_that_check(change):
    assert _quickprop1_gap(12, **change) > 1e-6
