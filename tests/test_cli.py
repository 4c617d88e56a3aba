"""`bpkit check`: exit 0 when all is as expected, 1 when not, 2 on bad arguments."""

import dataclasses
import json
import subprocess
import sys

import jax.numpy as jnp
import pytest

from bpkit import activations
from bpkit.cli import main

SUBSET = ["check", "--activations", "tanh,relu,step,identity", "--depths", "1,2"]


def test_check_subset_passes_and_prints_a_table(capsys):
    assert main(SUBSET) == 0
    out = capsys.readouterr().out
    assert "all as expected" in out
    assert "no_derivative" in out and "not a gradient" in out
    assert "exact flax" in out


def test_check_json_is_machine_readable(capsys):
    assert main(SUBSET + ["--dtypes", "float64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    rules = {c["rule"] for c in report["cases"]}
    assert rules == {"exact", "no_derivative", "constant_derivative"}
    ablated = [c for c in report["cases"] if c["rule"] == "no_derivative" and c["hidden"] == ["tanh"]]
    assert ablated and all(not c["passed"] and c["as_expected"] for c in ablated)
    exact = [c for c in report["cases"] if c["rule"] == "exact"]
    assert max(c["max_rel_error_vs_jax_grad"] for c in exact) < 1e-10


def test_check_fused_gives_the_same_verdicts(capsys):
    # One compiled program per case instead of one per operation: the same cases, each as expected.
    argv = ["check", "--activations", "tanh,relu", "--depths", "1,2", "--dtypes", "float64", "--json"]
    reports = []
    for extra in ([], ["--fused"]):
        assert main(argv + extra) == 0
        reports.append(json.loads(capsys.readouterr().out))
    verdicts = [[(c["rule"], c["hidden"], c["passed"], c["as_expected"]) for c in r["cases"]] for r in reports]
    assert verdicts[0] == verdicts[1] and len(verdicts[0]) > 20
    assert any(not passed for _, _, passed, _ in verdicts[1])  # the ablations fail, fused too


def test_check_fails_with_exit_1_on_a_wrong_derivative(monkeypatch, capsys):
    tanh = activations.REGISTRY["tanh"]
    wrong = dataclasses.replace(tanh, deriv=lambda z: 1.0 - jnp.tanh(z))  # forgot the square
    monkeypatch.setitem(activations.REGISTRY, "tanh", wrong)
    assert main(["check", "--activations", "tanh", "--depths", "2", "--dtypes", "float64", "--no-flax"]) == 1
    out = capsys.readouterr().out
    assert "UNEXPECTED: 3-4-3 tanh->tanh mse float64 exact" in out
    assert "<-- WRONG" in out and "NOT as expected" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "bpkit: error: missing verb; valid: check, report, datasets, run, sweep, copy"),
        (["frobnicate"], "bpkit: error: argument VERB: invalid choice: 'frobnicate'"),
        (["check", "--depths", "two"], "bpkit check: error: argument --depths: expected comma-separated int values"),
        (["check", "--activations", "nope"], "bpkit: error: unknown activation 'nope'; valid:"),
        (["check", "--dtypes", "float16"], "bpkit: error: unknown dtype 'float16'; valid: float32, float64"),
        (["check", "--depths", "0"], "bpkit: error: depths must be weight-layer counts in 1..32, got 0"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        code = main(argv)
        raise SystemExit(code)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message), err
    assert len(err.splitlines()) == 1


def test_no_traceback_from_the_real_command():
    proc = subprocess.run(
        [sys.executable, "-m", "bpkit", "check", "--losses", "hinge"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "bpkit: error: unknown loss 'hinge'; valid: mse, bce, softmax_ce, atanh"
    assert "Traceback" not in proc.stderr + proc.stdout


def test_run_sweep_and_datasets_verbs(tmp_path, capsys):
    cfg_file = tmp_path / "x.toml"
    cfg_file.write_text('name = "x"\nseeds = [0, 1]\n[network]\nhidden = [2]\nactivation = "tanh"\n'
                        '[optimizer]\nlearning_rate = 2.0\n[training]\nbatch_size = 1\nmax_epochs = 300\n'
                        'criterion_40_20_40 = true\n')
    store = str(tmp_path / "r.sqlite")
    assert main(["run", str(cfg_file), "--store", store, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 runs in 1 compiled group(s): 2 new, 0 already" in out and "seed   0  40-20-40" in out
    assert main(["sweep", str(cfg_file), "--store", store, "--no-progress", "--set", "seeds=[0,1,2]"]) == 0
    assert "3 runs in 1 compiled group(s): 1 new, 2 already" in capsys.readouterr().out
    assert main(["datasets"]) == 0
    assert "two_spirals" in capsys.readouterr().out
    grid = ["run", str(cfg_file), "--store", store, "--set", "optimizer.learning_rate=[1.0, 2.0]"]
    assert main(grid) == 2
    assert "has a grid (optimizer.learning_rate); use bpkit sweep" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tmp_path):
    # `bpkit sweep --plan | head -1`: the reader leaves early; no "broken pipe" error, no traceback.
    config = tmp_path / "x.toml"
    config.write_text('name = "x"\nseeds = [0, 1]\n[network]\nactivation = ["tanh", "sigmoid", "relu"]\n'
                      '[data]\nname = "xor"\n')
    proc = subprocess.Popen([sys.executable, "-m", "bpkit", "sweep", str(config), "--plan"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # gone before the child (still importing jax) writes its first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "error" not in err and "Traceback" not in err, err


def test_run_prints_a_diverged_run_and_its_rerun(tmp_path, capsys):
    cfg_file = tmp_path / "d.toml"
    cfg_file.write_text('name = "d"\nseeds = [0]\n[network]\nhidden = [4]\nactivation = "identity"\n'
                        'output = "identity"\n[optimizer]\nlearning_rate = 500.0\n[training]\nmax_epochs = 200\n')
    store = str(tmp_path / "r.sqlite")
    for _ in range(2):  # the first run stores it, the rerun only prints it: both once failed with a TypeError
        assert main(["run", str(cfg_file), "--store", store, "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert "diverged" in out and "train loss nan" in out, out


def test_check_refuses_an_absurd_depth_before_any_work(capsys):
    assert main(["check", "--depths", "1,1000000", "--activations", "tanh"]) == 2
    assert capsys.readouterr().err.strip() == "bpkit: error: depths must be weight-layer counts in 1..32, got 1000000"


def test_a_plan_of_a_sweep_tuned_first_shows_its_first_stage_and_several_processes_are_refused(tmp_path, capsys):
    config = tmp_path / "t.toml"
    config.write_text('name = "t"\nseeds = [0, 1, 2, 3]\n[compare]\ntune_seeds = [0, 1]\ntune_first = true\n'
                      '[optimizer]\nlearning_rate = [0.5, 1.0, 2.0]\n[training]\ngoal = 0.01\nmax_epochs = 10\n')
    assert main(["sweep", str(config), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "the first stage" in out and "other 2 seeds" in out and out.splitlines()[1].startswith("6 runs")
    assert main(["sweep", str(config), "--store", str(tmp_path / "t.sqlite"), "--coordinator", "localhost:1",
                 "--num-processes", "2", "--process-id", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compare.tune_first runs in one process" in err
    assert not (tmp_path / "t.sqlite").exists()
