"""Faults: the endpoint dies in the middle of a batch, and nothing already done is lost.

A real endpoint (offline model, 127.0.0.1) is killed with SIGKILL while
`AudioClient.generate_many(out_dir=...)` runs. The results must say which items failed; the
files already written must be whole (valid audio, with their request and seed in the
metadata), with no partial file beside them; and a re-run of the requests listed in
``manifest.jsonl`` against a live endpoint must generate only the missing items.

A stale state file (its process gone) is replaced by ``serve``: that fault is covered by
tests/test_deploy_local.py::test_stale_state_is_replaced_and_only_the_recorded_process_is_stopped.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import start_server, stop_server

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.batch import MANIFEST_NAME
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.errors import EndpointUnavailable
from flexaudio_helpers.params import GenerationRequest

pytestmark = pytest.mark.slow  # an endpoint of its own, killed mid-batch

ITEMS = 6
REQUESTS = [
    GenerationRequest.build(f"fault test clip {n}", num_inference_steps=2, audio_end_in_s=1.0, seed=100 + n)
    for n in range(ITEMS)
]


def _manifest(folder) -> list[dict]:
    path = folder / MANIFEST_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait_for_done(folder, count: int, batch: threading.Thread, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while sum(line["status"] == "ok" for line in _manifest(folder)) < count:
        assert batch.is_alive(), "the batch ended before the endpoint was killed"
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.05)


def _check_saved(result) -> None:
    """A saved clip is whole: it loads, and carries its own request and seed."""
    assert result.path is not None and result.path.is_file()
    saved = Clip.load(result.path)
    assert saved.request == result.request
    assert saved.seed == result.request.parameters.seed
    assert saved.samples.shape[0] == 2 and saved.samples.shape[1] > 0
    assert saved.sample_rate == 44_100


@pytest.fixture
def doomed_server(tmp_path):
    server = start_server(tmp_path)
    yield server
    if server.process.poll() is None:
        stop_server(server)


def test_killing_the_endpoint_mid_batch_loses_nothing_and_a_rerun_completes_the_rest(
    doomed_server, offline_server, tmp_path
):
    out = tmp_path / "clips"
    results = []
    client = AudioClient(doomed_server.url, doomed_server.api_key, max_retries=1, backoff=0.1)

    def run_batch():
        results.extend(client.generate_many(REQUESTS, concurrency=2, progress=False, out_dir=out))

    batch = threading.Thread(target=run_batch)
    batch.start()
    _wait_for_done(out, 2, batch)
    doomed_server.process.kill()  # SIGKILL: no goodbye, mid-generation
    doomed_server.process.wait()
    batch.join(timeout=120)
    assert not batch.is_alive(), "generate_many hung after the endpoint died"
    client.close()

    # The results say which items failed, and why; none is missing.
    assert [result.index for result in results] == list(range(ITEMS))
    done = [result for result in results if result.ok]
    failed = [result for result in results if not result.ok]
    assert len(done) >= 2 and failed, [(r.index, r.ok) for r in results]
    for result in failed:
        assert isinstance(result.error, EndpointUnavailable), repr(result.error)
        assert result.path is None and result.request is not None
    # What was written is whole, and nothing half-written lies beside it.
    for result in done:
        _check_saved(result)
    written = {path.name for path in out.iterdir()}
    assert written == {MANIFEST_NAME} | {result.path.name for result in done}, written
    manifest = _manifest(out)
    assert [line["status"] for line in manifest] == ["ok" if r.ok else "failed" for r in results]
    assert all(line["error"] for line in manifest if line["status"] == "failed")
    before = {result.path.name: result.path.read_bytes() for result in done}

    # A re-run of the manifest's requests, against a live endpoint, generates only the missing ones.
    with AudioClient(offline_server.url, offline_server.api_key) as client:
        rerun = client.generate_many(
            [line["request"] for line in manifest], concurrency=2, progress=False, out_dir=out
        )
    print(
        f"\nkilled mid-batch: {len(done)} of {ITEMS} clips saved whole, {len(failed)} reported failed "
        f"({', '.join(sorted({type(r.error).__name__ for r in failed}))}); the re-run generated "
        f"{sum(not r.reused for r in rerun)} and reused {sum(r.reused for r in rerun)}"
    )
    assert all(result.ok for result in rerun), [repr(result.error) for result in rerun if not result.ok]
    assert sorted(result.index for result in rerun if result.reused) == sorted(
        result.index for result in done
    )
    for result in rerun:
        _check_saved(result)
    assert {name: (out / name).read_bytes() for name in before} == before, "a finished clip was rewritten"
    assert [line["status"] for line in _manifest(out)] == [
        "reused" if result.reused else "ok" for result in rerun
    ]
