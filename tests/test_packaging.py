"""The packaging files agree with each other, and the committed notebooks are clean."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"soundfile": "pysoundfile"}  # conda-forge names that differ from PyPI's
PIP_ONLY = {"lameenc"}  # not on conda-forge: environment.yml's pip section installs it


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in environment["channels"]
    conda = [item for item in environment["dependencies"] if isinstance(item, str)]
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert "pip" in conda
    pip_only = [spec for spec in pip_section if _name(spec) in PIP_ONLY]
    conda_specs = {_name(spec): spec for spec in conda + pip_only}
    for requirement in project["dependencies"]:
        name = _name(requirement)
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda_specs, f"{name} is in pyproject.toml but not environment.yml"
        # Same lower bound on both sides.
        assert requirement[len(name) :] == conda_specs[conda_name][len(conda_name) :], requirement
    extra_names = {_name(spec) for spec in conda} - {"python", "pip"}
    assert not PIP_ONLY & {_name(spec) for spec in conda}
    core_names = {CONDA_NAMES.get(_name(r), _name(r)) for r in project["dependencies"]}
    assert extra_names <= core_names, f"environment.yml lists more than pyproject: {extra_names - core_names}"
    assert pip_section[-1] == "-e .[local,test]"


def test_notebooks_are_committed_without_outputs():
    import json

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        assert "widgets" not in notebook.get("metadata", {}), path.name
        for cell in notebook["cells"]:
            assert not cell.get("outputs") and not cell.get("execution_count"), path.name
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                shell_escapes = [line for line in lines if line.lstrip().startswith(("!", "%%bash", "%sx"))]
                assert not shell_escapes, f"{path.name}: call Python, not the shell: {shell_escapes}"
                assert len(lines) <= 15, f"{path.name}: a code cell has {len(lines)} lines (max 15)"
