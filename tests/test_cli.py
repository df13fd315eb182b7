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
from fault_server import FaultServer, audio, error, not_audio, stall

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.cli import main
from flexaudio_helpers.deploy import store
from flexaudio_helpers.params import GenerationRequest

KEY = f"sk-cli-{secrets.token_hex(16)}"


@pytest.fixture(autouse=True)
def no_saved_state(tmp_path, monkeypatch):
    """Endpoints saved by this test only (never the person's own)."""
    monkeypatch.setenv("FLEXAUDIO_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def fault(monkeypatch):
    with FaultServer() as server:
        monkeypatch.setenv("INFERENCE_URL", server.url)
        monkeypatch.setenv("INFERENCE_API_KEY", KEY)
        yield server


def one_error_line(stderr: str) -> str:
    """The single line a failure prints (after the line naming the endpoint used; no traceback)."""
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("flexaudio: using ")]
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
    line = one_error_line(capsys.readouterr().err)  # in the command's words: its flags
    assert "--seconds 99.0 is not allowed" in line and "parameters." not in line
    assert main(["generate", "x", "-o", str(tmp_path / "x.mp3")]) == 2
    assert ".wav or .flac" in one_error_line(capsys.readouterr().err)
    assert main(["generate", "x", "-o", str(tmp_path / "x.wav"), "--api-key-env", "NO_SUCH_VARIABLE"]) == 2
    assert "NO_SUCH_VARIABLE" in one_error_line(capsys.readouterr().err)
    assert main(["generate", "x"]) == 2  # argparse: -o is required
    assert "-o/--output" in capsys.readouterr().err
    assert fault.requests == []

    monkeypatch.delenv("INFERENCE_URL")
    monkeypatch.chdir(tmp_path)  # and no .env here, nor a saved endpoint
    assert main(["generate", "x", "-o", str(tmp_path / "x.wav")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "pass --url URL, set INFERENCE_URL" in line and "flexaudio serve" in line
    assert "url=" not in line
    assert not (tmp_path / "x.wav").exists()


def test_generate_finds_the_endpoint_as_the_notebooks_do_and_says_where(fault, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("INFERENCE_URL")
    monkeypatch.delenv("INFERENCE_API_KEY")
    monkeypatch.chdir(tmp_path)
    store.save_record("local", "stable-audio-open", url=fault.url + "/v1", api_key=KEY)
    assert main(["generate", "x", "-o", str(tmp_path / "saved.wav")]) == 0
    assert "flexaudio: using the saved endpoint 'stable-audio-open' (local)" in capsys.readouterr().err
    assert fault.generations[-1].headers["Authorization"] == f"Bearer {KEY}"

    other = f"sk-env-{secrets.token_hex(8)}"
    monkeypatch.setenv("INFERENCE_URL", fault.url)  # the environment comes first
    monkeypatch.setenv("INFERENCE_API_KEY", other)
    assert main(["generate", "x", "-o", str(tmp_path / "env.wav")]) == 0
    assert "flexaudio: using INFERENCE_URL (environment or .env)" in capsys.readouterr().err
    assert fault.generations[-1].headers["Authorization"] == f"Bearer {other}"


def test_errors_name_the_flags_not_python_arguments(fault, tmp_path, capsys):
    fault.play(stall(5))
    assert main(["generate", "x", "-o", str(tmp_path / "x.wav"), "--timeout", "0.3", "--retries", "0"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "--timeout SECONDS" in line and "AudioClient(" not in line


@pytest.mark.slow
def test_serve_status_generate_stop_from_the_shell(tmp_path, monkeypatch, capsys):
    """The notebooks' lifecycle as commands, on this machine's offline model."""
    for name in ("INFERENCE_URL", "INFERENCE_API_KEY", "FLEXAUDIO_TARGET", "FLEXAUDIO_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    where = ["--target", "offline", "--name", "cli-tour"]
    try:
        assert main(["serve", *where]) == 0
        assert "cli-tour is ready" in capsys.readouterr().out
        assert main(["status", *where]) == 0
        assert "cli-tour on local: running at http://127.0.0.1:" in capsys.readouterr().out
        out = tmp_path / "clip.wav"
        assert (
            main(["generate", "x", "-o", str(out), "--name", "cli-tour", "--seconds", "1", "--steps", "2"])
            == 0
        )
        assert "using the saved endpoint 'cli-tour' (local)" in capsys.readouterr().err
        assert Clip.load(out).offline
    finally:
        assert main(["stop", *where]) == 0
    assert "Stopped the local server cli-tour." in capsys.readouterr().out
    assert main(["status", *where]) == 0
    assert "cli-tour on local: stopped" in capsys.readouterr().out


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
    using, *failures = printed.err.strip().splitlines()
    assert using.startswith("flexaudio: using INFERENCE_URL")
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
