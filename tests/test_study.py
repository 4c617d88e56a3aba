"""bpkit.study: a study's README sections in their listed order, and its summary rows equal to the stored runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_study_sections_are_replaced_in_place_and_inserted_in_order(tmp_path):
    from bpkit.study import Folder

    (tmp_path / "studies.txt").write_text((ROOT / "experiments" / "studies.txt").read_text())
    study = Folder(tmp_path)
    study.write_section("cg_family", "six")
    study.write_section("gradient_equivalence", "one")
    study.write_section("saturation", "four")
    study.write_section("saturation", "four again")
    study.write_timing("took 1 min")
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# bpkit experiments\n\n<!-- reproduce_all -->\ntook 1 min")
    assert text.index("one") < text.index("four again") < text.index("six")
    assert "four\n" not in text and text.count("<!-- study:saturation -->") == 1


def test_run_grid_summaries_equal_the_sweep_store(tmp_path):
    # The studies' grid runner and bpkit's sweep share one program per group: same runs, same numbers.
    from bpkit import config as cfg
    from bpkit import study
    from bpkit.store import Store
    from bpkit.sweep import run_sweep

    flat = cfg.load(ROOT / "experiments" / "xor.toml", ["seeds=[0, 1, 2]", "training.max_epochs=300"])
    rows = study.run_grid(flat, lambda run, out, data: {
        "key": (run.network.activation, run.optimizer.learning_rate, run.seed),
        "epochs": out["epochs"], "stop": out["stop_reason"], "loss": float(out["loss"][-1])}, progress=False)
    store = Store(tmp_path / "s.sqlite")
    run_sweep(flat, store, chunk_size=6, progress=False)  # run_grid's chunk: one group's 6 runs, same program shape
    stored = {(r["config"]["network.activation"], r["config"]["optimizer.learning_rate"], r["seed"]): r
              for r in store.runs()[0]}
    assert len(rows) == len(stored) == 12
    for row in rows:
        r = stored[row["key"]]
        assert (row["epochs"], row["stop"]) == (r["epochs"], r["stop_reason"])
        assert row["loss"] == r["curves"]["loss"][-1]
