"""Load on the local endpoint (127.0.0.1, offline model): many clients, a short queue, bounded.

    python bench/load.py                       # 32 clients, 3 rounds, its own endpoint (--max-waiting 2)
    python bench/load.py --clients 32 --requests 2 --rounds 2 --steps 2 --json load.json

Each round has two phases, every client in its own thread, all released together:
- burst: each client sends its requests once with plain httpx, no retries. Every request must
  end in a WAV or a 503 with Retry-After before its timeout: none hangs, none is lost.
- retried: each client uses `AudioClient` (retries honour Retry-After): every request must be
  served. Retries are counted from the client's log.
The endpoint's RSS (psutil) is taken after each round; per request, the queue wait
(X-Queue-Seconds) and the generation time (X-Generation-Seconds) are kept and summarised
(p50/p95). Then a cancellation check: clients that disconnect mid-generation or while
waiting must not hold up the next request, which is served, and the endpoint's log must show
each abandoned request dropped.

`tests/test_load.py` runs a small version of the same functions.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.protocol import (
    GENERATION_SECONDS_HEADER,
    GENERATIONS_ROUTE,
    HEALTH_ROUTE,
    QUEUE_SECONDS_HEADER,
)
from flexaudio_helpers.retry import log as retry_log

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' child servers
from server_process import start_offline_child, stop_child

DROPPED_LINE = "client disconnected before its audio was ready"  # what the endpoint logs


@dataclass
class Endpoint:
    url: str
    api_key: str
    process: subprocess.Popen
    log_path: Path

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_child(self.process)


def start_endpoint(folder: Path, *, max_waiting: int, timeout: float = 180) -> Endpoint:
    """``python -m flexaudio_helpers.serving --model offline`` on 127.0.0.1; returns once /health answers."""
    key = f"load-key-{secrets.token_hex(8)}"
    process, url, log_path = start_offline_child(
        folder, key, "--max-waiting", str(max_waiting), timeout=timeout
    )
    return Endpoint(url, key, process, log_path)


@dataclass
class Outcome:
    """How one request ended."""

    phase: str
    client: int
    index: int
    status: int | str  # HTTP status, or the name of the exception that ended it
    wall_s: float
    retry_after: str | None = None
    queue_s: float | None = None
    generation_s: float | None = None
    retries: int = 0
    wav: bool = False


def _header(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    return float(value) if value is not None else None


def _run_clients(clients: int, work, overall_timeout: float) -> list:
    """Run `work(client)` for each client in its own thread, all released at once."""
    start = threading.Barrier(clients)

    def released(client: int):
        start.wait()
        return work(client)

    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="load-client") as pool:
        futures = [pool.submit(released, client) for client in range(clients)]
        _, not_done = wait(futures, timeout=overall_timeout)
        if not_done:  # a hang: report it, never wait forever
            raise TimeoutError(
                f"{len(not_done)} of {clients} clients still running after {overall_timeout} s"
            )
        return [outcome for future in futures for outcome in future.result()]


def burst(endpoint: Endpoint, *, clients: int, requests: int, body: dict, timeout: float) -> list[Outcome]:
    """Every client sends `requests` requests once each, no retries."""
    headers = {"Authorization": f"Bearer {endpoint.api_key}"}

    def client_work(client: int) -> list[Outcome]:
        outcomes = []
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0)) as http:
            for index in range(requests):
                started = time.perf_counter()
                try:
                    response = http.post(endpoint.url + GENERATIONS_ROUTE, json=body, headers=headers)
                except httpx.HTTPError as exc:
                    outcomes.append(
                        Outcome("burst", client, index, type(exc).__name__, time.perf_counter() - started)
                    )
                    continue
                wav = (
                    response.status_code == 200
                    and response.content[:4] == b"RIFF"
                    and response.content[8:12] == b"WAVE"
                )
                outcomes.append(
                    Outcome(
                        "burst",
                        client,
                        index,
                        response.status_code,
                        time.perf_counter() - started,
                        retry_after=response.headers.get("retry-after"),
                        queue_s=_header(response, QUEUE_SECONDS_HEADER),
                        generation_s=_header(response, GENERATION_SECONDS_HEADER),
                        wav=wav,
                    )
                )
        return outcomes

    return _run_clients(clients, client_work, overall_timeout=timeout * requests + 60)


class _RetryCounter(logging.Handler):
    """Counts AudioClient's "retrying in" log lines per thread (`emit` runs under the handler's lock)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.by_thread: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying in" in record.getMessage():
            self.by_thread[record.threadName] = self.by_thread.get(record.threadName, 0) + 1


def retried(
    endpoint: Endpoint, *, clients: int, requests: int, body: dict, timeout: float, max_retries: int = 60
) -> list[Outcome]:
    """Every client sends `requests` requests through `AudioClient`, which retries 503s."""
    counter = _RetryCounter()
    client_log = retry_log  # where AudioClient's retry policy logs each "retrying in"
    previous_level = client_log.level
    client_log.setLevel(logging.INFO)
    client_log.addHandler(counter)

    def client_work(client: int) -> list[Outcome]:
        outcomes = []
        thread = threading.current_thread().name
        with AudioClient(
            endpoint.url, endpoint.api_key, read_timeout=timeout, max_retries=max_retries
        ) as audio:
            for index in range(requests):
                before = counter.by_thread.get(thread, 0)
                started = time.perf_counter()
                try:
                    clip = audio.generate(body["inputs"], **body.get("parameters", {}))
                except Exception as exc:
                    status, clip = type(exc).__name__, None
                else:
                    status = 200
                outcomes.append(
                    Outcome(
                        "retried",
                        client,
                        index,
                        status,
                        time.perf_counter() - started,
                        queue_s=clip.timings.get("queue") if clip else None,
                        generation_s=clip.timings.get("generation") if clip else None,
                        retries=counter.by_thread.get(thread, 0) - before,
                        wav=clip is not None and clip.samples.size > 0,
                    )
                )
        return outcomes

    try:
        # Each retry waits what Retry-After says; the whole phase is bounded all the same.
        return _run_clients(clients, client_work, overall_timeout=(timeout + 60) * requests * clients)
    finally:
        client_log.removeHandler(counter)
        client_log.setLevel(previous_level)


@dataclass
class Cancellation:
    abandoned: int
    dropped_in_log: int
    waiting_after: int
    next_status: int
    next_queue_s: float | None
    next_generation_s: float | None


def cancellation(
    endpoint: Endpoint, *, body: dict, abandon: int = 2, give_up_after: float = 0.5
) -> Cancellation:
    """`abandon` clients disconnect after `give_up_after` s (one mid-generation, the rest waiting);
    the endpoint must drop each of them, and the next request must be served."""
    headers = {"Authorization": f"Bearer {endpoint.api_key}"}
    dropped_before = endpoint.log().count(DROPPED_LINE)

    def give_up(_: int) -> list[bool]:
        try:
            httpx.post(
                endpoint.url + GENERATIONS_ROUTE,
                json=body,
                headers=headers,
                timeout=httpx.Timeout(give_up_after, connect=10.0),
            )
        except httpx.ReadTimeout:
            return [True]
        return [False]  # answered first (a 503 if the queue was full): not abandoned

    abandoned = sum(_run_clients(abandon, give_up, overall_timeout=60))
    # The endpoint notices a disconnect at once; give its log a moment to say so.
    deadline = time.monotonic() + 10
    while endpoint.log().count(DROPPED_LINE) - dropped_before < abandoned and time.monotonic() < deadline:
        time.sleep(0.1)
    waiting = httpx.get(endpoint.url + HEALTH_ROUTE, timeout=5).json()["waiting"]
    response = httpx.post(
        endpoint.url + GENERATIONS_ROUTE, json=body, headers=headers, timeout=httpx.Timeout(300, connect=10)
    )
    return Cancellation(
        abandoned=abandoned,
        dropped_in_log=endpoint.log().count(DROPPED_LINE) - dropped_before,
        waiting_after=waiting,
        next_status=response.status_code,
        next_queue_s=_header(response, QUEUE_SECONDS_HEADER),
        next_generation_s=_header(response, GENERATION_SECONDS_HEADER),
    )


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


@dataclass
class Summary:
    requests: int
    served: int
    busy_503: int
    with_retry_after: int
    other: dict = field(default_factory=dict)
    retries: int = 0
    queue_p50: float | None = None
    queue_p95: float | None = None
    generation_p50: float | None = None
    generation_p95: float | None = None


def summarise(outcomes: list[Outcome]) -> Summary:
    served = [o for o in outcomes if o.status == 200 and o.wav]
    busy = [o for o in outcomes if o.status == 503]
    other: dict = {}
    for o in outcomes:
        if o not in served and o not in busy:
            other[str(o.status)] = other.get(str(o.status), 0) + 1
    queue = [o.queue_s for o in served if o.queue_s is not None]
    generation = [o.generation_s for o in served if o.generation_s is not None]
    return Summary(
        requests=len(outcomes),
        served=len(served),
        busy_503=len(busy),
        with_retry_after=sum(1 for o in busy if o.retry_after and o.retry_after.isdigit()),
        other=other,
        retries=sum(o.retries for o in outcomes),
        queue_p50=percentile(queue, 0.5),
        queue_p95=percentile(queue, 0.95),
        generation_p50=percentile(generation, 0.5),
        generation_p95=percentile(generation, 0.95),
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


HEADER = (
    f"{'round':>5} {'phase':>8} {'reqs':>5} {'served':>6} {'503':>4} {'+R-A':>4} {'other':>6} "
    f"{'retries':>7} {'queue p50/p95 s':>16} {'gen p50/p95 s':>14} {'RSS MiB':>8}"
)


def row(number: int, phase: str, s: Summary, rss: float) -> str:
    queue = f"{_fmt(s.queue_p50)}/{_fmt(s.queue_p95)}"
    generation = f"{_fmt(s.generation_p50)}/{_fmt(s.generation_p95)}"
    return (
        f"{number:>5} {phase:>8} {s.requests:>5} {s.served:>6} {s.busy_503:>4} {s.with_retry_after:>4} "
        f"{sum(s.other.values()):>6} {s.retries:>7} {queue:>16} {generation:>14} {rss:>8.0f}"
    )


def problems(phase: str, s: Summary) -> list[str]:
    """What breaks the goals: anything but WAV or 503 + Retry-After; unserved despite retries."""
    found = []
    if s.other:
        found.append(f"{phase}: requests ended otherwise: {s.other}")
    if s.busy_503 != s.with_retry_after:
        found.append(f"{phase}: {s.busy_503 - s.with_retry_after} 503s without Retry-After")
    if phase == "retried" and s.served != s.requests:
        found.append(f"{phase}: {s.requests - s.served} of {s.requests} not served despite retries")
    return found


def run(arguments: argparse.Namespace, endpoint: Endpoint, report: dict) -> list[str]:
    """Warm-up, the rounds, the cancellation check; prints the table and returns the failures."""
    body = {
        "inputs": "load test",
        "parameters": {"num_inference_steps": arguments.steps, "audio_end_in_s": 1.0},
    }
    headers = {"Authorization": f"Bearer {endpoint.api_key}"}
    # Warm-up, so the first round's RSS is not the first generation's one-off allocations.
    url = endpoint.url + GENERATIONS_ROUTE
    httpx.post(url, json=body, headers=headers, timeout=arguments.timeout).raise_for_status()
    rss = [endpoint.rss_mb()]
    print(
        f"endpoint {endpoint.url}, --max-waiting {arguments.max_waiting}, RSS after warm-up {rss[0]:.0f} MiB"
    )
    print(HEADER)
    failures = []
    load = {
        "clients": arguments.clients,
        "requests": arguments.requests,
        "body": body,
        "timeout": arguments.timeout,
    }
    for number in range(1, arguments.rounds + 1):
        phases = {"burst": burst(endpoint, **load), "retried": retried(endpoint, **load)}
        rss.append(endpoint.rss_mb())
        for phase, outcomes in phases.items():
            summary = summarise(outcomes)
            print(row(number, phase, summary, rss[-1]))
            failures += [f"round {number} {problem}" for problem in problems(phase, summary)]
            report["rounds"].append(
                {"round": number, "phase": phase, "summary": asdict(summary), "rss_mb": rss[-1]}
                | {"outcomes": [asdict(outcome) for outcome in outcomes]}
            )
    cancel = cancellation(endpoint, body=body)
    print(
        f"cancellation: {cancel.abandoned} clients gave up, {cancel.dropped_in_log} dropped by the endpoint, "
        f"{cancel.waiting_after} left waiting; the next request: HTTP {cancel.next_status}, "
        f"queue {_fmt(cancel.next_queue_s)} s, generation {_fmt(cancel.next_generation_s)} s"
    )
    if cancel.next_status != 200 or cancel.waiting_after or cancel.dropped_in_log != cancel.abandoned:
        failures.append(f"cancellation: {cancel}")
    growth = rss[-1] - rss[1]
    print(
        f"RSS MiB: warm-up {rss[0]:.0f}, after each round {', '.join(f'{v:.0f}' for v in rss[1:])}; "
        f"since round 1 {growth:+.0f} MiB ({growth / rss[1]:+.1%})"
    )
    report.update(rss_mb=rss, cancellation=asdict(cancel))
    tracebacks = endpoint.log().count("Traceback")
    if tracebacks or endpoint.process.poll() is not None:
        failures.append(f"endpoint: {tracebacks} tracebacks, exit code {endpoint.process.poll()}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=1, help="requests per client per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="inference steps per request")
    parser.add_argument("--max-waiting", type=int, default=2, help="the endpoint's queue bound")
    parser.add_argument("--timeout", type=float, default=300.0, help="read timeout per request, seconds")
    parser.add_argument("--json", type=Path, help="also write every outcome and summary here")
    arguments = parser.parse_args(argv)

    report: dict = {"settings": {**vars(arguments), "json": str(arguments.json)}, "rounds": []}
    with tempfile.TemporaryDirectory() as folder:
        endpoint = start_endpoint(Path(folder), max_waiting=arguments.max_waiting)
        try:
            failures = run(arguments, endpoint, report)
        finally:
            endpoint.stop()
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=1))
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
