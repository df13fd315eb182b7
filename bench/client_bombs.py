"""The client's memory ceiling against hostile servers (issue 13): peak RSS per probe.

Starts the fault server's bombs on 127.0.0.1 (tests/fault_server.py) in this process, then runs
`AudioClient.generate()` against each in a fresh client process and reads that process's peak RSS
(`fault_server.peak_rss_mb`, VmHWM on Linux), so the figure is the client's alone:

- endless: a 200 whose chunked body never ends (the server stops at --endless-mib or 120 s);
- gzip: a 1 MB gzip body that inflates to 1 GiB;
- flac: a valid FLAC of silence that decodes to 240 s x 8 channels x 96 kHz;
- title: a 280 KB HTML 500 page of unclosed <title> tags (CPU, not memory: seconds to parse);
- baseline: a normal 0.1 s WAV, for what the client costs anyway.

Run: python bench/client_bombs.py   (each probe is cut off after --timeout seconds)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fault_server import FaultServer, audio, endless, flac_bomb, gzip_bomb, title_page

TESTS = sys.path[0]  # the client process imports fault_server.peak_rss_mb from here

ENDLESS_LIMIT = [4 * 2**30]  # bytes the endless server sends at most (--endless-mib)
PROBES = {
    "baseline": audio,
    "endless": lambda: endless(ENDLESS_LIMIT[0]),
    "gzip": gzip_bomb,
    "flac": flac_bomb,
    "title": lambda: title_page(280_000),
}

CLIENT = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[2])
    from fault_server import peak_rss_mb
    from flexaudio_helpers.client import AudioClient
    started = time.perf_counter()
    try:
        AudioClient(sys.argv[1], "bench-key-0123456789", max_retries=0).generate("x")
        outcome = "audio"
    except Exception as exc:
        outcome = type(exc).__name__
    print(json.dumps({
        "outcome": outcome,
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(peak_rss_mb()),
    }))
    """
)


def probe(name: str, timeout: float) -> dict:
    """Run one client process against the bomb `name`; its outcome, time and peak RSS."""
    with FaultServer(then=PROBES[name]()) as server:
        try:
            finished = subprocess.run(
                [sys.executable, "-c", CLIENT, server.url, TESTS],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"outcome": f"still running after {timeout:g} s (killed)"}
    if finished.returncode != 0:
        return {"outcome": f"client crashed: {finished.stderr.strip().splitlines()[-1]}"}
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per probe")
    parser.add_argument("probes", nargs="*", help=f"some of {', '.join(PROBES)} (default: all)")
    parser.add_argument(
        "--endless-mib", type=int, default=4096, help="MiB the endless body stops at (default 4096)"
    )
    args = parser.parse_args()
    ENDLESS_LIMIT[0] = args.endless_mib * 2**20
    print("| probe | outcome | seconds | client peak RSS |")
    print("|---|---|---|---|")
    for name in args.probes or PROBES:
        result = probe(name, args.timeout)
        rss = f"{result['peak_rss_mb']} MiB" if "peak_rss_mb" in result else "-"
        print(f"| {name} | {result['outcome']} | {result.get('seconds', '-')} | {rss} |", flush=True)


if __name__ == "__main__":
    main()
