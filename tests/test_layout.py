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
