"""Scans the executed copies of the notebooks for leaked secrets, and checks what they show.

`make test` runs the notebooks under nbmake on copies (test-artifacts/notebooks), with known fake
values for the HF token and the local API key (conftest's NOTEBOOK_ENVIRONMENT), then this file in
the same worker (conftest orders it after them; it is skipped in a session without the notebooks).
"""

from __future__ import annotations

import json
import re
import stat

from conftest import NOTEBOOK_COPIES, NOTEBOOK_ENVIRONMENT, ROOT


def _secrets() -> list[str]:
    values = [NOTEBOOK_ENVIRONMENT["HF_TOKEN"], NOTEBOOK_ENVIRONMENT["FLEXAUDIO_API_KEY"]]
    assert all(len(value) >= 16 for value in values), "the notebooks run with long fake secrets to look for"
    return values


def test_every_notebook_was_executed_without_errors():
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        executed = json.loads((NOTEBOOK_COPIES / source.name).read_text())
        code_cells = [cell for cell in executed["cells"] if cell["cell_type"] == "code"]
        assert code_cells and all(cell.get("execution_count") for cell in code_cells), source.name
        for cell in code_cells:
            assert not any(output["output_type"] == "error" for output in cell.get("outputs", [])), (
                source.name
            )


def test_no_secret_in_any_output_or_written_file():
    secrets = _secrets()
    artifacts = NOTEBOOK_COPIES.parent
    private_holders = []
    for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found = [secret for secret in secrets if secret.encode() in data]
        if not found:
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert path.suffix != ".ipynb", f"a secret appears in the outputs of {path.name}"
        assert mode == 0o600, f"{path} holds a secret with mode {oct(mode)}"
        private_holders.append(path)
    # The local endpoint keeps its key and the HF token in 0600 state files; nowhere else.
    assert all("state" in path.parts for path in private_holders), private_holders


def _output_text(name: str) -> str:
    executed = json.loads((NOTEBOOK_COPIES / name).read_text())
    parts = []
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(value) for value in output.get("data", {}).values())
    return "\n".join("".join(part) if isinstance(part, list) else part for part in parts)


# The notebooks' cells hold no asserts (learners read them), so their outputs are checked here instead.


def test_the_explorer_notebook_shows_its_clip_sweep_comparison_and_manifest():
    text = _output_text("05_parameter_explorer.ipynb")
    assert "Clip #1" in text, "the generated clip's status is missing"
    assert "2 of 2 clips" in text, "the sweep did not finish both clips"
    assert "A: clip #2" in text and "B: clip #3" in text, "compare did not show the sweep's two takes"
    assert "manifest.jsonl" in text and '"request"' in text, "the manifest and its first line are missing"


def test_the_generate_notebook_shows_the_curl_command_and_three_clips():
    text = _output_text("04_generate_examples.ipynb")
    assert "curl -X POST" in text and "$INFERENCE_API_KEY" in text and '"seed": 42' in text
    assert text.count("<audio") >= 3, "each of the three examples should play"


def test_the_local_notebook_runs_the_diffusers_call_and_splits_the_time():
    text = _output_text("06_local_gpu.ipynb")
    assert "torch.Size([2, " in text, "the diffusers call's audio shape is missing"
    assert re.search(r"denoising \d+\.\d s, decoding \d+\.\d s", text), "generate_here's timing is missing"
