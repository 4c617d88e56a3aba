"""bpkit.experiment: a run's pieces from its spec and data, every check that needs the data made first."""

import pytest

from bpkit import config as cfg
from bpkit import datasets, experiment


@pytest.mark.parametrize(("settings", "say"), [
    ({"data.target_range": [-1e308, 1e308], "dtype": "float64"},
     "xor: the training targets are not finite in float64 once data.target_range maps them"),
    ({"data.target_range": [0, 1e39], "dtype": "float32"}, "xor: the training targets are not finite in "
                                                               "float32 once data.target_range maps them"),
])
def test_targets_that_become_nan_or_inf_are_refused(settings, say):
    run = cfg.expand(cfg.validate({"network.output": "identity", "network.hidden": [2], **settings}))[0]
    with pytest.raises(ValueError, match=say.replace("(", r"\(")):
        experiment.build(run, datasets.load("xor"))


def test_inputs_beyond_float32_are_refused(tmp_path):
    p = tmp_path / "big.data"  # a FANN file: used as given, not standardised
    p.write_text("4 1 1\n1e39\n0\n0\n1\n1\n1\n2\n0\n")
    run = cfg.expand(cfg.validate({"data.path": str(p), "network.hidden": [2]}))[0]
    with pytest.raises(ValueError, match="big: the training inputs are not finite in float32; rescale them"):
        experiment.build(run, experiment.load_data(run))


def test_quickprop_decay_and_rprop_step_bounds_are_config_keys_that_reach_the_optimizer():
    base = {"network.hidden": [2], "seeds": [0]}
    qp = cfg.expand(cfg.validate({**base, "optimizer.name": "quickprop", "optimizer.decay": 1e-4}))[0]
    assert ("decay", 1e-4) in experiment.build(qp, datasets.load("xor")).static_hyper
    rp = cfg.expand(cfg.validate({**base, "optimizer.name": "rprop", "optimizer.variant": "fann",
                                  "optimizer.min_step": 0.0, "optimizer.max_step": 10.0}))[0]
    assert {("min_step", 0.0), ("max_step", 10.0)} <= set(experiment.build(rp, datasets.load("xor")).static_hyper)
    with pytest.raises(ValueError, match="optimizer.min_step = 5.0 must be below optimizer.max_step = 1.0"):
        cfg.expand(cfg.validate({**base, "optimizer.name": "rprop", "optimizer.min_step": 5.0,
                                 "optimizer.max_step": 1.0}))


def test_keys_of_one_optimizer_at_their_defaults_leave_every_other_run_id_as_it_was():
    from bpkit.store import config_hash

    run = cfg.expand(cfg.validate({}))[0].as_dict()
    before = {k: v for k, v in run.items() if k not in ("optimizer.decay", "optimizer.min_step", "optimizer.max_step")}
    assert config_hash(run) == config_hash(before)
