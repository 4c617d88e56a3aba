"""Compile once, reuse everywhere: the persistent cache across processes, and no recompile for
another learning rate or an equal optimizer built again."""

import json
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bpkit import MLP, datasets, optim, training
from bpkit.stopping import StopRules

ROOT = pathlib.Path(__file__).resolve().parents[1]

_COUNT_COMPILES = """
import collections, json, sys
import jax
events = collections.Counter()
jax.monitoring.register_event_listener(lambda name, **kw: events.update([name]))
from bpkit.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, **events}))
"""


def _sweep_counting_compiles(cache, store):
    env = {**os.environ, "BPKIT_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", _COUNT_COMPILES, "sweep", str(ROOT / "experiments" / "xor.toml"),
                          "--store", str(store), "--no-progress"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_compiles_nothing(tmp_path):
    first = _sweep_counting_compiles(tmp_path / "cache", tmp_path / "a.sqlite")
    second = _sweep_counting_compiles(tmp_path / "cache", tmp_path / "b.sqlite")
    requests = "/jax/compilation_cache/compile_requests_use_cache"
    assert first["code"] == second["code"] == 0
    # The first process may hit its own fresh cache: a sweep clears JAX's in-memory caches between
    # groups, and a small program compiled again after that is read back from disk.
    misses, hits = (first.get(f"/jax/compilation_cache/cache_{k}", 0) for k in ("misses", "hits"))
    assert misses >= 1 and misses + hits == first[requests]
    assert second.get("/jax/compilation_cache/cache_misses", 0) == 0
    # Every program the second process asks for comes from the disk. How many it asks for can
    # differ by one or two between processes: groups compile ahead in threads, and two threads can
    # both ask for one small shared program before either has it in memory (seen: 9 against 8).
    assert second["/jax/compilation_cache/cache_hits"] == second[requests] >= misses


def test_the_cache_can_be_turned_off(tmp_path):
    off = _sweep_counting_compiles("off", tmp_path / "a.sqlite")
    assert off["code"] == 0
    assert not {"/jax/compilation_cache/cache_misses", "/jax/compilation_cache/cache_hits"} & set(off)


def _xor():
    d = datasets.load("xor")
    return jnp.asarray(d.x_train, jnp.float32), jnp.asarray(d.y_train, jnp.float32)


def test_another_learning_rate_or_an_equal_optimizer_reuses_the_program(monkeypatch):
    # A net shape no other test uses, so the program is new to this process.
    net, (x, y) = MLP((2, 7, 1), "tanh"), _xor()
    params = net.init(jax.random.key(0), dtype=jnp.float32)
    monkeypatch.setattr(training, "trainer_parts", chex.assert_max_traces(training.trainer_parts, n=1))
    rules = StopRules(max_epochs=30, stall_epochs=None)
    losses = []
    for opt in (optim.make("sgd", learning_rate=0.5), optim.make("sgd", learning_rate=0.7),
                optim.make("sgd", learning_rate=0.5, momentum=0.9), optim.make("sgd", learning_rate=0.5)):
        losses.append(float(training.train(net, opt, params, x, y, key=jax.random.key(1), rules=rules).final_loss))
    assert losses[0] == losses[3] and len(set(losses[:3])) == 3


def test_line_search_and_scg_constants_are_data(monkeypatch):
    # CG's and L-BFGS's Wolfe constants and SCG's lambda_1 are tuned like a learning rate: one program each.
    net, (x, y) = MLP((2, 6, 1), "tanh"), _xor()
    params = net.init(jax.random.key(0), dtype=jnp.float32)
    rules = StopRules(max_epochs=20, stall_epochs=None)
    for name, key, values in (("cg", "c2", (0.1, 0.9)), ("lbfgs", "c2", (0.1, 0.9)), ("scg", "lambda_init", (1e-8,
                                                                                                             1e-2))):
        traced = chex.assert_max_traces(training.trainer_parts, n=1)
        monkeypatch.setattr(training, "trainer_parts", traced)
        runs = [training.train(net, optim.make(name, **{key: v}), params, x, y, key=jax.random.key(1), rules=rules)
                for v in values]
        assert float(runs[0].final_loss) != float(runs[1].final_loss), (name, key)  # the setting is used
        chex.clear_trace_counter()


@pytest.mark.filterwarnings("ignore:bpkit.train compiles the run again")  # plain transforms, one each, on purpose
def test_hyperparameters_as_data_train_bitwise_like_constants():
    net, (x, y) = MLP((2, 3, 1), "sigmoid"), _xor()
    params = net.init(jax.random.key(2), dtype=jnp.float32)
    rules = StopRules(max_epochs=40, stall_epochs=None)
    for name, hyper, plain in (("sgd", {"learning_rate": 2.0, "momentum": 0.5}, optax.sgd(2.0, momentum=0.5)),
                               ("quickprop", {"learning_rate": 0.5, "mu": 1.75}, optim.quickprop(0.5, mu=1.75)),
                               ("cg", {"c1": 1e-3, "c2": 0.1}, optim.nonlinear_cg(c1=1e-3, c2=0.1)),
                               ("lbfgs", {}, optax.lbfgs()),  # optax's own default search, bitwise
                               ("scg", {"lambda_init": 1e-4}, optim.scg(lambda_init=1e-4))):
        a = training.train(net, optim.make(name, **hyper), params, x, y, key=jax.random.key(3), rules=rules)
        b = training.train(net, plain, params, x, y, key=jax.random.key(3), rules=rules)
        chex.assert_trees_all_equal(a.params, b.params)
        np.testing.assert_array_equal(a.history.loss, b.history.loss)


def test_make_hashes_by_value():
    assert optim.make("cg", beta="fr") == optim.make("cg", beta="fr")
    assert hash(optim.make("rprop", learning_rate=0.1)) == hash(optim.make("rprop", learning_rate=0.1))
    assert optim.make("cg", beta="fr") != optim.make("cg", beta="pr")
    assert optim.recipe(optim.make("quickprop", mu=2.0)) == ("quickprop", {"mu": 2.0})
    assert optim.recipe(optax.sgd(0.1)) is None


def test_a_cache_folder_that_cannot_be_written_is_one_warning_not_one_per_program(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # a folder cannot be made inside a file, whoever runs the test
    env = {**os.environ, "BPKIT_CACHE_DIR": str(blocker / "cache")}
    out = subprocess.run([sys.executable, "-m", "bpkit", "sweep", str(ROOT / "experiments" / "xor.toml"),
                          "--store", str(tmp_path / "a.sqlite"), "--no-progress", "--set", "seeds=[0]"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"bpkit: warning: the compilation cache folder {blocker / 'cache'} cannot be written (not a directory); "
        f"compiling without it (set BPKIT_CACHE_DIR to another folder, or to off)"]


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch):
    from bpkit import cache

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert cache.default_dir() == pathlib.Path(os.path.expanduser("~")) / ".cache" / "bpkit" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "/abs/cache")
    assert cache.default_dir() == pathlib.Path("/abs/cache/bpkit/jax")


def test_a_new_optax_object_each_call_is_said_once_and_optim_make_is_not(monkeypatch):
    from bpkit import training as tr

    monkeypatch.setattr(tr, "_LAST", {})
    monkeypatch.setattr(tr, "_SAID", [])
    net, (x, y) = MLP((2, 5, 1), "tanh"), _xor()
    params = net.init(jax.random.key(0), dtype=jnp.float32)
    rules = StopRules(max_epochs=3, stall_epochs=None)
    run = lambda opt: training.train(net, opt, params, x, y, key=jax.random.key(1), rules=rules)
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run(optim.make("sgd", learning_rate=0.5)), run(optim.make("sgd", learning_rate=0.7))  # data: no word
        same = optax.sgd(0.5)
        run(same), run(same)  # the same object: the same program, no word
        assert not seen
        for _ in range(3):
            run(optax.sgd(0.5))  # a new object each time: said once
    assert [str(w.message)[:58] for w in seen] == ["bpkit.train compiles the run again for a new optax transfo"]
