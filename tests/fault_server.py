"""A real HTTP server on 127.0.0.1 that misbehaves on cue, for the client's fault tests.

`FaultServer` answers ``POST /v1/audios/generations`` with the next action of its script (then
`then`, by default a small valid WAV); any other path gets FastAPI's ``{"detail": "Not Found"}``
404. It records every request (method, path, headers, body, arrival time), so a test can count
the client's retries exactly. Actions are plain functions of the request handler: `audio`,
`error`, `reply`, `reset`, `truncated`, `cut`, `not_audio`, `stall`, and the hostile ones:
`endless`, `gzip_bomb`, `flac_bomb`, `title_page`, `trickle`. Each sends for a bounded time or
size, and stops early when the client hangs up or the server stops.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf

from flexaudio_helpers.protocol import GENERATIONS_ROUTE, OFFLINE_HEADER, SEED_HEADER, error_body

Action = Callable[["FaultHandler"], None]


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB, counted from its own start.

    Linux's ``ru_maxrss`` survives ``exec``: a client started from a pytest process that had
    grown to 2 GB reports 2 GB. ``VmHWM`` belongs to the new address space alone.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource  # not on Windows; macOS reports bytes, Linux KiB

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def wav_bytes(seconds: float = 0.1, rate: int = 44_100) -> bytes:
    """A small stereo 16-bit WAV of a quiet tone."""
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.1 * np.sin(2 * np.pi * 440 * t)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([tone, tone], axis=1), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


# ----- actions -------------------------------------------------------------------------------
def reply(
    status: int, body: bytes | str | dict = b"", headers: dict | None = None, content_type=None
) -> Action:
    """Answer `status` with `body` (a dict is sent as JSON)."""
    if isinstance(body, dict):
        body, content_type = json.dumps(body).encode(), content_type or "application/json"
    elif isinstance(body, str):
        body, content_type = body.encode(), content_type or "text/plain"

    def act(handler: FaultHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type or "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return act


def error(status: int, message: str = "injected", param: str | None = None, **headers: str) -> Action:
    """Our endpoint's JSON error shape."""
    return reply(status, error_body(message, "injected_error", param), headers)


def audio(seed: int = 7, seconds: float = 0.1) -> Action:
    """A valid WAV with the endpoint's facts headers."""
    headers = {SEED_HEADER: str(seed), OFFLINE_HEADER: "false", "X-Generation-Seconds": "0.010"}
    return reply(200, wav_bytes(seconds), headers, "audio/wav")


def not_audio() -> Action:
    """An HTML page that claims to be audio (the Content-Type is not to be trusted)."""
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    return reply(200, page, content_type="audio/wav")


def truncated() -> Action:
    """A complete HTTP answer whose WAV is cut short of what its own header announces."""
    data = wav_bytes(0.5)
    return reply(200, data[: len(data) // 3], {SEED_HEADER: "7"}, "audio/wav")


def announce_wav(handler: FaultHandler) -> bytes:
    """Send a 200 header announcing a 0.5 s WAV (Content-Length included); return the WAV to send."""
    data = wav_bytes(0.5)
    handler.send_response(200)
    handler.send_header("Content-Type", "audio/wav")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    return data


def cut() -> Action:
    """Announce the whole WAV, send a third of it, and hang up."""

    def act(handler: FaultHandler) -> None:
        data = announce_wav(handler)
        handler.wfile.write(data[: len(data) // 3])
        handler.hang_up()

    return act


def reset() -> Action:
    """Close the connection with a TCP reset before answering."""

    def act(handler: FaultHandler) -> None:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.hang_up()

    return act


def stall(seconds: float = 30.0) -> Action:
    """Say nothing for `seconds` (or until the server stops), then answer audio."""

    def act(handler: FaultHandler) -> None:
        handler.server.stopping.wait(seconds)
        audio()(handler)

    return act


def endless(limit_bytes: int = 4 * 2**30, seconds: float = 120.0) -> Action:
    """A 200 whose body never ends (chunked zeros) until the client hangs up or the bounds pass."""

    def act(handler: FaultHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "audio/wav")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"\0" * 2**20
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        deadline, sent = time.monotonic() + seconds, 0
        while sent < limit_bytes and time.monotonic() < deadline and not handler.server.stopping.is_set():
            handler.wfile.write(framed)  # raises OSError once the client has gone
            sent += len(chunk)
        handler.hang_up()

    return act


@functools.cache
def gzip_bomb_bytes(decoded_bytes: int = 1 * 2**30) -> bytes:
    """Zeros that gzip to about a thousandth of their size (1 GiB in about 1 MB)."""
    buffer = io.BytesIO()
    block = b"\0" * 2**20
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6) as stream:
        for _ in range(decoded_bytes // len(block)):
            stream.write(block)
    return buffer.getvalue()


def gzip_bomb() -> Action:
    """A small gzip body that inflates to 1 GiB."""
    return reply(200, gzip_bomb_bytes(), {"Content-Encoding": "gzip", SEED_HEADER: "7"}, "audio/wav")


@functools.cache
def flac_bomb_bytes(seconds: int = 240, channels: int = 8, rate: int = 96_000) -> bytes:
    """A FLAC of silence, a few hundred KB, that decodes to seconds x channels x rate samples."""
    buffer = io.BytesIO()
    block = np.zeros((rate, channels), dtype=np.int16)
    with sf.SoundFile(buffer, "w", rate, channels, format="FLAC", subtype="PCM_16") as stream:
        for _ in range(seconds):
            stream.write(block)
    return buffer.getvalue()


def flac_bomb() -> Action:
    """A valid FLAC answer that decodes to 240 s x 8 channels x 96 kHz (about 740 MB of float32)."""
    return reply(200, flac_bomb_bytes(), {SEED_HEADER: "7"}, "audio/flac")


def title_page(size: int = 280_000, status: int = 500) -> Action:
    """An HTML error page of `size` bytes of unclosed <title> tags (quadratic for a naive regex)."""
    unit = b"<title>"
    return reply(status, b"<html>" + unit * (size // len(unit)), content_type="text/html")


def trickle(interval: float = 0.5, seconds: float = 60.0) -> Action:
    """Announce a WAV, then send one byte every `interval` seconds, for at most `seconds`."""

    def act(handler: FaultHandler) -> None:
        data = announce_wav(handler)
        deadline = time.monotonic() + seconds
        for byte in data:
            if time.monotonic() > deadline or handler.server.stopping.wait(interval):
                break
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        handler.hang_up()

    return act


# ----- the server ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self):
        return json.loads(self.body)


class FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, Content-Length framing, like a real server
    server: _Server

    def hang_up(self) -> None:
        self.close_connection = True
        self.connection.close()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.owner._record(
            Recorded(self.command, self.path, dict(self.headers), body, time.monotonic())
        )
        if self.command == "POST" and self.path == GENERATIONS_ROUTE:
            action = self.server.owner._next_action()
        else:
            action = reply(404, {"detail": "Not Found"})
        with contextlib.suppress(OSError):  # the client hung up (e.g. after its read timeout)
            action(self)

    do_GET = do_POST = _handle

    def log_message(self, *args) -> None:  # quiet test output
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FaultServer
    stopping: threading.Event

    def handle_error(self, request, client_address) -> None:  # hung-up sockets are the point here
        pass


class FaultServer:
    """The misbehaving endpoint. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, *script: Action, then: Action | None = None) -> None:
        self._script: deque[Action] = deque(script)
        self.then = then or audio()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), FaultHandler)
        self._server.owner = self
        self._server.stopping = threading.Event()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def play(self, *script: Action, then: Action | None = None) -> FaultServer:
        """Replace the script: these actions in order, then `then` (default: valid audio)."""
        with self._lock:
            self._script = deque(script)
            self.then = then or audio()
        return self

    @property
    def generations(self) -> list[Recorded]:
        """The generation requests received so far."""
        with self._lock:
            return [r for r in self.requests if r.path == GENERATIONS_ROUTE]

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_action(self) -> Action:
        with self._lock:
            return self._script.popleft() if self._script else self.then

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
