"""bpkit.report: a store to report.md, tables and figures, in the grid's order, with its notes."""

import textwrap

import pytest
from grids import AXES, MEASURED

from bpkit import config as cfg
from bpkit.store import Store, run_id
from bpkit.sweep import run_sweep


def test_report_from_a_small_store(tmp_path):
    from bpkit import report

    p = tmp_path / "a.toml"
    p.write_text(AXES)
    store = Store(tmp_path / "r.sqlite")
    run_sweep(cfg.load(p), store, progress=False)
    runs, _ = store.runs()
    store.close()
    path, figs, errors = report.write(tmp_path / "r.sqlite")
    text = path.read_text()
    # heatmap, cost, curves and runtime distributions (no setting varies: no sensitivity figure); PNG + SVG
    assert not errors and len(figs) == 8 and all(f.stat().st_size > 1000 for f in figs)
    appendix = text.split("## Appendix")[1]
    rows = [ln for ln in appendix.splitlines() if ln.startswith("| xor")]
    assert len(rows) == 4  # 2 methods x 2 activations
    # Each row's 40-20-40 count is recomputed here from the stored runs, independently: a run met
    # the criterion if its stored count of wrong outputs was 0 at some epoch.
    for row in rows:
        problem, method, act, setting, n, _, _, _, met = (c.strip() for c in row.strip("|").split("|")[:9])
        mine = [r for r in runs if r["config"]["label"] == method and r["config"]["network.activation"] == act]
        ok = sum(0 in r["curves"]["wrong"] for r in mine)
        assert (n, met) == (str(len(mine)), f"{ok}/{len(mine)}")


def test_report_of_a_missing_or_empty_store(tmp_path):
    from bpkit import report

    with pytest.raises(ValueError, match="no such results store"):
        report.write(tmp_path / "none.sqlite")
    s = Store(tmp_path / "empty.sqlite")
    s.create()
    s.close()
    with pytest.raises(ValueError, match="holds no readable runs"):
        report.write(tmp_path / "empty.sqlite")


def test_reports_read_runs_in_grid_order_though_groups_store_them_otherwise(tmp_path):
    # CG FR and CG PR share one compiled group, so the store holds them before BP, which sits between
    # them in the grid; the store records the grid's order, which reports and the studies' answer rows follow.
    grid = tmp_path / "grid.toml"
    grid.write_text(textwrap.dedent("""
        seeds = [0, 1]
        [data]
        name = "xor"
        [network]
        hidden = [2]
        [training]
        batch_size = "full"
        max_epochs = 5
        [[axis.method]]
        optimizer.name = "cg"
        optimizer.beta = "fr"
        [[axis.method]]
        optimizer.name = "sgd"
        [[axis.method]]
        optimizer.name = "cg"
        optimizer.beta = "pr"
    """))
    flat = cfg.load(grid)
    store = Store(tmp_path / "grid.sqlite")
    assert run_sweep(flat, store, progress=False)["groups"] == 2
    expected = [run_id(r.as_dict()) for r in cfg.expand(flat)]
    written, _ = store.runs(order="written")
    assert [r["run_id"] for r in written] != expected  # the groups' order: FR, PR, then BP
    # The sweep recorded its grid in the store, so `bpkit report STORE`, which has no config, reads that order too.
    assert list(store.grid_order()) == expected
    from bpkit import report

    assert [r["run_id"] for r in report.load_runs(tmp_path / "grid.sqlite")[0]] == expected
    # A second grid into the same store: its new runs follow the first grid's; a resumed sweep adds nothing.
    flat2 = cfg.load(grid, ["seeds=[2, 0]"])
    run_sweep(flat2, store, progress=False)
    run_sweep(flat, store, progress=False)
    second = [i for i in (run_id(r.as_dict()) for r in cfg.expand(flat2)) if i not in expected]
    assert list(store.grid_order()) == expected + second
    assert [r["run_id"] for r in report.load_runs(tmp_path / "grid.sqlite")[0]] == expected + second
    # A store written before grids were recorded: the written order, as before.
    store._db.execute("DELETE FROM meta WHERE key LIKE 'grid:%'")
    store._db.commit()
    assert store.grid_order() == {}
    assert [r["run_id"] for r in report.load_runs(tmp_path / "grid.sqlite")[0]] == \
        [r["run_id"] for r in store.runs(order="written")[0]]


def test_a_report_says_when_its_runs_were_measured_unequally(tmp_path):
    from bpkit import report

    p = tmp_path / "m.toml"
    p.write_text(MEASURED.replace("seeds = [0, 1, 2, 3]", "seeds = [0, 1]").replace("max_epochs = 300",
                                                                                    "max_epochs = 60"))
    alike = tmp_path / "alike.sqlite"
    run_sweep(cfg.load(p), Store(alike), progress=False)
    run_sweep(cfg.load(p, ["training.batch_size=full", "training.measure_every=5"]), Store(alike), progress=False)
    assert "Measured unequally" not in report.write(alike)[0].read_text()  # a full batch is measured every epoch
    mixed = tmp_path / "mixed.sqlite"
    run_sweep(cfg.load(p), Store(mixed), progress=False)
    run_sweep(cfg.load(p, ["training.measures_per_epoch=4"]), Store(mixed), progress=False)
    text = report.write(mixed)[0].read_text()
    assert "judged every epoch (4 runs), 4 times an epoch (4 runs)" in text
