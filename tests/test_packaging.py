"""The packaging files agree with each other, the committed notebooks are clean, and the facts they state
are the ones checked against their sources (issue 27)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
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


# ----- facts the tour states (issue 27): each checked against its source, each failed on the old text ---
def _notebook_cells(stem: str, kind: str | None = None) -> list[str]:
    import json

    (path,) = (ROOT / "notebooks").glob(f"{stem}_*.ipynb")
    cells = json.loads(path.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if kind is None or cell["cell_type"] == kind]


def _lower_bound(package: str) -> tuple[int, ...]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    (spec,) = [r for r in requirements if _name(r) == package]
    return tuple(int(part) for part in re.search(r">=([\d.]+)", spec).group(1).split("."))


def test_from_pretrained_dtype_is_read_by_the_lowest_diffusers_allowed():
    """diffusers reads `from_pretrained(..., dtype=)` from 0.40 on (PRs #14162, #14205); before, not."""
    sources = [*_notebook_cells("06", "code"), (ROOT / "flexaudio_helpers/serving/pipeline.py").read_text()]
    assert any(re.search(r"from_pretrained\([^)]*\bdtype=", source) for source in sources)
    assert _lower_bound("diffusers") >= (0, 40)


# (notebook, a wrong claim that must be gone or None, what must be said instead)
STATED_FACTS = [
    ("06", "whatever device runs the model", "initial_seed()"),  # torchsde draws on the model's device
    ("04", "on the same kind of GPU", "a CPU and a CUDA GPU draw different random numbers"),
    ("06", None, "Install `torchsde`"),
    ("03", "`running` means ready", "the model may\nstill be loading"),
    ("02", "cannot be fetched again", "FlexAI documents no way to fetch it again"),
    ("08", "Delete it when\nyou are done", "does not document a command\nthat deletes an endpoint"),
    ("04", "NVIDIA A40", "section 5.4"),  # the paper's own speed figures
    ("06", "on an A40", "measure it on your card"),
    ("04", "expect a beat near 128 bpm", "what to listen for and check"),
    ("05", "around 7 it follows it closely", "listen for how closely"),
    ("04", None, "noise level σ"),  # 04 introduces σ and the scheduler before 05 and 06 use them
    ("04", None, "**LUFS** (loudness units relative to full scale"),
    ("04", None, "**roll-off**: the\nfrequency below which 85 %"),
    ("04", None, "Freesound"),  # where the training data came from
    ("04", None, "stable-audio-open-demo"),  # real samples, for learners who only hear noise
    ("05", None, "notebook 06 explains"),  # audio-to-audio, before 06 explains it
    ("01", None, "huggingface_hub #2844"),  # fine-grained tokens and gated repos
]


@pytest.mark.parametrize(("stem", "wrong", "right"), STATED_FACTS, ids=lambda value: str(value)[:30])
def test_the_tour_states_the_checked_fact(stem, wrong, right):
    text = "\n".join(_notebook_cells(stem))
    assert wrong is None or wrong not in text, f"notebook {stem} still says {wrong!r}"
    assert right in text, f"notebook {stem} should say {right!r}"


def test_peak_gpu_memory_is_measured_from_a_reset():
    code = "\n".join(_notebook_cells("06", "code"))
    assert code.index("torch.cuda.reset_peak_memory_stats()") < code.index(
        "torch.cuda.max_memory_allocated()"
    )


def test_the_flexai_delete_shown_is_marked_undocumented_beside_scale_to_zero():
    (cell,) = [text for text in _notebook_cells("08", "markdown") if "flexai inference delete" in text]
    assert "not in FlexAI's public docs" in cell and "scale to zero" in cell


def test_no_text_claims_one_seed_gives_one_clip_on_any_device():
    texts = [
        (ROOT / "README.md").read_text(),
        *(p.read_text() for p in (ROOT / "flexaudio_helpers").rglob("*.py")),
    ]
    for text in texts:
        assert "same noise whatever device" not in text and "| same seed, same clip |" not in text
