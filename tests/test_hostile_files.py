"""Files from elsewhere are input too (issue 13): clips, prompt files and flags a user did not write.

Real files on disk, the real CLI, and a real fault server on 127.0.0.1 for the one batch.
"""

from __future__ import annotations

import base64
import json
import time
import zlib

import numpy as np
import pytest
import soundfile as sf
from fault_server import FaultServer, audio, flac_bomb_bytes

from flexaudio_helpers.audio import MAX_METADATA_BYTES, Clip
from flexaudio_helpers.cli import main as cli
from flexaudio_helpers.cli import read_batch
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.errors import FlexAudioError, InvalidAudioFile
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.protocol import MAX_JSON_DEPTH


def _wav_with_comment(path, comment: str) -> None:
    with sf.SoundFile(path, "w", 44_100, 2, subtype="PCM_16", format="WAV") as stream:
        stream.comment = comment
        stream.write(np.zeros((4410, 2), dtype=np.float32))


@pytest.mark.parametrize(
    "comment",
    [
        '{"flexaudio": 5}',
        "[1, 2, 3]",
        '{"flexaudio": {"seed": "abc"}}',
        '{"flexaudio": {"seed": -1}}',
        '{"flexaudio": {"request": {"inputs": 5}}}',
        '{"flexaudio": {"request": "rain"}}',
        '{"flexaudio": {"offline": "yes"}}',
    ],
)
def test_metadata_of_the_wrong_shape_is_ignored_with_a_warning(tmp_path, comment):
    path = tmp_path / "foreign.wav"
    _wav_with_comment(path, comment)
    with pytest.warns(UserWarning, match="ignoring its flexaudio metadata"):
        clip = Clip.load(path)
    assert clip.request is None and clip.seed is None and clip.frames == 4410


def test_a_compressed_file_that_would_decode_to_gigabytes_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.flac"
    path.write_bytes(flac_bomb_bytes())  # 240 s x 8 channels x 96 kHz of silence, a few hundred KB
    started = time.monotonic()
    with pytest.raises(FlexAudioError, match=r"8 channels at 96000 Hz.*over the limit"):
        Clip.load(path)
    assert time.monotonic() - started < 5, "refused from the header, not after decoding"


def test_metadata_that_would_inflate_past_the_cap_is_refused_naming_the_file(tmp_path):
    # A few KB of zlib that inflate to 400 MiB, in the form `save` packs long requests.
    bomb = zlib.compressobj(9)
    packed = b"".join(bomb.compress(bytes(2**20)) for _ in range(400)) + bomb.flush()
    path = tmp_path / "bomb.flac"
    with sf.SoundFile(path, "w", 44_100, 1, format="FLAC") as stream:
        stream.comment = "zlib:" + base64.b64encode(packed).decode()
        stream.write(np.zeros(4410, dtype=np.float32))
    assert path.stat().st_size < 1_000_000
    with pytest.raises(InvalidAudioFile, match=rf"bomb.flac.*inflates past {MAX_METADATA_BYTES} bytes"):
        Clip.load(path)
    # A long request that `save` packs still comes back.
    request = GenerationRequest.build("rain " * 390, negative_prompt="wind " * 390)
    Clip(np.zeros((1, 441), np.float32), 44_100, request).save(tmp_path / "long.wav")
    assert Clip.load(tmp_path / "long.wav").request == request


@pytest.mark.parametrize("content", [b"", b"not audio at all", b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_loading_a_file_that_is_not_audio_raises_a_typed_error_naming_it(tmp_path, content):
    path = tmp_path / "notes.wav"
    path.write_bytes(content)
    with pytest.raises(InvalidAudioFile, match=r"cannot read '.*notes\.wav' as audio"):
        Clip.load(path)
    with pytest.raises(FileNotFoundError):
        Clip.load(tmp_path / "missing.wav")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 960, 100_000])  # 960 parses, then breaks repr()
def test_a_deeply_nested_json_line_exits_2_naming_file_and_line(tmp_path, capsys, depth):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('"a fine prompt"\n{"inputs": ' + "[" * depth + "]" * depth + "}\n")
    assert cli(["batch", str(prompts), "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"{prompts}:2: JSON nested too deeply (over {MAX_JSON_DEPTH} levels)" in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_prompts_file_that_is_not_utf8_exits_2_naming_file_and_line(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"rain on a roof\nwind in \xff\xfe trees\n")
    assert cli(["batch", str(prompts), "-o", str(tmp_path / "out")]) == 2
    assert f"{prompts}:2: not UTF-8" in capsys.readouterr().err


def test_a_form_feed_or_next_line_character_does_not_split_a_prompt(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("rain\fon a roof\nwind\x85in trees\r\n", encoding="utf-8")
    assert read_batch(prompts) == ["rain\fon a roof", "wind\x85in trees"]


def test_a_prompt_with_a_nul_is_saved_once_and_reused_on_the_next_run(tmp_path):
    prompt = "\x00rain on a tin roof"
    with FaultServer(then=audio()) as server, AudioClient(server.url, "test-key-0123456789") as client:
        first = client.generate_many([prompt], progress=False, out_dir=tmp_path)
        second = client.generate_many([prompt], progress=False, out_dir=tmp_path)
        sent = len(server.generations)
    assert first[0].ok, first[0].error
    assert second[0].reused, "the saved clip is found again, not generated on every run"
    assert sent == 1
    assert Clip.load(first[0].path).request.inputs == prompt  # the metadata keeps the exact prompt
    assert json.loads((tmp_path / "manifest.jsonl").read_text())["status"] == "reused"


def test_plot_refuses_an_absurd_dpi_with_the_allowed_range(tmp_path, capsys):
    Clip(np.zeros((2, 4410), dtype=np.float32), 44_100).save(tmp_path / "clip.wav")
    code = cli(["plot", str(tmp_path / "clip.wav"), "--dpi", "100000", "-o", str(tmp_path / "c.png")])
    assert code == 2
    assert "--dpi 100000 is not allowed: use 10 to 1200" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()
