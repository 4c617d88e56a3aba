"""The README's two commands stay true: CI runs the test one, verbatim."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_commands():
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_opens_with_install_plus_main_job_and_install_plus_tests():
    main_job, tests = readme_commands()[:2]
    assert main_job.startswith("python3 -m pip install -e .") and "bpkit sweep experiments/flagship.toml" in main_job
    assert (ROOT / "experiments" / "flagship.toml").exists()
    assert tests.startswith('python3 -m pip install -e ".[test]"') and "pytest" in tests


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "experiments").glob("*.toml")))
def test_shipped_configs_are_valid(name, monkeypatch):
    from bpkit import config as cfg

    monkeypatch.chdir(ROOT)  # the configs name their data files from the repository root
    text = (ROOT / "experiments" / name).read_text()
    if "../shared/fann-datasets/" in text and not (ROOT.parent / "shared" / "fann-datasets").is_dir():
        pytest.skip(f"{name} trains on FANN's benchmark sets, which are not at {ROOT.parent / 'shared'}")
    assert cfg.expand(cfg.load(ROOT / "experiments" / name)), name


def test_every_study_is_reproduced_and_has_its_readme_section_and_figures():
    from bpkit.study import studies

    scripts = sorted(p.stem for p in (ROOT / "experiments").glob("*.py"))
    order = studies(ROOT / "experiments")
    reproduce = (ROOT / "scripts" / "reproduce_all").read_text()
    assert 'studies("experiments")' in reproduce and "experiments/answers.py" in reproduce
    readme = (ROOT / "experiments" / "README.md").read_text()
    assert [n for n in order if f"<!-- study:{n} -->" in readme] == order  # the sections, in the listed order
    for name in scripts:
        if name == "answers":  # not a study: the table on top, built from the studies' results
            assert "<!-- answers -->" in readme and "<!-- /answers -->" in readme
            continue
        assert name in order, f"experiments/studies.txt does not list {name}, so scripts/reproduce_all skips it"
        assert f"<!-- study:{name} -->" in readme, f"experiments/README.md lacks the section of {name}"
        section = readme.split(f"<!-- study:{name} -->")[1].split(f"<!-- /study:{name} -->")[0]
        assert f"python3 experiments/{name}.py" in section  # each section names its command
        for fig in re.findall(r"\(figures/([^)]+)\)", section):
            assert (ROOT / "experiments" / "figures" / fig).exists(), fig
        assert "{conclusion}" not in section and "Conclusion" in section


def test_ci_runs_the_readme_test_command_then_the_linter_and_the_type_checker():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci
    assert any(line.startswith("python3 -m ruff check .") for line in ci)
    assert any(line.startswith("python3 -m mypy") for line in ci)


def test_every_lint_exception_says_why():
    # A `noqa` silences one finding on one line; it carries its reason, as the ignores in pyproject.toml do.
    bare = [f"{path.relative_to(ROOT)}:{i}" for folder in ("bpkit", "experiments", "scripts", "tests")
            for path in sorted((ROOT / folder).rglob("*.py"))
            for i, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(r"#\s*noqa\b", line) and not re.search(r"#\s*noqa: [A-Z0-9, ]+\s+\S", line)]
    assert bare == []


def test_the_import_graph_has_no_cycle():
    """Data flows one way: every bpkit module imports only modules below it (a cycle would have none below)."""
    import ast

    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (ROOT / "bpkit").rglob("*.py")}
    imports = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bpkit"):
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                found |= set(subs) or {node.module}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in modules}
        imports[name] = found - {name, "bpkit"}
    done: set[str] = set()

    def visit(m, path=()):
        assert m not in path, f"import cycle: {' -> '.join(path + (m,))}"
        if m not in done:
            for d in imports.get(m, ()):
                visit(d, path + (m,))
            done.add(m)

    for m in imports:
        visit(m)


def test_runtime_dependencies_have_lower_bounds_and_no_peers():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        assert ">=" in dep, dep
        assert not dep.startswith(("torch", "scipy", "optimistix")), dep
