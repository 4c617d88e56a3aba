"""bpkit.saved: a net written and read back, bit for bit, and FANN's .net export checked by FANN itself
(``fann_save`` of the same net gives the same text; ``fann_create_from_file`` runs it with bpkit's outputs)."""

import ctypes
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpkit import MLP, loss_value, saved
from bpkit import fann as fann_ref

RNG = np.random.default_rng(11)
X = RNG.normal(size=(9, 3)) * 4 + 2


def _net(hidden=("tanh", "sigmoid_symmetric"), output="sigmoid", dtype=jnp.float64, **kw):
    net = MLP((3, 5, 4, 2), hidden=hidden, output=output, **kw)
    return net, net.init(jax.random.key(5), dtype=dtype)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_a_saved_net_reads_back_bit_for_bit_with_its_scaling(tmp_path, dtype):
    net, params = _net(dtype=dtype, sum_limit=600.0, steepness=(1.0, 2.0, 0.5))
    inputs, outputs = saved.Scaling.standardise(X), saved.Scaling(np.array([1.0, -2.0]), np.array([3.0, 0.5]),
                                                                   np.array([0.0, 0.0]), np.array([1.0, 2.0]))
    path = saved.save(tmp_path / "n.npz", net, params, inputs=inputs, outputs=outputs)
    back = saved.load(path)
    assert back.net == net
    for mine, theirs in zip(back.params, params, strict=True):
        for k in ("w", "b"):
            assert mine[k].dtype == theirs[k].dtype and np.array_equal(mine[k], np.asarray(theirs[k]))
    # raw inputs in, raw outputs out: the standardised input, then the outputs mapped back
    want = outputs.descale(np.asarray(net.apply(params, jnp.asarray((X - X.mean(0)) / X.std(0), dtype))))
    np.testing.assert_allclose(back.predict(X), want, rtol=1e-12 if dtype == jnp.float64 else 1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["n.npz"]  # no temporary file left


def test_saving_keeps_what_is_there_and_refuses_what_it_cannot_read(tmp_path):
    net, params = _net()
    path = saved.save(tmp_path / "n.npz", net, params)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="exists; give another path"):
        saved.save(path, net, jax.tree.map(lambda v: v + 1, params))
    assert path.read_bytes() == before
    saved.save(path, net, jax.tree.map(lambda v: v + 1, params), overwrite=True)
    assert path.read_bytes() != before
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz: not a saved bpkit net"):
        saved.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="other.npz: not a saved bpkit net"):
        saved.load(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="input scaling needs 3 values"):
        saved.save(tmp_path / "s.npz", net, params, inputs=saved.Scaling.identity(2))
    os.symlink(tmp_path / "nowhere.npz", tmp_path / "link.npz")
    with pytest.raises(ValueError, match="symbolic link"):
        saved.save(tmp_path / "link.npz", net, params)


def test_fann_export_refuses_what_fann_cannot_run():
    with pytest.raises(ValueError, match="FANN has no activation like relu"):
        saved.to_fann(*_net(hidden="relu"))
    with pytest.raises(ValueError, match="shortcuts"):
        saved.to_fann(*_net(shortcuts=True))


needs_fann = pytest.mark.skipif(fann_ref.load() is None, reason=fann_ref.WHY_MISSING)


@needs_fann
@pytest.mark.parametrize("error_function", ["linear", "tanh"])
def test_the_fann_export_is_the_text_fann_itself_saves(tmp_path, error_function):
    hidden, output = ("sigmoid_symmetric", "sigmoid_symmetric"), "sigmoid"  # FANN: one activation per layer kind
    net, params = _net(hidden=hidden, output=output, steepness=(1.5, 1.5, 0.5))
    ref = fann_ref.Net(net.sizes, hidden=fann_ref.SIGMOID_SYMMETRIC, output=fann_ref.SIGMOID,
                       steepness_hidden=0.75, steepness_output=0.25)
    ref.set_params(params)
    ref.set("train_error_function", int(error_function == "tanh"))
    ref.lib.fann_set_training_algorithm(ref.ann, fann_ref.RPROP)
    assert ref.lib.fann_save(ref.ann, str(tmp_path / "fann.net").encode()) == 0
    assert saved.to_fann(net, params, error_function=error_function) == (tmp_path / "fann.net").read_text()


@needs_fann
@pytest.mark.parametrize("scaled", [False, True])
def test_fann_runs_the_exported_net_as_bpkit_does(tmp_path, scaled):
    net, params = _net(hidden=("tanh", "sigmoid_symmetric"), output="identity", steepness=(0.5, 2.0, 1.25))
    # scaling values a C float holds exactly (FANN keeps them in float)
    inputs = saved.Scaling(np.array([2.0, 1.5, -0.25]), np.array([4.0, 2.0, 0.5]), np.full(3, -1.0), np.ones(3))
    outputs = saved.Scaling(np.array([0.5, -3.0]), np.array([2.0, 8.0]), np.zeros(2), np.array([1.0, 0.5]))
    kw = {"inputs": inputs, "outputs": outputs} if scaled else {}
    path = saved.save_fann(tmp_path / "n.net", net, params, **kw)
    lib = fann_ref.load()
    ann = lib.fann_create_from_file(str(path).encode())
    assert ann, "FANN could not read the export"
    try:
        rows = []
        for x in X:
            buf = (ctypes.c_double * 3)(*x)
            if scaled:
                lib.fann_scale_input(ann, buf)
            out = lib.fann_run(ann, buf)
            y = (ctypes.c_double * 2)(out[0], out[1])
            if scaled:
                lib.fann_descale_output(ann, y)
            rows.append(list(y))
    finally:
        lib.fann_destroy(ann)
    want = saved.SavedNet(net, params, *(inputs, outputs) if scaled else ()).predict(X)
    np.testing.assert_allclose(np.array(rows), want, rtol=1e-12, atol=1e-12)
    assert np.ptp(want) > 0.1  # the outputs vary: the comparison can tell


def test_a_sweeps_run_is_exported_with_its_datas_scaling(tmp_path, capsys):
    from bpkit import cli, datasets
    from bpkit import config as cfg
    from bpkit.store import Store
    from bpkit.sweep import run_sweep

    flat = cfg.validate({"name": "iris", "seeds": [3], "data.name": "iris", "network.hidden": [5],
                         "network.activation": "tanh", "optimizer.learning_rate": 0.5, "training.max_epochs": 30})
    with Store(tmp_path / "iris.sqlite") as store:
        run_sweep(flat, store, progress=False)
        (row,), _ = store.runs()
    out, net_file = tmp_path / "iris.npz", tmp_path / "iris.net"
    assert cli.main(["export", str(tmp_path / "iris.sqlite"), row["run_id"], str(out), "--fann", str(net_file)]) == 0
    line = capsys.readouterr().out
    assert f"run {row['run_id']} trained again alone" in line and f"(stored: {row['train_loss']:.6g})" in line
    back = saved.load(out)
    raw = datasets.load("iris")  # standardised on its training part; the saved net takes raw inputs
    mean, std = raw.standardisation
    np.testing.assert_allclose(back.inputs.mean, mean)
    np.testing.assert_allclose(back.inputs.deviation, std)
    want = np.asarray(back.net.apply(back.params, jnp.asarray(raw.x_test, jnp.float32)))
    np.testing.assert_allclose(back.predict(raw.x_test * std + mean), want, rtol=1e-5, atol=1e-6)
    loss = float(loss_value(back.net, back.params, jnp.asarray(raw.x_train, jnp.float32),
                            jnp.asarray(raw.y_train, jnp.float32)))
    assert loss == pytest.approx(row["train_loss"], rel=1e-4)  # 30 epochs: alone, the run ends where the sweep's did
    assert net_file.read_text().startswith("FANN_FLO_2.1\n") and "scale_included=1" in net_file.read_text()
    assert cli.main(["export", str(tmp_path / "iris.sqlite"), row["run_id"], str(out)]) == 2  # never overwritten
    assert "exists; give a new file" in capsys.readouterr().err


def test_the_target_range_map_is_undone_by_the_output_scaling():
    # data.target_range maps targets y to lo + (hi - lo) y; a saved net's output scaling maps them back
    lo, hi, y = -0.8, 0.8, np.array([[0.0, 1.0], [0.25, 0.5]])
    n = y.shape[1]
    s = saved.Scaling(np.zeros(n), np.ones(n), np.full(n, 2 * lo - hi), np.full(n, hi - lo))
    np.testing.assert_allclose(s.descale(lo + (hi - lo) * y), y, atol=1e-15)
    np.testing.assert_allclose(s.scale(y), lo + (hi - lo) * y, atol=1e-15)
