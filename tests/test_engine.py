"""bpkit.engine: one program per group, compiled ahead or not, the same numbers; memory handed back."""

import sys
import textwrap

import numpy as np
import pytest
from grids import CONFIG, stored_table

from bpkit import config as cfg
from bpkit.store import Store
from bpkit.sweep import run_sweep

# grids.CONFIG with two programs: its two activations would share one (a tiny epoch), two batch sizes cannot.
TWO_PROGRAMS = CONFIG.replace('activation = ["tanh", "sigmoid"]', 'activation = "tanh"').replace(
    "batch_size = 2", "batch_size = [2, 4]")


@pytest.fixture
def two_programs(tmp_path):
    p = tmp_path / "two.toml"
    p.write_text(TWO_PROGRAMS)
    return p


def test_each_finished_group_hands_its_freed_memory_back(tmp_path, two_programs, monkeypatch):
    from bpkit import engine

    assert engine._malloc_trim() is not None or not sys.platform.startswith("linux")  # glibc has it
    trims = []
    monkeypatch.setattr(engine, "_malloc_trim", lambda: trims.append)
    chunks = 0
    for _ in engine.run_grid(cfg.expand(cfg.load(two_programs)), chunk_size=4):
        chunks += 1
        assert len(trims) == (chunks - 1) // 2  # 6 runs a group, in chunks of 4 and 2: trimmed after its last
    assert chunks == 4 and trims == [0, 0]  # two groups, each trimmed once it is done


@pytest.mark.parametrize("ahead", [0, 2])
def test_one_compile_per_static_group(tmp_path, two_programs, monkeypatch, ahead):
    from bpkit import engine

    compiled, keep, calls = {}, [], []
    real_compile, real_chunk = engine.compile_group, engine.run_chunk

    def compiling(program, part, chunk, columns, codes):  # may run in a worker thread, in any order
        made = real_compile(program, part, chunk, columns, codes)
        keep.append(made)  # kept alive, so no two programs share an id; keep[-1] may be another thread's
        compiled[id(made)] = part[0].static_key()
        return made

    def chunk_recording(program, part, chunk, columns, codes):
        calls.append((compiled[id(program)], part[0].static_key()))
        return real_chunk(program, part, chunk, columns, codes)

    monkeypatch.setattr(engine, "compile_group", compiling)
    monkeypatch.setattr(engine, "run_chunk", chunk_recording)
    flat = cfg.load(two_programs)
    runs = cfg.expand(flat)
    out = [o for chunk in engine.run_grid(runs, chunk_size=2, compile_ahead=ahead) for _, o in chunk]
    assert len(compiled) == 2 and len(set(compiled.values())) == 2  # one program per group, compiled once...
    assert len(calls) == 6 and all(program == group for program, group in calls)  # ...run on its own chunks
    assert [g for g, _ in calls] == [calls[0][0]] * 3 + [calls[3][0]] * 3  # 3 chunks each, group by group
    reference = [o for chunk in engine.run_grid(runs, chunk_size=2, compile_ahead=1 - min(ahead, 1))
                 for _, o in chunk]  # compiled ahead in a thread or not: the same numbers, bitwise
    for a, b in zip(out, reference, strict=True):
        np.testing.assert_array_equal(a.curves["loss"], b.curves["loss"])


def test_cg_and_scg_settings_are_one_program_each(tmp_path):
    # Every method gets a tuning grid: CG's Wolfe c2 and SCG's lambda_1 are vmapped like a learning rate.
    p = tmp_path / "tune.toml"
    p.write_text(textwrap.dedent("""
        name = "tune"
        seeds = [0, 1]
        [data]
        name = "xor"
        [network]
        hidden = [2]
        activation = "tanh"
        [training]
        batch_size = "full"
        max_epochs = 40
        [[axis.method]]
        optimizer.name = "cg"
        optimizer.c2 = [0.1, 0.9]
        [[axis.method]]
        optimizer.name = "scg"
        optimizer.lambda_init = [1e-8, 1e-2]
    """))
    store = Store(tmp_path / "tune.sqlite")
    assert run_sweep(cfg.load(p), store, progress=False)["groups"] == 2
    runs, _ = store.runs()
    by_setting = {(r["config"]["optimizer.name"], r["config"]["optimizer.c2"], r["config"]["optimizer.lambda_init"],
                   r["config"]["seed"]): r["train_loss"] for r in runs}
    assert len(by_setting) == 8
    assert by_setting[("cg", 0.1, 5e-7, 0)] != by_setting[("cg", 0.9, 5e-7, 0)]
    assert by_setting[("scg", 0.4, 1e-8, 0)] != by_setting[("scg", 0.4, 1e-2, 0)]


CG_VARIANTS = """
name = "variants"
seeds = [0, 1, 2]
[data]
name = "xor"
[network]
hidden = [2]
activation = "tanh"
[optimizer]
name = "cg"
beta = %s
powell_beale = %s
[training]
batch_size = "full"
max_epochs = 60
"""


@pytest.mark.parametrize("lanes", [2, None])
def test_cg_variants_share_one_program_and_each_run_equals_its_variant_alone(tmp_path, lanes):
    # beta and Powell-Beale are data (an int32 code per run), so the six variants of a study are one program;
    # a run's numbers must not depend on which variants share its chunk.
    grid = tmp_path / "grid.toml"
    grid.write_text(CG_VARIANTS % ('["fr", "pr+", "hs", "dy"]', "[false, true]"))
    store = Store(tmp_path / "grid.sqlite")
    assert run_sweep(cfg.load(grid), store, chunk_size=8, lanes=lanes, progress=False)["groups"] == 1
    together = stored_table(store)
    assert len(together) == 24
    alone = {}
    for beta, pb in (("pr+", "true"), ("hs", "true"), ("dy", "false")):
        one = tmp_path / f"{beta}{pb}.toml"
        one.write_text(CG_VARIANTS % (f'"{beta}"', pb))
        s = Store(tmp_path / f"{beta}{pb}.sqlite")
        run_sweep(cfg.load(one), s, chunk_size=8, lanes=lanes, progress=False)
        alone.update(stored_table(s))
    shared = alone.keys() & together.keys()
    assert len(shared) == 9
    for k in shared:
        assert together[k] == alone[k], k  # bitwise, on CPU
    runs, _ = store.runs()
    curve = {(r["config"]["optimizer.beta"], r["config"]["optimizer.powell_beale"], r["config"]["seed"]):
             r["curves"]["loss"] for r in runs}
    betas = ("fr", "pr+", "hs", "dy")  # the codes reach the program: each beta, and Powell-Beale, trains its own way
    assert any(len({str(curve[b, False, s]) for b in betas}) == 4 for s in range(3))
    assert any(curve[b, False, s] != curve[b, True, s] for b in betas for s in range(3))
