"""Client speed: `AudioClient.generate()` vs `curl` for the same request, side by side in one run.

Starts a local offline endpoint, then sends the same request (same prompt, parameters and seed)
through both, interleaved and alternating which goes first, after one untimed warm-up each.

- wall: seconds from sending to having the audio (curl: the whole process, writing the file;
  client: `generate()` returning a decoded `Clip`); the goal is client/curl <= 1.05.
- overhead: wall minus the endpoint's own generation and queue seconds (X-Generation-Seconds,
  X-Queue-Seconds), i.e. what each side adds around the generation. It is steadier than the
  wall ratio, which the 3-6 s CPU generation dominates.

Both answers are checked to be the same audio. Run: python bench/client_vs_curl.py [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.protocol import GENERATION_SECONDS_HEADER, QUEUE_SECONDS_HEADER

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' child servers
from server_process import ServerNotReady, start_offline_child, stop_child


def start_endpoint(folder: Path, api_key: str) -> tuple[subprocess.Popen, str]:
    try:
        process, url, _ = start_offline_child(folder, api_key)
    except ServerNotReady as exc:
        sys.exit(str(exc))
    return process, url


def server_seconds(headers: dict[str, str]) -> float:
    """Generation plus queue seconds from response headers (names in any case)."""
    headers = {name.lower(): value for name, value in headers.items()}
    return sum(
        float(headers.get(name.lower(), 0)) for name in (GENERATION_SECONDS_HEADER, QUEUE_SECONDS_HEADER)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    curl = shutil.which("curl")
    if curl is None:
        sys.exit("curl is not installed: this benchmark compares against it")
    request = GenerationRequest.build(
        "Rain on a tin roof", audio_end_in_s=args.seconds, num_inference_steps=args.steps, seed=1
    )
    api_key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="client-vs-curl-") as tmp:
        folder = Path(tmp)
        # curl reads the key from a 0600 file (-H @file), so it is not on its command line.
        header_file = folder / "headers"
        header_file.write_text(f"Authorization: Bearer {api_key}\nContent-Type: application/json\n")
        header_file.chmod(0o600)
        body_file = folder / "body.json"
        body_file.write_text(json.dumps(request.to_body()))
        process, url = start_endpoint(folder, api_key)
        try:
            client = AudioClient(url, api_key)
            curl_command = [
                curl, "-sS", "--fail", "-X", "POST", "-H", f"@{header_file}",
                "--data-binary", f"@{body_file}", "-D", str(folder / "response-headers"),
                "-o", str(folder / "curl.wav"), client.generations_url,
            ]  # fmt: skip

            def by_client() -> tuple[float, float, Clip]:
                started = time.perf_counter()
                clip = client.generate(request)
                wall = time.perf_counter() - started
                return wall, clip.timings.get("generation", 0) + clip.timings.get("queue", 0), clip

            def by_curl() -> tuple[float, float, Path]:
                started = time.perf_counter()
                subprocess.run(curl_command, check=True)
                wall = time.perf_counter() - started
                lines = (folder / "response-headers").read_text().splitlines()
                headers = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                return wall, server_seconds(headers), folder / "curl.wav"

            _, _, clip = by_client()  # warm-up: the model's first run, the client's connection
            _, _, saved = by_curl()
            same = np.array_equal(clip.samples, Clip.load(saved).samples)

            rows = []
            print(f"{args.rounds} rounds of {args.seconds:g} s / {args.steps} steps, same seed; seconds")
            print(f"{'round':>5} {'client wall':>12} {'curl wall':>10} {'client ovh':>11} {'curl ovh':>9}")
            for round_ in range(args.rounds):
                order = (by_client, by_curl) if round_ % 2 == 0 else (by_curl, by_client)
                measured = {fn.__name__: fn()[:2] for fn in order}
                (cw, cs), (uw, us) = measured["by_client"], measured["by_curl"]
                rows.append((cw, uw, cw - cs, uw - us))
                print(f"{round_ + 1:>5} {cw:>12.3f} {uw:>10.3f} {cw - cs:>11.4f} {uw - us:>9.4f}")
            client.close()
        finally:
            stop_child(process)

    client_wall, curl_wall, client_overhead, curl_overhead = (
        statistics.median(column) for column in zip(*rows, strict=True)
    )
    print(f"median wall: client {client_wall:.3f} s, curl {curl_wall:.3f} s")
    print(f"median overhead around the generation: client {client_overhead * 1000:.1f} ms, "
          f"curl {curl_overhead * 1000:.1f} ms")  # fmt: skip
    # Each round pairs two requests sent back to back, so the per-round ratio cancels slow drifts.
    ratio = statistics.median(client / curl for client, curl, _, _ in rows)
    verdict = "met" if ratio <= 1.05 else "NOT met"
    print(f"client/curl wall ratio (median of rounds): {ratio:.3f}x (goal <= 1.05x: {verdict})")
    # The same ratio with the generation's own run-to-run noise taken out: the median
    # generation plus what each side adds around it.
    generations = [cw - co for cw, _, co, _ in rows] + [uw - uo for _, uw, _, uo in rows]
    generation = statistics.median(generations)
    steady = (generation + client_overhead) / (generation + curl_overhead)
    print(f"client/curl ratio at the median generation time ({generation:.3f} s): {steady:.4f}x")
    print(f"same audio from both: {same}")


if __name__ == "__main__":
    main()
