"""A queue of runs through a few lanes (lanes.train_queue; issue 11): the same runs as one
lane each, whichever lane a run takes and whichever runs share the loop."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpkit import MLP, datasets
from bpkit import config as cfg
from bpkit.lanes import seed_lane, train_lanes, train_queue
from bpkit.stopping import StopRules
from bpkit.store import Store
from bpkit.sweep import run_sweep

RULES = StopRules(max_epochs=400, goal=1e-3, criterion_40_20_40=True, stop_on="all")


def _xor_cg():
    d = datasets.load("xor")
    net = MLP((2, 2, 1), hidden="tanh", output="sigmoid")
    x, y = jnp.asarray(d.x_train, jnp.float32), jnp.asarray(d.y_train, jnp.float32)

    def lane(seed, c2):
        return seed_lane(net, "cg", seed, {"c2": c2}, static_hyper=(("beta", "pr+"),), rules=RULES)

    return lane, x, y


def _rows(result, i):
    return [np.asarray(leaf[i]) for leaf in jax.tree_util.tree_leaves(result)]


@pytest.fixture(scope="module")
def queued():
    lane, x, y = _xor_cg()
    seeds = np.arange(24, dtype=np.uint32)
    c2 = np.resize(np.float32([0.1, 0.4, 0.9]), 24)
    run = jax.jit(lambda n, s, c: train_queue(lane, (s, c), n, 4, x, y))
    return lane, x, y, seeds, c2, run, run(20, seeds, c2)  # 20 of 24: the last 4 are padding


def test_a_queue_runs_every_run_once_and_the_padding_never(queued):
    lane, x, y, seeds, c2, run, out = queued
    epochs = np.asarray(out.epochs)
    assert np.all(epochs[:20] >= 1) and np.all(epochs[20:] == 0)
    assert len(set(epochs[:20].tolist())) > 3  # runs stop at very different epochs: lanes refill
    loss = np.asarray(out.history.loss)
    for i in range(20):  # entries past a run's stop are blank, whatever the lane held before
        assert np.all(np.isfinite(loss[i, :epochs[i]])) and np.all(np.isnan(loss[i, epochs[i]:]))
        assert np.all(np.asarray(out.history.wrong)[i, epochs[i]:] == -1)


def test_a_run_does_not_depend_on_its_lane_or_its_companions(queued):
    lane, x, y, seeds, c2, run, out = queued
    order = np.r_[np.arange(20)[::-1], np.arange(20, 24)]  # reversed: other lanes, other neighbours
    again = run(20, seeds[order], c2[order])
    for k, i in enumerate(order[:20]):
        for a, b in zip(_rows(out, i), _rows(again, k), strict=True):
            np.testing.assert_array_equal(a, b)  # bitwise, on CPU


def test_a_queue_matches_one_lane_per_run(queued):
    lane, x, y, seeds, c2, run, out = queued
    ref = jax.jit(lambda s, c: train_lanes(lane, (s, c), x, y))(seeds[:20], c2[:20])
    np.testing.assert_array_equal(np.asarray(out.epochs)[:20], np.asarray(ref.epochs))
    np.testing.assert_array_equal(np.asarray(out.stop_reason)[:20], np.asarray(ref.stop_reason))
    np.testing.assert_allclose(np.asarray(out.final_loss)[:20], np.asarray(ref.final_loss), rtol=1e-4, atol=1e-7)


CONFIG = """
name = "q"
seeds = [0, 1, 2, 3, 4]
[data]
name = "xor"
[network]
hidden = [2]
activation = "tanh"
[optimizer]
name = "cg"
beta = "pr+"
c2 = [0.1, 0.9]
[training]
batch_size = "full"
max_epochs = 300
goal = 0.001
"""


def _table(store):
    runs, errors = store.runs()
    assert not errors
    return {r["run_id"]: (r["epochs"], r["stop_reason"], r["train_loss"], r["curves"]["loss"]) for r in runs}


def test_a_queued_sweep_killed_and_resumed_equals_an_uninterrupted_one(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text(CONFIG)
    flat = cfg.load(path)
    full = Store(tmp_path / "full.sqlite")
    run_sweep(flat, full, chunk_size=4, lanes=2, progress=False)
    part = Store(tmp_path / "part.sqlite")

    class Killed(Exception):
        pass

    def kill(written):
        raise Killed

    with pytest.raises(Killed):
        run_sweep(flat, part, chunk_size=4, lanes=2, progress=False, after_chunk=kill)
    assert len(part.run_ids()) == 4
    stats = run_sweep(flat, part, chunk_size=4, lanes=2, progress=False)  # other runs share each chunk now
    assert stats["written"] == 6
    assert _table(part) == _table(full)
    one_lane_each = Store(tmp_path / "plain.sqlite")
    run_sweep(flat, one_lane_each, chunk_size=4, lanes=None, progress=False)
    a, b = _table(full), _table(one_lane_each)
    assert a.keys() == b.keys() and all(a[k][:2] == b[k][:2] for k in a)  # same epochs and stop reasons


def test_lanes_must_be_positive(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text(CONFIG)
    with pytest.raises(ValueError, match="lanes must be a positive integer .*, got 0"):
        run_sweep(cfg.load(path), Store(tmp_path / "s.sqlite"), lanes=0, progress=False)


def test_auto_lanes_queue_line_search_and_heavy_groups_on_cpu_only(tmp_path, monkeypatch):
    from bpkit import plan
    from bpkit.experiment import load_data
    from bpkit.plan import AUTO_LANES, AUTO_LANES_HEAVY_SEARCH, AUTO_WORK, epoch_work, group_lanes

    path = tmp_path / "q.toml"
    path.write_text(CONFIG)
    cg = cfg.expand(cfg.load(path))[0]
    data = load_data(cg)
    assert cg.optimizer.name == "cg"
    monkeypatch.setattr(plan.jax, "default_backend", lambda: "gpu")  # the answer on an accelerator
    assert group_lanes(cg, data, 64, "auto") is None and group_lanes(cg, data, 64, 3) == 3
    monkeypatch.setattr(plan.jax, "default_backend", lambda: "cpu")  # and on CPU, wherever the suite runs
    assert group_lanes(cg, data, 64, "auto") == AUTO_LANES
    assert group_lanes(cg, data, 4, "auto") == 4  # never wider than the chunk
    assert group_lanes(cg, data, 64, None) is None and group_lanes(cg, data, 64, 3) == 3
    path.write_text(CONFIG.replace('name = "cg"\nbeta = "pr+"\nc2 = [0.1, 0.9]', 'name = "sgd"'))
    sgd = cfg.expand(cfg.load(path))[0]
    assert sgd.optimizer.name == "sgd" and group_lanes(sgd, data, 64, "auto") is None
    # Gradient descent is queued once an epoch is heavy: the count is examples x weights.
    assert epoch_work(sgd,
                      data) == len(data.x_train) * (data.inputs * 2 + 2 + 2 * data.outputs + data.outputs) < AUTO_WORK
    path.write_text(CONFIG.replace('name = "cg"\nbeta = "pr+"\nc2 = [0.1, 0.9]', 'name = "sgd"')
                    .replace('name = "xor"', 'name = "digits"').replace("hidden = [2]", "hidden = [32]"))
    heavy = cfg.expand(cfg.load(path))[0]
    digits = load_data(heavy)
    assert epoch_work(heavy, digits) == len(digits.x_train) * (64 * 32 + 32 + 32 * 10 + 10) >= AUTO_WORK
    assert group_lanes(heavy, digits, 80, "auto") == AUTO_LANES
    # A line search on a heavy epoch: fewer lanes (each pays for the slowest lane's line search).
    path.write_text(CONFIG.replace('name = "xor"', 'name = "digits"').replace("hidden = [2]", "hidden = [32]"))
    heavy_cg = cfg.expand(cfg.load(path))[0]
    assert heavy_cg.optimizer.name == "cg" and epoch_work(heavy_cg, digits) >= AUTO_WORK
    assert group_lanes(heavy_cg, digits, 80, "auto") == AUTO_LANES_HEAVY_SEARCH < AUTO_LANES
    assert group_lanes(heavy_cg, digits, 2, "auto") == 2 and group_lanes(heavy_cg, digits, 80, 8) == 8
    monkeypatch.setattr(plan.jax, "default_backend", lambda: "gpu")
    assert group_lanes(heavy_cg, digits, 80, "auto") is None and group_lanes(heavy, digits, 80, "auto") is None


TWO_DEVICES = """
import sys, jax
from bpkit import config as cfg
from bpkit.store import Store
from bpkit.sweep import run_sweep
assert jax.device_count() == 2, jax.devices()
run_sweep(cfg.load(sys.argv[1]), Store(sys.argv[2]), chunk_size=4, lanes=2, progress=False)
"""


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="compares this process's sweep with CPU devices forced "
                    f"in a subprocess, and this process runs on {jax.default_backend()}: other last bits")
def test_a_queue_sharded_over_two_devices_equals_one_device_bitwise(tmp_path):
    # The queue's columns are sharded over the devices (bpkit.lanes.shard) and its lanes gather from
    # them: two CPU devices in a subprocess must store exactly the runs of one device.
    path = tmp_path / "q.toml"
    path.write_text(CONFIG)
    one = Store(tmp_path / "one.sqlite")
    run_sweep(cfg.load(path), one, chunk_size=4, lanes=2, progress=False)
    # 64-bit mode off, as the CLI runs (on in this process, conftest): float32 runs do not depend on it.
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(path), str(tmp_path / "two.sqlite")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _table(Store(tmp_path / "two.sqlite")) == _table(one)


MANY_ON_DEVICES = """
import jax, numpy as np
from bpkit import MLP, datasets, machine
from bpkit.lanes import train_many
from bpkit.stopping import StopRules
assert machine.cpu_devices(2) and jax.device_count() == 2, jax.devices()
assert not machine.cpu_devices(3) and jax.device_count() == 2  # the platform has started: no change
d = datasets.load("digits")
def many(seeds, **kw):
    r = train_many(MLP((64, 30, 10)), "sgd", seeds, d.x_train, d.y_train, hyper={"learning_rate": 0.5},
                   batch_size=10, rules=StopRules(max_epochs=3, stall_epochs=None), **kw)
    return r.history.loss, r.params[0]["w"]
both = many([0, 1, 2, 3, 4])  # padded to 6: seeds 0-2 on one device, 3, 4 and the copy on the other
assert [len(a.sharding.device_set) for a in both] == [2, 2] and both[0].shape == (5, 3), both[0].sharding
one = [many(s, devices=jax.devices()[:1]) for s in ([0, 1, 2], [3, 4, 4])]  # width 3 on one device
for i in range(2):
    assert np.array_equal(both[i], np.concatenate([one[0][i], one[1][i][:2]])), i
print("ok")
"""


@pytest.mark.skipif(jax.default_backend() != "cpu", reason=f"forces CPU devices in a subprocess, and this process runs "
                    f"on {jax.default_backend()}")
def test_train_many_over_two_cpu_devices_equals_its_shares_run_on_one_bitwise():
    # train_many lays its runs over the devices (padded to a multiple of their count; the results
    # show both devices); each device steps its share as a vmapped program of that width, so each
    # run has the bits of its share run on one device (devices=...), and the padding is dropped.
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    done = subprocess.run([sys.executable, "-c", MANY_ON_DEVICES], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
