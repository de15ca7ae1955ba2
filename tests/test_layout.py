"""The repository's shape: the layout, the dependency lists in step, notebooks clean."""
import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI's
CONDA_NAMES = {"docker-py": "docker"}


def test_top_level_layout():
    for name in ("notebooks", "helpers", "data", "tests", "environment.yml", "pyproject.toml",
                 "README.md", ".ci/run", "course"):
        assert (ROOT / name).exists(), name
    assert (ROOT / "helpers" / "__init__.py").exists()


def _names(specs):
    return {CONDA_NAMES.get(n, n) for n in (re.split(r"[<>=! ]", s, maxsplit=1)[0].strip()
                                             for s in specs) if n and n != "python"}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = _names(project["dependencies"] + project["optional-dependencies"]["test"])
    conda = _names([d for d in yaml.safe_load((ROOT / "environment.yml").read_text())
                    ["dependencies"] if isinstance(d, str)])
    assert pip == conda, f"only in pyproject: {pip - conda}; only in environment.yml: {conda - pip}"


def test_notebooks_named_clean_and_with_kernelspec():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks and notebooks[0].name == "00-setup.ipynb"
    for path in notebooks:
        assert re.fullmatch(r"0[0-7]-[a-z0-9-]+\.ipynb", path.name), path.name
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", path.name
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def test_readme_names_the_two_commands_and_every_notebook():
    readme = (ROOT / "README.md").read_text()
    assert "./course start" in readme and "./course test" in readme
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert path.name in readme, f"README does not list {path.name}"
    assert "bash .ci/run" in readme or "./course test" in (ROOT / ".ci/run").read_text()


# Which role may import which: the lessons' foundation imports nothing above it, and only the
# panels and the `python -m helpers.…` commands sit on top of everything.
ROLES = {"course": {"course", "exercises"}, "exercises": {"course", "exercises", "labs"},
         "measure": {"course", "measure"}, "labs": {"course", "measure", "labs", "exercises"}}
ENTRY_POINTS = {"bench": "measure", "images": "course", "setup": "course"}
# Set-up prepares everything a lesson needs, the VM's kernel included.
EXCEPTIONS = {"course/setup.py": {"measure"}}


def _imports(path: Path) -> set:
    text = path.read_text()
    return set(re.findall(r"^\s*from helpers\.(\w+)", text, re.M)) | \
        set(re.findall(r"^\s*import helpers\.(\w+)", text, re.M))


def test_helpers_are_grouped_by_role():
    helpers = ROOT / "helpers"
    assert {p.name for p in helpers.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(ROLES)
    top = {p.stem for p in helpers.glob("*.py")} - {"__init__"}
    assert top == set(ENTRY_POINTS), f"modules outside a role's folder: {top - set(ENTRY_POINTS)}"
    for role, allowed in ROLES.items():
        assert (helpers / role / "__init__.py").exists()
        for path in (helpers / role).glob("*.py"):
            wrong = _imports(path) - allowed - EXCEPTIONS.get(f"{role}/{path.name}", set())
            assert not wrong, f"{path.relative_to(ROOT)} imports from {wrong}"


def test_entry_points_are_thin_and_answer_help():
    import subprocess
    import sys
    for name, role in ENTRY_POINTS.items():
        text = (ROOT / "helpers" / f"{name}.py").read_text()
        assert f"from helpers.{role}.{name} import main" in text and len(text.splitlines()) < 10
        done = subprocess.run([sys.executable, "-m", f"helpers.{name}", "--help"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and f"python -m helpers.{name}" in done.stdout, done.stderr


def test_notebooks_import_from_the_role_folders():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            for module in re.findall(r"from helpers\.(\w+)", source):
                assert module in ROLES, f"{path.name} imports helpers.{module}"
