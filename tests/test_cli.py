"""The ``flexaudio`` command, run in-process (`main(argv)`) and once as a real process.

Happy paths use the real offline endpoint; failures use the fault-injecting server of
`tests/fault_server.py`, which counts the requests it receives.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from fault_server import FaultServer, audio, error, not_audio

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.cli import main
from flexaudio_helpers.params import GenerationRequest

KEY = f"sk-cli-{secrets.token_hex(16)}"


@pytest.fixture
def fault(monkeypatch):
    with FaultServer() as server:
        monkeypatch.setenv("INFERENCE_URL", server.url)
        monkeypatch.setenv("INFERENCE_API_KEY", KEY)
        yield server


def one_error_line(stderr: str) -> str:
    """The single line a failure prints (and nothing else: no traceback)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("flexaudio: error: ")
    return lines[0]


def test_generate_then_plot(offline_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFERENCE_URL", offline_server.url)
    monkeypatch.setenv("INFERENCE_API_KEY", offline_server.api_key)
    out = tmp_path / "rain.wav"
    argv = ["generate", "Rain on a tin roof", "-o", str(out), "--seconds", "1", "--steps", "2"]
    assert main([*argv, "--guidance", "7", "--seed", "42", "--negative", "muffled"]) == 0

    clip = Clip.load(out)
    assert clip.request == GenerationRequest.build(
        "Rain on a tin roof",
        audio_end_in_s=1.0,
        num_inference_steps=2,
        guidance_scale=7.0,
        seed=42,
        negative_prompt="muffled",
    )
    assert clip.seed == 42 and clip.duration == pytest.approx(1.0)
    printed = capsys.readouterr()
    assert printed.out.startswith(f"wrote {out}: 1.00 s") and "offline model" in printed.out
    assert offline_server.api_key not in printed.out + printed.err

    assert main(["plot", str(out)]) == 0
    image = out.with_suffix(".png")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rain.png", "rain.wav"]  # no temporary file


@pytest.mark.parametrize(
    ("answer", "expected", "requests"),
    [
        (error(401, "wrong API key"), "(HTTP 401): wrong API key", 1),
        (error(503, "the queue is full", **{"Retry-After": "0"}), "after 2 attempts", 2),
        (not_audio(), "HTML instead of audio", 1),
    ],
    ids=["401", "busy", "not-audio"],
)
def test_a_failed_generation_prints_one_line_and_writes_nothing(
    fault, tmp_path, capsys, answer, expected, requests
):
    fault.play(then=answer)
    out = tmp_path / "clip.wav"
    assert main(["generate", "x", "-o", str(out), "--retries", "1"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert expected in line and KEY not in line
    assert len(fault.generations) == requests
    assert list(tmp_path.iterdir()) == []


def test_bad_input_exits_2_before_any_request(fault, tmp_path, monkeypatch, capsys):
    assert main(["generate", "x", "-o", str(tmp_path / "x.wav"), "--seconds", "99"]) == 2
    assert "audio_end_in_s" in one_error_line(capsys.readouterr().err)
    assert main(["generate", "x", "-o", str(tmp_path / "x.mp3")]) == 2
    assert ".wav or .flac" in one_error_line(capsys.readouterr().err)
    assert main(["generate", "x", "-o", str(tmp_path / "x.wav"), "--api-key-env", "NO_SUCH_VARIABLE"]) == 2
    assert "NO_SUCH_VARIABLE" in one_error_line(capsys.readouterr().err)
    assert main(["generate", "x"]) == 2  # argparse: -o is required
    assert "-o/--output" in capsys.readouterr().err
    assert fault.requests == []

    monkeypatch.delenv("INFERENCE_URL")
    monkeypatch.chdir(tmp_path)  # and no .env here
    assert main(["generate", "x", "-o", str(tmp_path / "x.wav")]) == 2
    assert "INFERENCE_URL" in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_batch_writes_a_manifest_and_a_rerun_completes_only_the_missing(fault, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '"one"\n'
        '{"inputs": "two", "parameters": {"seed": 2}}\n'
        "# a comment, then a blank line\n\n"
        "three, as plain text\n"
        '{"inputs": "four", "parameters": {"steps": 3}}\n'
    )
    out_dir = tmp_path / "clips"
    fault.play(audio(), error(500, "boom"))
    argv = ["batch", str(prompts), "-o", str(out_dir), "--steps", "2", "--concurrency", "1", "--no-progress"]
    assert main(argv) == 1

    printed = capsys.readouterr()
    assert printed.out.startswith(f"2 of 4 clips in {out_dir}; manifest: {out_dir / 'manifest.jsonl'}")
    failures = printed.err.strip().splitlines()
    assert failures[0].startswith("flexaudio: item 1 failed:") and "(HTTP 500): boom" in failures[0]
    assert failures[1].startswith("flexaudio: item 3 failed:") and "unknown parameter 'steps'" in failures[1]
    bodies = [r.json() for r in fault.generations]
    assert bodies == [
        {"inputs": "one", "parameters": {"num_inference_steps": 2}},
        {"inputs": "two", "parameters": {"num_inference_steps": 2, "seed": 2}},
        {"inputs": "three, as plain text", "parameters": {"num_inference_steps": 2}},
    ]
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "0000-one.wav",
        "0002-three-as-plain-text.wav",
        "manifest.jsonl",
    ]

    # The manifest is itself a batch file: running it again generates only item 1.
    assert main(["batch", str(out_dir / "manifest.jsonl"), "-o", str(out_dir), "--no-progress"]) == 1
    assert capsys.readouterr().out.startswith(f"3 of 4 clips in {out_dir} (2 already there)")
    assert len(fault.generations) == 4 and fault.generations[-1].json()["inputs"] == "two"
    lines = [json.loads(line) for line in (out_dir / "manifest.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["reused", "ok", "reused", "failed"]
    assert (out_dir / lines[1]["path"]).is_file()


def test_batch_shows_a_progress_bar(fault, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a\nb\n")
    assert main(["batch", str(prompts), "-o", str(tmp_path / "out")]) == 0
    assert "generating: 100%" in capsys.readouterr().err
    assert len(fault.generations) == 2


def test_batch_refuses_a_broken_file(fault, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('"fine"\n{"inputs": "oops",\n')
    assert main(["batch", str(prompts), "-o", str(tmp_path / "out")]) == 2
    assert f"{prompts}:2: not valid JSON" in one_error_line(capsys.readouterr().err)
    assert fault.requests == [] and not (tmp_path / "out").exists()


def test_as_a_real_process(tmp_path):
    """The installed console script and `python -m`: exit status and one line, no traceback."""
    script = Path(sys.executable).with_name("flexaudio")
    shown = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and "generate" in shown.stdout and "batch" in shown.stdout

    with FaultServer(then=error(401, "wrong API key")) as server:
        environment = {"INFERENCE_URL": server.url, "INFERENCE_API_KEY": KEY, "PATH": "/usr/bin:/bin"}
        command = [
            sys.executable,
            "-m",
            "flexaudio_helpers.cli",
            "generate",
            "x",
            "-o",
            str(tmp_path / "x.wav"),
        ]
        failed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and KEY not in failed.stdout + failed.stderr
    assert "(HTTP 401): wrong API key" in one_error_line(failed.stderr)
    assert list(tmp_path.iterdir()) == []
