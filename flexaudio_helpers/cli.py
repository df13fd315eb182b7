"""The ``flexaudio`` command: serve an endpoint, generate, batch-generate and plot clips outside
notebooks.

    flexaudio serve                                # the notebooks' endpoint, on FlexAI or here
    flexaudio generate "Rain on a tin roof" -o rain.wav --seconds 10 --steps 200 --seed 42
    flexaudio generate "Rain on a tin roof" -o rain.wav --variations 4     # rain-1.wav .. rain-4.wav
    flexaudio generate "Heavy rain" -o heavy.wav --init-audio rain.wav --init-noise-level 2
    flexaudio extend rain.wav -o long.wav --to 180 --prompt "rain" --prompt "thunder"   # past 47.55 s
    flexaudio loop drums.wav -o loop.wav --bars 4 [--bpm 120]    # seamless on repeat
    flexaudio repaint rain.wav -o new.wav --from 12 --to 16 --prompt "thunder"
    flexaudio batch prompts.jsonl -o clips/        # progress bar, clips/manifest.jsonl
    flexaudio plot rain.wav -o rain.png
    flexaudio analyze rain.wav [--json]            # loudness, tempo, brightness; the prompt checked
    flexaudio status; flexaudio stop

The endpoint is found as the notebooks find it (`deploy.endpoint`): ``INFERENCE_URL`` /
``INFERENCE_API_KEY`` (environment or a ``.env`` file), else the saved endpoint ``--name``
(``stable-audio-open``); ``--url`` and ``--api-key-env`` override both, and the command says on
stderr which it used. A key is only ever read from the environment, a ``.env`` file or the saved
state, so it never lands in a shell history or a process list. Failures print one line and exit
non-zero: 1 when the generation failed, 2 when the input was wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from . import apis
from .audio import SAVE_FORMATS, Clip
from .batch import MANIFEST_NAME
from .client import AudioClient
from .deploy import DEFAULT_NAME, TARGET_CHOICES, clean_up, connect, endpoint
from .errors import (
    EndpointNotConfigured,
    EndpointNotFound,
    FlexAudioError,
    InputError,
    InvalidAudioFile,
    InvalidParameters,
    UnsafeStateError,
)
from .files import atomic_writer
from .inputs import as_request
from .params import MAX_VARIATIONS, check_count
from .protocol import (
    INFERENCE_API_ENV,
    INFERENCE_API_KEY_ENV,
    INFERENCE_URL_ENV,
    OFFLINE_NOTICE,
    load_json,
)
from .redact import display_url, mask_values
from .settings import resolve, setting

# Command-line flags for the shared parameter model's fields.
PARAMETER_FLAGS = {
    "seconds": "audio_end_in_s",
    "start": "audio_start_in_s",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "negative": "negative_prompt",
    "seed": "seed",
}
# The generate command's other flags, for its error messages.
GENERATE_FLAGS = {"init-noise-level": "init_noise_level", "init-audio": "init_audio", "variations": "count"}
# The library's Python spellings in its messages, as this command's flags.
PYTHON_TO_FLAGS = {
    "AudioClient(read_timeout=...)": "--timeout SECONDS",
    "AudioClient(total_timeout=...)": "--timeout SECONDS",
    "pass api_key=... or set": "set",
    "or api_key=...": "or --api-key-env NAME",
}
# extend, loop and repaint: the fields `longer` names, as these commands' flags.
VERB_FLAGS = {
    "extend": {"to": "to", "prompts": "prompt", "keep_seconds": "keep", "source": "IN"},
    "loop": {
        "bars": "bars",
        "bpm": "bpm",
        "beats_per_bar": "beats-per-bar",
        "prompt": "prompt",
        "clip": "IN",
    },
    "repaint": {"start": "from", "end": "to", "prompt": "prompt", "clip": "IN"},
}


def shell_command() -> str:
    """``flexaudio`` as a plain shell can run it: the bare name when it is on PATH, else its full path
    in this environment (after `make lab` the venv is not activated, so ``.venv/bin/flexaudio``)."""
    installed = Path(sys.executable).with_name("flexaudio")
    on_path = shutil.which("flexaudio")
    if on_path and Path(on_path).resolve() == installed.resolve():
        return "flexaudio"
    return str(installed) if installed.exists() else "flexaudio"


USAGE_ERRORS = (InputError, InvalidParameters, EndpointNotConfigured)
DPI_RANGE = (10, 1200)  # beyond 1200 dpi a figure is hundreds of megapixels


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: getattr(args, flag) for flag, name in PARAMETER_FLAGS.items() if getattr(args, flag) is not None
    }


def _client(args: argparse.Namespace) -> AudioClient:
    """A client for ``--url``, else for the endpoint the notebooks would use; says which on stderr."""
    api_key = None  # None: the key that comes with the endpoint found
    if args.api_key_env != INFERENCE_API_KEY_ENV:
        api_key = setting(args.api_key_env)
        if not api_key:
            raise InputError(f"the variable {args.api_key_env} (--api-key-env) is not set")
    url, source = args.url, "--url"
    if not url:
        try:
            found = endpoint(args.name)
        except EndpointNotFound:
            raise InputError(
                f"no endpoint: pass --url URL, set {INFERENCE_URL_ENV} and {INFERENCE_API_KEY_ENV} "
                f"(environment or .env), or run `flexaudio serve` (no endpoint {args.name!r} is saved)"
            ) from None
        if not found.url:
            raise InputError(f"the saved endpoint {found.name!r} has no URL yet: run `flexaudio serve`")
        url, api_key = found.url, api_key if api_key is not None else found.api_key or ""
        source = (
            f"{INFERENCE_URL_ENV} (environment or .env)"
            if found.target == "env"
            else f"the saved endpoint {found.name!r} ({found.target})"
        )
    print(f"flexaudio: using {source}: {display_url(url)}", file=sys.stderr)
    return AudioClient(url, api_key, read_timeout=args.timeout, max_retries=args.retries, api=args.api)


def _check_audio_path(path: Path) -> None:
    """Refuse, before anything is generated, an output that could not be written."""
    if path.suffix.lower() not in SAVE_FORMATS:
        raise InputError(f"cannot write {path.name!r}: the output must end in .wav or .flac")
    if path.is_dir():
        raise InputError(f"cannot write {path}: a folder is in its place")
    folder = next(parent for parent in path.absolute().parents if parent.exists())
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: {folder} is a file, not a folder")


def _describe(clip: Clip, path: Path) -> str:
    line = f"wrote {path}: {clip.duration:.2f} s, {clip.sample_rate / 1000:g} kHz, {clip.channels} ch"
    if clip.seed is not None:
        line += f", seed {clip.seed}"
    if "request" in clip.timings:
        line += f", {clip.timings['request']:.1f} s"
    if clip.offline:
        line += f" ({OFFLINE_NOTICE})"
    return line


# ----- commands ------------------------------------------------------------------------------
def variation_paths(output: Path, count: int) -> list[Path]:
    """Where ``--variations N`` writes: ``rain.wav`` gives ``rain-1.wav`` .. ``rain-N.wav``."""
    return [output.with_name(f"{output.stem}-{k}{output.suffix}") for k in range(1, count + 1)]


def run_generate(args: argparse.Namespace) -> int:
    output = Path(args.output)
    request = as_request(args.prompt, **_parameters(args))  # validated before any network call
    if args.variations is not None:
        check_count(args.variations)
    paths = [output] if args.variations is None else variation_paths(output, args.variations)
    for path in paths:  # every output, before anything is generated
        _check_audio_path(path)
    source = Path(args.init_audio) if args.init_audio else None
    if source is not None and not source.is_file():
        raise InputError(f"--init-audio {source}: no such file")
    options = {"init_audio": source, "init_noise_level": args.init_noise_level}
    with _client(args) as client:
        if args.variations is None:
            clips = [client.generate(request, **options)]
        else:
            clips = client.variations(request, args.variations, **options)
    for clip, path in zip(clips, paths, strict=True):
        clip.save(path)
        print(_describe(clip, path))
    return 0


def read_batch(path: Path) -> list[Any]:
    """The items of a batch file, one a line: a request body, a manifest line, or a prompt.

    A line may be a JSON body ``{"inputs": ..., "parameters": {...}}``, a line of a
    ``manifest.jsonl`` (its ``request`` is used, so a manifest can be run again), a JSON string,
    or plain text (the prompt). Blank lines and lines starting with ``#`` are skipped.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        raise InputError(f"{path}:{line}: not UTF-8 text (byte {byte:#04x}); save it as UTF-8") from None
    items = []
    # Only newlines end a line: a form feed or U+0085 inside a prompt (which str.splitlines would
    # split at) stays part of it.
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(("{", '"')):
            items.append(line)
            continue
        try:
            item = load_json(line)
        except ValueError as exc:
            raise InputError(f"{path}:{number}: {exc}") from None
        if isinstance(item, dict) and "request" in item:
            item = item["request"]
        items.append(item)
    if not items:
        raise InputError(f"{path} holds no prompts")
    return items


def _with_defaults(item: Any, defaults: dict[str, Any]) -> Any:
    """Command-line parameters as defaults under each line's own (invalid lines pass unchanged)."""
    if not defaults:
        return item
    try:
        request = as_request(item)
    except InvalidParameters:
        return item  # reported as this item's failure by generate_many
    return request.build(request.inputs, **{**defaults, **request.parameters.model_dump(exclude_none=True)})


def run_batch(args: argparse.Namespace) -> int:
    defaults = _parameters(args)
    items = [_with_defaults(item, defaults) for item in read_batch(Path(args.file))]
    out_dir = Path(args.out_dir)
    with _client(args) as client:
        results = client.generate_many(
            items, concurrency=args.concurrency, progress=not args.no_progress, out_dir=out_dir
        )
    failed = [result for result in results if not result.ok]
    reused = sum(result.reused for result in results)
    summary = f"{len(results) - len(failed)} of {len(results)} clips in {out_dir}"
    if reused:
        summary += f" ({reused} already there)"
    print(f"{summary}; manifest: {out_dir / MANIFEST_NAME}")
    for result in failed:
        print(f"flexaudio: item {result.index} failed: {_one_line(result.error, args)}", file=sys.stderr)
    if failed:
        print(f"flexaudio: run the same command again to retry the {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


def run_plot(args: argparse.Namespace) -> int:
    from matplotlib.backend_bases import FigureCanvasBase

    from .plots import plot_clip  # imported here: matplotlib is only needed for this command

    source = Path(args.clip)
    output = Path(args.output) if args.output else source.with_suffix(".png")
    kind = output.suffix.lower().lstrip(".")
    if kind not in FigureCanvasBase.get_supported_filetypes():
        raise InputError(f"cannot draw {output.name!r}: use .png, .svg or .pdf")
    low, high = DPI_RANGE
    if not low <= args.dpi <= high:
        raise InputError(f"--dpi {args.dpi} is not allowed: use {low} to {high}")
    clip = _load_clip(source)
    figure = plot_clip(clip, title=args.title)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(output) as stream:  # never through a planted symlink, never half a file
        figure.savefig(stream, format=kind, dpi=args.dpi)
    print(f"wrote {output}")
    return 0


def _load_clip(path: str | Path) -> Clip:
    """The audio file at `path`; `InputError` saying why when it cannot be read."""
    try:
        return Clip.load(path)
    except InvalidAudioFile as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"cannot read {path} as audio: {exc}") from None


def run_analyze(args: argparse.Namespace) -> int:
    from .analysis import AnalysisError, analyze, check  # imported here: librosa is slow to import

    clip = _load_clip(args.clip)
    try:
        analysis = analyze(clip)
    except AnalysisError as exc:
        raise InputError(f"cannot analyse {args.clip}: {exc}") from None
    result = check(clip, analysis)  # the prompt comes from the file's metadata, when we saved it
    if args.json:
        checks = [
            {"asked": c.hint.asked, "measured": c.measured, "followed": c.followed} for c in result.checks
        ]
        print(
            json.dumps(
                {"file": str(args.clip), "prompt": result.prompt, **analysis.to_dict(), "checks": checks}
            )
        )
    else:
        print(f"{args.clip}: {clip.prompt!r}" if clip.prompt else f"{args.clip}: (no prompt in its metadata)")
        print(analysis)
        print("prompt check:")
        print("\n".join(f"  {line}" for line in result.lines()))
    return 0


def run_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(client.models(), indent=2))
    return 0


def run_curl(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(client.curl_command(args.prompt, output=args.output, **_parameters(args)))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    deployment = connect(args.target)
    print(deployment.reason)
    deployment.serve(args.name, hf_token_secret=args.hf_token_secret)
    deployment.wait_until_ready(args.name, timeout=args.wait)
    print("`flexaudio generate PROMPT -o clip.wav` now uses it; `flexaudio stop` stops it.")
    return 0


def run_status(args: argparse.Namespace) -> int:
    info = connect(args.target, echo=False).inspect(args.name)
    print(
        f"{info.name} on {info.target}: {info.status}" + (f" at {display_url(info.url)}" if info.url else "")
    )
    return 0


def run_stop(args: argparse.Namespace) -> int:
    clean_up(connect(args.target), args.name)
    return 0


# ----- parsing -------------------------------------------------------------------------------
def _name_option(group: Any) -> None:
    text = f"the endpoint's name, as served and saved (default: {DEFAULT_NAME})"
    group.add_argument("--name", default=DEFAULT_NAME, help=text)


def _endpoint_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("endpoint")
    group.add_argument(
        "--url", help="the endpoint's base URL (default: $INFERENCE_URL or .env, else the saved --name)"
    )
    _name_option(group)
    group.add_argument(
        "--api-key-env",
        default=INFERENCE_API_KEY_ENV,
        metavar="NAME",
        help=f"the environment variable holding the API key (default: {INFERENCE_API_KEY_ENV}, or .env)",
    )
    group.add_argument(
        "--api",
        choices=apis.CHOICES,
        help=f"the API the endpoint speaks (default: ${INFERENCE_API_ENV}, else {apis.FLEXSERVE}; "
        "auto reads GET /v1/models)",
    )
    group.add_argument("--timeout", type=float, default=900.0, help="read timeout in seconds (default 900)")
    group.add_argument("--retries", type=int, default=4, help="retries when busy or unreachable (default 4)")
    return parent


def _deployment_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("deployment")
    _name_option(group)
    group.add_argument(
        "--target",
        choices=TARGET_CHOICES,
        default="auto",
        help="where: FlexAI when its CLI is logged in, else this machine (auto); FLEXAUDIO_TARGET wins",
    )
    return parent


def _verb(args: argparse.Namespace) -> tuple[Path, Path, dict[str, Any]]:
    """(IN, OUT, the window parameters) of extend, loop and repaint, checked before any call."""
    source, output = Path(args.input), Path(args.output)
    _check_audio_path(output)
    if not source.is_file():
        raise InputError(f"IN {source}: no such file")
    parameters = _parameters(args)
    for flag in ("seconds", "start"):
        if getattr(args, flag) is not None:
            raise InputError(f"--{flag}: each window is the whole window (47.55 s); leave --{flag} out")
    return source, output, parameters


def run_extend(args: argparse.Namespace) -> int:
    from .longer import extend

    source, output, parameters = _verb(args)
    keep = {} if args.keep is None else {"keep_seconds": args.keep}
    with _client(args) as client:
        extend(client, source, to=args.to, prompts=args.prompt, out=output, **keep, **parameters)
    print(_describe(Clip.load(output), output))
    return 0


def run_loop(args: argparse.Namespace) -> int:
    from .longer import loop

    source, output, parameters = _verb(args)
    with _client(args) as client:
        clip = loop(
            client,
            source,
            bars=args.bars,
            bpm=args.bpm,
            beats_per_bar=args.beats_per_bar,
            prompt=args.prompt,
            **parameters,
        )
    clip.save(output)
    print(_describe(clip, output))
    return 0


def run_repaint(args: argparse.Namespace) -> int:
    from .longer import repaint

    source, output, parameters = _verb(args)
    with _client(args) as client:
        clip = repaint(client, source, args.section_start, args.section_end, prompt=args.prompt, **parameters)
    clip.save(output)
    print(_describe(clip, output))
    return 0


def _verb_parsers(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    def verb(name: str, help: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=parents, help=help)
        parser.add_argument("input", metavar="IN", help="the clip to start from (.wav, .flac...)")
        parser.add_argument("-o", "--output", required=True, help="the .wav or .flac file to write")
        return parser

    extend = verb("extend", "extend a clip past the 47.55 s window, window by window (local endpoint)")
    extend.add_argument("--to", type=float, required=True, help="the piece's length in seconds (up to 600)")
    extend.add_argument(
        "--prompt", action="append", required=True, help="one per window, in order (repeat it)"
    )
    extend.add_argument("--keep", type=float, help="seconds each window keeps of the one before (default 10)")
    extend.set_defaults(run=run_extend)
    loop = verb("loop", "a loop of whole bars, seamless on repeat (local endpoint)")
    loop.add_argument("--bars", type=int, required=True, help="bars in the loop")
    loop.add_argument("--bpm", type=float, help="the tempo (default: measured, as `flexaudio analyze` does)")
    loop.add_argument("--beats-per-bar", type=int, default=4, help="beats in a bar (default 4)")
    loop.add_argument("--prompt", help="what the seam is made of (default: the clip's own prompt)")
    loop.set_defaults(run=run_loop)
    repaint = verb("repaint", "make one section of a clip again, keeping the rest (local endpoint)")
    repaint.add_argument(
        "--from", dest="section_start", type=float, required=True, help="the section's start (s)"
    )
    repaint.add_argument("--to", dest="section_end", type=float, required=True, help="the section's end (s)")
    repaint.add_argument("--prompt", help="what the section becomes (default: the clip's own prompt)")
    repaint.set_defaults(run=run_repaint)


def _parameter_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("generation parameters")
    group.add_argument("--seconds", type=float, help="clip length (audio_end_in_s), up to 47.55")
    group.add_argument("--start", type=float, help="start of the kept window (audio_start_in_s)")
    group.add_argument("--steps", type=int, help="denoising steps (num_inference_steps), 1-1000")
    group.add_argument("--guidance", type=float, help="guidance_scale, 0-50")
    group.add_argument("--negative", help="negative_prompt: what to steer away from")
    group.add_argument("--seed", type=int, help="seed, 0 to 2**64-1 (drawn by the endpoint when left out)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flexaudio", description="Generate and plot text-to-audio clips from a FlexServe endpoint."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    endpoint, parameters = _endpoint_options(), _parameter_options()

    generate = commands.add_parser("generate", parents=[parameters, endpoint], help="generate one clip")
    generate.add_argument("prompt")
    generate.add_argument("-o", "--output", required=True, help="the .wav or .flac file to write")
    generate.add_argument(
        "--variations",
        type=int,
        metavar="N",
        help=f"N clips (1-{MAX_VARIATIONS}) with seeds S..S+N-1 (S: --seed, else drawn), written as "
        "OUTPUT-1.wav .. OUTPUT-N.wav",
    )
    generate.add_argument(
        "--init-audio",
        metavar="FILE",
        help="audio-to-audio: start from this clip (at most 47.55 s; our local endpoint only)",
    )
    generate.add_argument(
        "--init-noise-level",
        type=float,
        metavar="X",
        help="noise over --init-audio, above 0.3 up to 500 (default 1; higher keeps less of it)",
    )
    generate.set_defaults(run=run_generate)
    _verb_parsers(commands, [parameters, endpoint])

    batch = commands.add_parser(
        "batch",
        parents=[parameters, endpoint],
        help="generate a file of prompts",
        description="Generate every line of FILE (JSON bodies, manifest lines or plain prompts) into "
        "OUT_DIR with a manifest.jsonl. Clips already there are kept: run again to finish a batch. "
        "Parameter flags are defaults for lines that do not set them.",
    )
    batch.add_argument("file", help="prompts.jsonl, or a manifest.jsonl to run again")
    batch.add_argument("-o", "--out-dir", required=True, help="folder for the clips and manifest.jsonl")
    batch.add_argument("--concurrency", type=int, default=2, help="requests in flight (default 2)")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    batch.set_defaults(run=run_batch)

    plot = commands.add_parser("plot", help="draw a clip's waveform and mel spectrogram")
    plot.add_argument("clip", help="a .wav or .flac file")
    plot.add_argument("-o", "--output", help="the image to write (default: the clip's name with .png)")
    plot.add_argument("--title", help="the figure's title (default: from the clip's parameters)")
    plot.add_argument("--dpi", type=int, default=100)
    plot.set_defaults(run=run_plot)

    analyze = commands.add_parser(
        "analyze",
        help="measure a clip and check it against its prompt",
        description="Loudness, tempo and beats, brightness, noisiness, onsets and stereo width of a "
        "clip, and each measurable request of its prompt (read from the file's metadata when this "
        "project saved it) beside its measurement.",
    )
    analyze.add_argument("clip", help="a .wav or .flac file")
    analyze.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    analyze.set_defaults(run=run_analyze)

    models = commands.add_parser("models", parents=[endpoint], help="show what the endpoint serves")
    models.set_defaults(run=run_models)

    curl = commands.add_parser("curl", parents=[parameters, endpoint], help="print the request as curl")
    curl.add_argument("prompt")
    curl.add_argument("-o", "--output", default="clip.wav", help="the file curl should write")
    curl.set_defaults(run=run_curl)

    deployment = _deployment_options()
    serve = commands.add_parser(
        "serve", parents=[deployment], help="serve the endpoint (as notebook 02 does) and wait until ready"
    )
    serve.add_argument("--hf-token-secret", default="MY_HF_TOKEN", help="the secret holding the HF token")
    serve.add_argument("--wait", type=float, default=1800.0, help="seconds to wait for it (default 1800)")
    serve.set_defaults(run=run_serve)
    status = commands.add_parser("status", parents=[deployment], help="show the endpoint's status and URL")
    status.set_defaults(run=run_status)
    stop = commands.add_parser(
        "stop",
        parents=[deployment],
        help="stop paying for the endpoint, as notebook 08 does (FlexAI: delete; here: stop the server)",
    )
    stop.set_defaults(run=run_stop)
    return parser


def _one_line(error: BaseException | None, args: argparse.Namespace, *, flags: bool = False) -> str:
    """The error on one line in this command's words (`flags`: parameters named by their flags),
    with the API key masked should anything have echoed it."""
    text = " ".join(str(error).split()) or type(error).__name__
    for python, flag in PYTHON_TO_FLAGS.items():
        text = text.replace(python, flag)
    if flags:  # "parameters.audio_end_in_s=99 is not allowed" -> "--seconds 99 is not allowed"
        for flag, name in PARAMETER_FLAGS.items():
            text = text.replace(f"parameters.{name}=", f"--{flag} ")
        for flag, name in GENERATE_FLAGS.items():
            text = text.replace(f"parameters.{name}=", f"--{flag} ").replace(
                f"parameters.{name}: ", f"{name}: "
            )
            text = text.replace(f"{name}: ", f"--{flag}: ")
    for name, flag in VERB_FLAGS.get(args.command, {}).items():
        if text.startswith(f"{name}: "):
            text = f"{flag if flag == 'IN' else '--' + flag}: " + text[len(name) + 2 :]
    names = {INFERENCE_API_KEY_ENV, getattr(args, "api_key_env", INFERENCE_API_KEY_ENV)}
    try:
        keys = list(resolve(*names).values())  # wherever the key came from: env or .env
    except UnsafeStateError:  # a .env refused unread: only the environment's keys can be in the text
        keys = [os.environ.get(name) for name in names]
    return mask_values(text, keys)


def main(argv: list[str] | None = None) -> int:
    """Run the ``flexaudio`` command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("flexaudio: interrupted", file=sys.stderr)
        return 130
    except (FlexAudioError, OSError, ValueError) as exc:
        print(f"flexaudio: error: {_one_line(exc, args, flags=True)}", file=sys.stderr)
        return 2 if isinstance(exc, USAGE_ERRORS) else 1


if __name__ == "__main__":
    sys.exit(main())
