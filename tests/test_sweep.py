"""bpkit.sweep: a sweep into a store equals its runs one by one, killed and resumed or not."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from grids import MEASURED, alone, stored_table

from bpkit import config as cfg
from bpkit.store import Store, run_id
from bpkit.sweep import run_sweep


def test_vmapped_sweep_equals_runs_one_by_one(tmp_path, config_file):
    flat = cfg.load(config_file)
    together = Store(tmp_path / "a.sqlite")
    stats = run_sweep(flat, together, chunk_size=64, progress=False)
    assert stats == {"runs": 12, "skipped": 0, "written": 12, "meanwhile": 0, "groups": 1}  # activation is data
    alone = Store(tmp_path / "b.sqlite")
    for r in cfg.expand(flat):
        if r.network.activation == "tanh":  # with both activations, as the program takes both
            one = {**flat, "optimizer.learning_rate": r.optimizer.learning_rate, "seeds": [r.seed]}
            run_sweep(one, alone, chunk_size=64, progress=False)  # alone, padded to the same program shape
    # Bitwise on CPU: a run's numbers do not depend on which runs share its chunk
    # (what makes a resumed sweep, which regroups runs, reproduce the uninterrupted one).
    assert stored_table(together) == stored_table(alone)


def test_runs_differing_in_activation_alone_share_a_program_and_each_trains_with_its_own(config_file, monkeypatch):
    # A tiny epoch: one program for tanh and sigmoid, the activation a code; each run as its own program would
    # train it, to rounding (the merged program fuses otherwise), and unlike the other activation's run.
    from bpkit import engine, plan

    runs = cfg.expand(cfg.load(config_file))
    (merged,) = plan.plan(runs, chunk_size=64)
    assert merged.experiment.hidden_choices == ("tanh", "sigmoid") and len(merged.members) == 12
    together = {id(r): o.curves["loss"] for chunk in engine.run_grid(runs, chunk_size=64) for r, o in chunk}
    monkeypatch.setattr(plan, "merges_activation", lambda run, data: False)
    assert len(plan.plan(runs, chunk_size=64)) == 2
    apart = {id(r): o.curves["loss"] for chunk in engine.run_grid(runs, chunk_size=64) for r, o in chunk}
    twin = {(r.network.activation, r.optimizer.learning_rate, r.seed): id(r) for r in runs}
    for r in runs:
        other = twin[("sigmoid" if r.network.activation == "tanh" else "tanh", r.optimizer.learning_rate, r.seed)]
        np.testing.assert_allclose(together[id(r)], apart[id(r)], rtol=1e-5)
        assert np.max(np.abs(together[id(r)] - apart[other])) > 1e-5  # 100 times the rounding allowed


def test_only_tiny_epochs_with_a_name_free_gradient_merge_activations():
    from bpkit import experiment, plan, spec

    def merges(**changes):
        run = spec.from_flat({**spec.Run().as_dict(), "data.name": "xor", "network.hidden": [2], **changes})
        return plan.merges_activation(run, experiment.load_data(run))

    assert merges() and merges(source="exact") and merges(source="fahlman_offset")
    assert not merges(source="fann_clipped") and not merges(source="constant_derivative")  # FANN's clips, f'(0)
    assert not merges(**{"data.name": "digits", "network.hidden": [32]})  # 1,797 examples x 2,410 weights


class Killed(Exception):
    pass


def _killed_after_first_chunk(flat, store, **kw):
    """Run a sweep that dies right after its first chunk is committed."""

    def kill(written):
        raise Killed

    with pytest.raises(Killed):
        run_sweep(flat, store, progress=False, after_chunk=kill, **kw)


def test_resumed_sweep_equals_uninterrupted(tmp_path, config_file):
    flat = cfg.load(config_file)
    full = Store(tmp_path / "full.sqlite")
    run_sweep(flat, full, chunk_size=4, progress=False)
    part = Store(tmp_path / "part.sqlite")
    _killed_after_first_chunk(flat, part, chunk_size=4)
    assert 0 < len(part.run_ids()) < 12
    stats = run_sweep(flat, part, chunk_size=4, progress=False)
    assert stats["skipped"] == 4 and stats["written"] == 8
    assert stored_table(part) == stored_table(full)
    assert part.integrity_ok()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="compares this process's sweep with CPU devices forced "
                    f"in a subprocess, and this process runs on {jax.default_backend()}: other last bits")
def test_sharded_over_four_cpu_devices_equals_unsharded(tmp_path, config_file):
    flat = cfg.load(config_file)
    run_sweep(flat, Store(tmp_path / "one.sqlite"), chunk_size=8, progress=False)
    code = textwrap.dedent(f"""
        import jax
        assert len(jax.devices()) == 4, jax.devices()
        from bpkit import config as cfg
        from bpkit.store import Store
        from bpkit.sweep import run_sweep
        run_sweep(cfg.load({str(config_file)!r}), Store({str(tmp_path / 'four.sqlite')!r}), chunk_size=8,
                  progress=False)
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert stored_table(Store(tmp_path / "four.sqlite")) == stored_table(Store(tmp_path / "one.sqlite"))


def test_budgeted_sweep_killed_and_resumed_is_bitwise_the_same(tmp_path, config_file):
    # Without an explicit chunk size the chunk comes from the budget and the group's size
    # in the whole sweep, never from the runs still to do: the resumed sweep compiles the
    # same shapes. A budget of ~4 runs makes 2 chunks per group (4 + 2 padded).
    from bpkit.experiment import load_data
    from bpkit.plan import run_bytes

    flat = cfg.load(config_file)
    first = cfg.expand(flat)[0]
    budget = 4.5 * run_bytes(first, load_data(first)) / 2**20
    full = Store(tmp_path / "full.sqlite")
    run_sweep(flat, full, chunk_size=None, memory_budget_mb=budget, progress=False)
    part = Store(tmp_path / "part.sqlite")
    _killed_after_first_chunk(flat, part, chunk_size=None, memory_budget_mb=budget)
    assert len(part.run_ids()) == 4
    run_sweep(flat, part, chunk_size=None, memory_budget_mb=budget, progress=False)
    assert stored_table(part) == stored_table(full)


BATCH_RULE = MEASURED.replace('dtype = "float64"', 'dtype = "float64"\nsource = "exact"').replace(
    "batch_size = 1", 'batch_size = "full"').replace("[1.0, 3.0]", "[3.0, 10.0]")


@pytest.mark.parametrize("config", [MEASURED, BATCH_RULE], ids=["online", "batch, hand-written rule"])
def test_a_sweep_without_the_gradient_norm_stores_the_same_runs_with_none_recorded(tmp_path, config):
    # Online XOR: the loss alone is measured (a forward pass); batch with the exact rule: the rule's
    # gradient alone (its next step's), not jax.grad's too.  Nothing else about the runs moves.
    stored = {}
    for lean in (False, True):
        p = tmp_path / f"g{lean}.toml"
        p.write_text(config + ("grad_norm = false\n" if lean else ""))
        store = Store(tmp_path / f"g{lean}.sqlite")
        run_sweep(cfg.load(p), store, progress=False)
        stored[lean] = sorted(store.runs()[0], key=lambda r: (r["seed"], r["config"]["optimizer.learning_rate"]))
    for full, lean in zip(stored[False], stored[True], strict=True):
        assert (lean["epochs"], lean["stop_reason"]) == (full["epochs"], full["stop_reason"])
        np.testing.assert_allclose(lean["curves"]["loss"], full["curves"]["loss"], rtol=1e-12)
        assert all(v is not None and v > 0 for v in full["curves"]["grad_norm"])
        assert all(v is None for v in lean["curves"]["grad_norm"])


@pytest.mark.parametrize("lanes", [None, 3])  # a lane per run, and a queue whose lanes take new runs
def test_a_sweep_stores_measures_within_epochs_and_they_are_the_single_runs(tmp_path, lanes):
    p = tmp_path / "m.toml"
    p.write_text(MEASURED + "measures_per_epoch = 4\n")  # after each of XOR's 4 examples
    flat = cfg.load(p)
    store = Store(tmp_path / "m.sqlite")
    run_sweep(flat, store, progress=False, lanes=lanes)
    stored = {r["run_id"]: r for r in store.runs()[0]}
    epochs = set()
    for run in cfg.expand(flat):
        got, want = stored[run_id(run.as_dict())], alone(run, measures_per_epoch=4)
        e = int(want.epochs)
        epochs.add(e)
        assert got["epochs"] == e and got["stop_reason"] == want.reason
        within = got["curves"]["within"]
        assert set(within) == set(want.within._fields)
        for field in want.within._fields:
            rows = np.array(within[field], dtype=float)
            assert rows.shape == (e, 4), field  # the records of the run's epochs, none past its stop
            np.testing.assert_allclose(rows, np.asarray(getattr(want.within, field))[:e], rtol=1e-10, err_msg=field)
        np.testing.assert_array_equal(np.array(within["wrong"]), np.asarray(want.within.wrong)[:e])
        assert np.array_equal(np.array(within["loss"])[:, -1], np.array(got["curves"]["loss"]))  # the epoch-end record
        # 4 examples a measurement apart: j+1 of them seen in the record j of epoch 1 (one gradient each)
        assert [round(4 * g) for g in within["grad_evals"][0]] == [1, 2, 3, 4]
    assert len(epochs) > 2 and min(epochs) < 300  # runs stop at different epochs (the queue hands lanes over)


def test_keys_at_their_default_keep_the_curves_as_they_were(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text(MEASURED)
    store = Store(tmp_path / "m.sqlite")
    run_sweep(cfg.load(p), store, progress=False)
    assert all(set(r["curves"]) == {"loss", "grad_norm", "val_loss", "wrong", "loss_evals", "grad_evals"}
               for r in store.runs()[0])


def test_a_sweep_measures_every_k_epochs_and_judges_the_goal_there(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text(MEASURED.replace("max_epochs = 300", "max_epochs = 301") + "measure_every = 7\n")
    flat = cfg.load(p)
    store = Store(tmp_path / "m.sqlite")
    run_sweep(flat, store, progress=False)
    stored = {r["run_id"]: r for r in store.runs()[0]}
    stopped = 0
    for run in cfg.expand(flat):
        got, dense = stored[run_id(run.as_dict())], alone(run)  # dense: measured every epoch
        e, loss = got["epochs"], got["curves"]["loss"]
        on = [i for i, v in enumerate(loss) if v is not None]  # 0-based: epoch i + 1 was measured
        assert on == [i for i in range(e) if (i + 1) % 7 == 0 or i + 1 == 301], (e, on)
        # the same training: the loss where measured is the dense run's (which may stop earlier)
        d = np.asarray(dense.history.loss)
        both = [i for i in on if i < int(dense.epochs)]
        np.testing.assert_allclose([loss[i] for i in both], d[both], rtol=1e-10)
        if got["stop_reason"] == "goal":
            stopped += 1
            first = next(i for i in on if loss[i] <= 0.02)  # the goal's first measured epoch, found by brute force
            assert e == first + 1 and e % 7 == 0 and e >= int(dense.epochs)  # not before the goal held
        # the evaluations are counted every epoch, measured or not: one gradient per example
        assert got["curves"]["grad_evals"] == pytest.approx(list(range(1, e + 1)))
    assert stopped >= 2


def test_a_sweep_on_fanns_own_files_stores_test_error(tmp_path):
    from grids import fann_sets

    folder = fann_sets()
    flat = cfg.validate({"name": "p8", "seeds": [0, 1], "data.path": str(folder / "parity8.train"),
                         "data.test_path": str(folder / "parity8.test"), "network.hidden": [16],
                         "optimizer.learning_rate": 0.7, "training.batch_size": 1, "training.max_epochs": 5,
                         "training.measure_bit_fails": 0.35})
    with Store(tmp_path / "p8.sqlite") as store:
        assert run_sweep(flat, store, progress=False)["written"] == 2
        runs, _ = store.runs()
    from bpkit import datasets, saved

    test = datasets.load_fann(folder / "parity8.test")
    for r in runs:
        assert r["test_loss"] is not None and 0 <= r["test_acc"] <= 1 and r["val_loss"] is None
        assert len(r["config"]["data.test_sha256"]) == 64
        # the final bit fails, against a brute-force count from the run trained again (5 epochs: the same net)
        net = saved.from_store(tmp_path / "p8.sqlite", r["run_id"]).saved
        out = net.predict(test.x_train)
        brute = sum(abs(t - o) >= 0.35 for o, t in zip(out.ravel(), test.y_train.ravel(), strict=True))
        assert r["curves"]["bit_fails"][1] == -1 and r["curves"]["bit_fails"][2] == brute
    from bpkit import report  # no success criterion: the fixed-budget report, test error with its interval

    text = report.write(tmp_path / "p8.sqlite")[0].read_text()
    errors = sorted(1 - r["test_acc"] for r in runs)
    row = next(ln for ln in text.splitlines() if ln.startswith("| sgd batch=1 |"))
    assert f"| {np.mean(errors):.4g} [{errors[0]:.4g}, {errors[1]:.4g}] |" in row  # 2 seeds: the interval spans them
    fails = sorted(r["curves"]["bit_fails"][2] for r in runs)
    assert "test bit fails" in text and f"| {np.mean(fails):.4g} [{fails[0]:.4g}, {fails[1]:.4g}] |" in row


def test_the_library_and_the_command_line_sweep_a_config_alike(tmp_path):
    # A run's last bits depend on how many runs share its compiled chunk, so run_sweep and `bpkit sweep` share
    # one default chunking (bpkit.sweep.CHUNK_SIZE, MEMORY_BUDGET_MB): a config gives the same numbers either way.
    from bpkit.cli import main

    config = tmp_path / "p.toml"
    config.write_text('name = "p"\nseeds = [0, 1, 2, 3, 4, 5]\n[data]\nname = "parity5"\n[network]\nhidden = [16]\n'
                      '[optimizer]\nlearning_rate = 2.0\n[training]\nmax_epochs = 300\nstall_epochs = 0\n')
    flat = cfg.load(config)
    with Store(tmp_path / "lib.sqlite") as store:
        run_sweep(flat, store, progress=False)
        library = {r["run_id"]: (r["train_loss"], r["curves"]["loss"]) for r in store.runs()[0]}
    assert main(["sweep", str(config), "--store", str(tmp_path / "cli.sqlite"), "--no-progress"]) == 0
    with Store(tmp_path / "cli.sqlite", readonly=True) as store:
        command = {r["run_id"]: (r["train_loss"], r["curves"]["loss"]) for r in store.runs()[0]}
    assert command == library
    with Store(tmp_path / "padded.sqlite") as store:  # the old library default, chunks padded to 64 runs
        run_sweep(flat, store, chunk_size=64, memory_budget_mb=None, progress=False)
        padded = {r["run_id"]: r["train_loss"] for r in store.runs()[0]}
    assert any(padded[k] != library[k][0] for k in library)  # other chunks, other last bits: the test can tell


TUNED_GRID = textwrap.dedent("""\
    name = "staged"
    seeds = [0, 1, 2, 3, 4, 5, 6, 7]
    [data]
    name = "xor"
    [network]
    hidden = [2]
    activation = "tanh"
    [training]
    max_epochs = 300
    goal = 0.02
    stall_epochs = 0
    [compare]
    tune_seeds = [0, 1, 2]
    [[axis.method]]
    label = "gd"
    optimizer.learning_rate = [0.3, 1.0, 3.0]
    [[axis.method]]
    label = "rprop"
    optimizer.name = "rprop"
    optimizer.learning_rate = [0.01, 0.1]
    """)


def test_tuning_first_runs_the_chosen_settings_alone_and_chooses_as_the_whole_grid(tmp_path):
    # compare.tune_first: every setting on the tuning seeds, then each method's chosen setting alone on the others.
    # Chunks of 64 (padded) in both sweeps, so every run's bits are the same in either store.
    from bpkit import compare

    config = tmp_path / "s.toml"
    config.write_text(TUNED_GRID)
    flat = cfg.load(config)
    stores = {}
    for name, staged in (("whole", False), ("staged", True)):
        with Store(tmp_path / f"{name}.sqlite") as store:
            counts = run_sweep({**flat, "compare.tune_first": staged}, store, chunk_size=64, memory_budget_mb=None,
                               progress=False)
            stores[name] = store.runs()[0]
        assert counts["written"] == counts["runs"] == {"whole": 5 * 8, "staged": 5 * 3 + 2 * 5}[name]
    staged_ids = {r["run_id"] for r in stores["staged"]}
    assert staged_ids < {r["run_id"] for r in stores["whole"]}
    per_config = {}
    for r in stores["staged"]:
        per_config.setdefault(r["config_hash"], set()).add(r["seed"])
    assert sorted(len(s) for s in per_config.values()) == [3, 3, 3, 8, 8]  # the two chosen settings on every seed
    answers = {name: compare.answers(runs, tune_seeds=[0, 1, 2]) for name, runs in
               ((n, sorted(stores[n], key=lambda r: r["run_id"])) for n in stores)}
    for a, b in zip(answers["whole"], answers["staged"], strict=True):
        assert (a.method, a.chosen.setting, a.chosen.seeds, a.success, a.cost_cu) == \
               (b.method, b.chosen.setting, b.chosen.seeds, b.success, b.cost_cu)
        assert a.chosen.seeds == (3, 4, 5, 6, 7) and a.held_out
    with Store(tmp_path / "staged.sqlite") as store:  # resumed: nothing left to run
        assert run_sweep({**flat, "compare.tune_first": True}, store, chunk_size=64, memory_budget_mb=None,
                         progress=False)["written"] == 0


@pytest.mark.parametrize("seeds, dear", [(8, False), (14, False), (14, True)])
def test_tuning_first_compiles_each_program_once_for_both_stages(tmp_path, monkeypatch, seeds, dear):
    # The chunks sweep defaults give (each group whole): a second-stage group that fits one chunk of the first
    # stage's keeps that chunk, so the program it needs is the one the first compiled (the persistent cache hands
    # it over).  A larger one (11 held-out seeds against the first stage's 9 and 6 runs) goes through that program
    # in several chunks where a pass is cheap (XOR, 300 epochs), and gets a chunk of its own size, one call, where
    # a pass is dear (here: every pass).
    from bpkit import engine, plan

    if dear:
        monkeypatch.setattr(plan, "STAGE_PASS_WORK", 0)
    compiled, calls = [], []
    real_compile, real_run = engine._compile, engine.run_chunk
    monkeypatch.setattr(engine, "_compile", lambda g: compiled.append((g.members[0].static_key(), g.chunk))
                        or real_compile(g))
    monkeypatch.setattr(engine, "run_chunk", lambda *a: calls.append(a[2]) or real_run(*a))
    config = tmp_path / "s.toml"
    config.write_text(TUNED_GRID.replace("seeds = [0, 1, 2, 3, 4, 5, 6, 7]", f"seeds = {list(range(seeds))}"))
    with Store(tmp_path / "s.sqlite") as store:
        counts = run_sweep({**cfg.load(config), "compare.tune_first": True}, store, progress=False)
    held_out = seeds - 3
    assert counts["runs"] == 5 * 3 + 2 * held_out
    first, second = compiled[:2], compiled[2:]
    assert [c for _, c in first] == [3 * 3, 2 * 3] and len(second) == 2
    if dear:
        assert [c for _, c in second] == [held_out, held_out] and not set(second) & set(first)
        assert calls == [9, 6, held_out, held_out]  # every group in one call
    else:
        assert set(second) <= set(first)
        assert calls == [9, 6] + [9] * -(-held_out // 9) + [6] * -(-held_out // 6)


def test_tuning_first_needs_tuning_seeds_and_a_criterion(tmp_path):
    with pytest.raises(ValueError, match="needs compare.tune_seeds"):
        cfg.validate({"seeds": [0, 1], "compare.tune_first": True})
    flat = cfg.validate({"seeds": [0, 1], "compare.tune_seeds": [0], "compare.tune_first": True})
    with Store(tmp_path / "n.sqlite") as store, pytest.raises(ValueError, match="has no criterion"):
        run_sweep(flat, store, progress=False)


@pytest.mark.parametrize("lanes", ["auto", 3])  # a lane per run, and runs queued through 3 lanes
def test_a_sweep_stores_dead_units_at_the_start_and_the_end(tmp_path, lanes):
    # training.measure_dead_units: [dead hidden units at the start, at the end], the start counted again here
    # from the run's own initial weights; under full-batch gradient descent a dead ReLU unit gets no gradient,
    # so it is still dead at the end.
    import jax.numpy as jnp

    from bpkit import analysis, engine, experiment, spec

    config = tmp_path / "d.toml"
    config.write_text('name = "d"\nseeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n[data]\nname = "xor"\n[network]\n'
                      'hidden = [2]\nactivation = "relu"\n[optimizer]\nlearning_rate = 3.0\n[training]\n'
                      'max_epochs = 200\nstall_epochs = 0\nmeasure_dead_units = true\n')
    with Store(tmp_path / "d.sqlite") as store:
        run_sweep(cfg.load(config), store, progress=False, lanes=lanes)
        runs = store.runs()[0]
    starts = []
    for r in runs:
        start, end = r["curves"]["dead_units"]
        run = spec.from_flat(r["config"])
        ex = experiment.build(run, experiment.load_data(run))
        params = engine.lane_alone(ex, run).params
        assert start == int(analysis.dead_units(ex.net, params, jnp.asarray(ex.arrays["x"])))
        assert start <= end <= 2
        starts.append(start)
    assert len(set(starts)) > 1  # some runs start with a dead unit and some without: the count is tested
    with Store(tmp_path / "n.sqlite") as store:  # off by default: nothing stored
        run_sweep(cfg.load(config, ["training.measure_dead_units=false"]), store, progress=False)
        assert all("dead_units" not in r["curves"] for r in store.runs()[0])
