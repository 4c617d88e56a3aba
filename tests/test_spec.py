"""bpkit.spec: each field declared once, every role table derived from the declarations."""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bpkit import config as cfg
from bpkit import optim, spec
from bpkit.spec import Role


def _declared(role):
    return [k for k, info in spec.FIELDS.items() if role in info.roles]


def test_the_role_tables_are_the_declarations():
    assert ("seed", *_declared(Role.DATA), *_declared(Role.DISCRETE)) == spec.VMAPPED
    assert tuple(_declared(Role.TUNED)) == spec.TUNED
    assert tuple(_declared(Role.INIT)) == spec.INIT_KEYS
    assert {k: spec.DEFAULTS[k] for k in _declared(Role.LATER)} == spec.LATER_KEYS
    assert {k.split(".")[1] for k in _declared(Role.DATA) if k.startswith("optimizer.")} == spec.OPTIMIZER_DATA
    assert set(spec.DISCRETE) == set(_declared(Role.DISCRETE))
    assert {k for k, info in spec.FIELDS.items() if info.types == (list,)} == spec.LIST_FIELDS
    # A tuned setting is data (tuning it compiles nothing); a discrete field has a code; an optional one an off
    # spelling.
    assert set(spec.TUNED) <= set(_declared(Role.DATA))
    assert all(spec.FIELDS[k].code is not None for k in _declared(Role.DISCRETE))
    for k, info in spec.FIELDS.items():
        if info.off is not None:
            assert spec.DEFAULTS[k] == info.off.spelling or not info.off.means(spec.DEFAULTS[k]), k


def test_every_optimizer_reads_declared_keys_and_every_optimizer_key_is_read():
    keys = {k.split(".")[1] for k in spec.FIELDS if k.startswith("optimizer.")} - {"name"}
    read = {k for ks in optim.HYPERPARAMETERS.values() for k in ks}
    assert read == keys
    assert set(optim.HYPERPARAMETERS) == set(optim.OPTIMIZERS)
    for name, ks in optim.HYPERPARAMETERS.items():  # each key is a parameter of the optimizer's factory
        params = inspect.signature(optim.OPTIMIZERS[name]).parameters
        assert all(k in params or any(p.kind == p.VAR_KEYWORD for p in params.values()) for k in ks), name


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_every_data_hyperparameter_can_be_traced(name):
    # Data of the compiled program: the optimizer builds and updates with it traced, as a sweep vmaps it.
    data = [k for k in optim.HYPERPARAMETERS[name] if k in spec.OPTIMIZER_DATA]
    defaults = {k: spec.DEFAULTS[f"optimizer.{k}"] for k in data}
    params = {"w": jnp.ones(3)}

    def step(values):
        tx = optim.Recipe(name).build(dict(zip(data, values, strict=True)))
        loss = lambda p: jnp.sum(p["w"] ** 2)
        g = jax.grad(loss)(params)
        updates, _ = tx.update(g, tx.init(params), params, value=loss(params), grad=g, value_fn=loss)
        return updates

    traced = jax.jit(step)([jnp.float32(v) for v in defaults.values()])
    concrete = step(list(defaults.values()))
    chex.assert_trees_all_close(traced, concrete, rtol=1e-6)


def test_a_run_goes_to_its_flat_dict_and_back():
    run = cfg.expand(cfg.load("experiments/flagship.toml"))[123]
    assert spec.from_flat(run.as_dict()) == run
    assert run.as_dict()["network.hidden"] == list(run.network.hidden)
    assert run.replace(**{"optimizer.learning_rate": 0.7}).optimizer.learning_rate == 0.7


def test_off_is_none_in_a_spec_and_its_spelling_in_a_file():
    run = spec.from_flat({"training.goal": -3.0, "training.patience": 0, "training.stall_epochs": 0})
    assert run.training.goal is None and run.training.patience is None and run.training.stall_epochs is None
    flat = run.as_dict()
    assert flat["training.goal"] == -1.0 and flat["training.patience"] == 0 and flat["training.stall_epochs"] == 0
    on = spec.from_flat({"training.goal": 0.0})
    assert on.training.goal == 0.0  # a goal of 0 is a goal


def test_a_field_checks_its_values():
    with pytest.raises(ValueError, match=r"optimizer.eta_plus = 0.9 is out of range: RPROP: step factor"):
        spec.check_value("optimizer.eta_plus", 0.9)
    with pytest.raises(ValueError, match="optimizer.beta = 'xx' is not valid; valid: fr, pr, pr\\+, hs, dy"):
        spec.check_value("optimizer.beta", "xx")
    with pytest.raises(ValueError, match="training.shuffle must be true/false, got 1"):
        spec.check_value("training.shuffle", 1)
    spec.check_value("training.goal", -1)  # off
    with pytest.raises(ValueError, match="must be below optimizer.c2"):
        spec.from_flat({"optimizer.name": "cg", "optimizer.c1": 0.5, "optimizer.c2": 0.4})


RPROP_ETAS = """
seeds = [0, 1]
dtype = "float64"
[data]
name = "xor"
[network]
hidden = [3]
activation = "tanh"
[optimizer]
name = "rprop"
eta_plus = [1.1, 1.2, 1.5]
eta_minus = [0.3, 0.5]
[training]
max_epochs = 40
stall_epochs = 0
"""


def test_a_data_hyperparameter_is_swept_in_one_program_and_trains_as_train_does(tmp_path):
    # RPROP's eta+ and eta-: declared in bpkit.spec and read by optim/rprop.py, nothing else.
    from bpkit import engine, experiment
    from bpkit.network import MLP
    from bpkit.plan import plan
    from bpkit.training import train

    (tmp_path / "e.toml").write_text(RPROP_ETAS)
    runs = cfg.expand(cfg.load(tmp_path / "e.toml"))
    groups = plan(runs)
    assert len(groups) == 1 and groups[0].experiment.columns[-2:] == ("optimizer.eta_minus", "optimizer.eta_plus")
    data = experiment.load_data(runs[0])
    finals = {}
    for chunk in engine.run_grid(runs):
        for run, out in chunk:
            kinit, ktrain = jax.random.split(jax.random.key(run.seed))
            net = MLP((2, 3, 1), hidden="tanh")
            tx = optim.make("rprop", eta_plus=run.optimizer.eta_plus, eta_minus=run.optimizer.eta_minus)
            alone = train(net, tx, net.init(kinit, dtype=jnp.float64), data.x_train, data.y_train, key=ktrain,
                          rules=experiment.stop_rules(run))
            np.testing.assert_allclose(out.curves["loss"], np.asarray(alone.history.loss), rtol=1e-10)
            finals[run.optimizer.eta_plus, run.optimizer.eta_minus, run.seed] = out.train_loss
    assert len(set(finals.values())) == len(finals) == 12  # every setting trains its own way
