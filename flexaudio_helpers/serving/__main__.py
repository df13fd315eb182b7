"""``python -m flexaudio_helpers.serving --task text-to-audio --model <id|path|offline>``.

The arguments are the ones FlexAI's FlexServe runtime takes after ``--``, plus where to
listen. The API key comes from ``FLEXAUDIO_API_KEY``, else from the key file, else it is
generated and written there (mode 0600). It is never printed.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from pathlib import Path

from ..files import read_private
from ..protocol import LOCAL_SERVER_KEY_ENV, check_api_key
from ..settings import setting
from ..state import state_dir, write_private


def load_or_create_api_key(key_file: Path) -> tuple[str, str]:
    """The key and where it came from (for the banner, which never shows the key)."""
    key = setting(LOCAL_SERVER_KEY_ENV)
    if key:
        return key, f"{LOCAL_SERVER_KEY_ENV} (environment or .env)"
    existing = (read_private(key_file) or "").strip()
    if existing:
        return existing, f"{key_file}"
    key = secrets.token_urlsafe(32)
    write_private(key_file, key)
    return key, f"{key_file} (new, mode 0600)"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flexaudio_helpers.serving", description=__doc__)
    parser.add_argument("--task", default="text-to-audio", choices=["text-to-audio"])
    parser.add_argument(
        "--model",
        default="stabilityai/stable-audio-open-1.0",
        help="hub id, local diffusers folder, or 'offline' (random weights: noise, no network)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key-file", type=Path, default=None, help="where the API key is kept")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--max-waiting", type=int, default=8, help="requests allowed to wait; then 503")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="connections held open at once; the oldest idle one is closed for a new one "
        "(default: the open-file limit less a reserve)",
    )
    parser.add_argument(
        "--docs", action="store_true", help="serve /docs, /redoc and /openapi.json (off by default)"
    )
    speed = parser.add_argument_group("speed (default: chosen by device)")
    speed.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    speed.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the transformer, with a warm-up before serving",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ..errors import FlexAudioError, ModelLoadError

    try:
        api_key, key_source = load_or_create_api_key(
            arguments.api_key_file or state_dir() / "local-endpoint.key"
        )
        check_api_key(api_key)
    except (FlexAudioError, ValueError) as exc:  # messages name where the key is, never the key
        sys.exit(f"error: {exc}")
    # Imported only now: --help and a bad key answer at once, without loading torch (about 6 s).
    import uvicorn

    from .app import create_app
    from .guard import ACCEPT_BACKLOG, KEEP_ALIVE_TIMEOUT, connection_cap, guarded_protocol
    from .pipeline import load_generator

    try:
        generator = load_generator(
            arguments.model,
            device=arguments.device,
            dtype=arguments.dtype,
            compile=arguments.compile,
        )
    except ModelLoadError as exc:
        sys.exit(f"error: {exc}")
    facts = generator.describe()
    url = f"http://{arguments.host}:{arguments.port}"
    print(
        f"Model {facts['id']} on {facts['device']} ({facts['dtype']}), "
        f"{facts['sample_rate']} Hz, {facts['channels']} channels, up to {facts['max_audio_seconds']} s",
        flush=True,
    )
    if generator.offline:
        print(f"NOTE: {facts['notice']}", flush=True)
    print(f"API key: read from {key_source}", flush=True)
    print(f"Serving POST {url}/v1/audios/generations", flush=True)
    max_connections = arguments.max_connections or connection_cap()
    uvicorn.run(
        create_app(generator, api_key, max_waiting=arguments.max_waiting, docs=arguments.docs),
        host=arguments.host,
        port=arguments.port,
        log_level="info",
        # Every connection must send its request head in time and idle ones are closed; the cap
        # keeps a free descriptor for /health however many sockets a client leaves open.
        http=guarded_protocol(max_connections),
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        backlog=ACCEPT_BACKLOG,
    )


if __name__ == "__main__":
    main()
