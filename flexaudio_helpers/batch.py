"""Batches: many clips generated a few at a time, saved as they arrive, listed in a manifest.

``manifest.jsonl`` has one JSON line per item (`ManifestLine`): its index, status, request body,
seed, file and error. ``flexaudio batch`` can run a manifest again, and a batch run again into
the same folder loads the clips already there instead of generating them twice. The explorer's
export writes the same format.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import Clip
from .errors import InvalidParameters
from .files import write_atomic
from .inputs import as_request, raw_body
from .params import GenerationRequest

MANIFEST_NAME = "manifest.jsonl"
STATUSES = ("pending", "ok", "reused", "failed")


@dataclass(frozen=True)
class BatchResult:
    """One item of a batch: its clip, or the error that stopped it.

    `path` is where the clip was saved (with ``out_dir``); `reused` is True when a valid file
    from an earlier run was loaded instead of generating again.
    """

    index: int
    request: GenerationRequest | None
    clip: Clip | None = None
    error: Exception | None = None
    path: Path | None = None
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.clip is not None


@dataclass(frozen=True)
class ManifestLine:
    """One line of ``manifest.jsonl``.

    `status` is one of `STATUSES`; `request` is the request body (``flexaudio batch`` replays
    it), `path` the clip's file relative to the manifest's folder. A pending line holds only
    index, status and request; `timings` is left out when None; `extra` fields (e.g. the
    explorer's ``origin`` and ``offline``) follow the others.
    """

    index: int
    status: str
    request: Any
    seed: int | None = None
    path: str | None = None
    error: str | None = None
    timings: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @classmethod
    def for_result(cls, result: BatchResult | None, index: int, item: Any, folder: Path) -> ManifestLine:
        """The line for batch item `index` (given as `item`): pending while `result` is None."""
        if result is None:
            return cls(index, "pending", raw_body(item))
        return cls(
            index,
            "reused" if result.reused else "ok" if result.ok else "failed",
            result.request.to_body() if result.request else raw_body(item),
            seed=result.clip.seed if result.clip else None,
            path=str(result.path.relative_to(folder)) if result.ok and result.path else None,
            error=f"{type(result.error).__name__}: {result.error}" if result.error else None,
            timings=(result.clip.timings or None) if result.clip else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The line as the JSON object written to the manifest."""
        line: dict[str, Any] = {"index": self.index, "status": self.status, "request": self.request}
        if self.status == "pending":
            return line
        line.update(seed=self.seed, path=self.path, error=self.error)
        if self.timings is not None:
            line["timings"] = self.timings
        return {**line, **self.extra}


def write_manifest(folder: str | os.PathLike, lines: Iterable[ManifestLine]) -> Path:
    """Write ``manifest.jsonl`` in `folder` atomically (readers never see half a line); return its path."""
    text = "".join(json.dumps(line.to_dict()) + "\n" for line in lines)
    return write_atomic(Path(folder) / MANIFEST_NAME, text)


def clip_file_name(index: int, request: GenerationRequest) -> str:
    """A stable file name for item `index` of a batch, e.g. ``0003-rain-on-a-tin-roof.wav``."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.inputs.lower()).strip("-")[:40].rstrip("-")
    return f"{index:04d}-{slug or 'clip'}.wav"


def _reusable(path: Path, request: GenerationRequest) -> Clip | None:
    """The clip saved at `path` by an earlier run of the same request, or None."""
    if not path.is_file():
        return None
    try:
        clip = Clip.load(path)
    except Exception:  # unreadable or foreign file: generate it again
        return None
    if clip.request is None or clip.request.to_body() != request.to_body():
        return None
    return clip


def generate_many(
    generate: Callable[[GenerationRequest], Clip],
    requests: Iterable[Any],
    *,
    concurrency: int = 2,
    progress: bool = True,
    out_dir: str | os.PathLike | None = None,
) -> list[BatchResult]:
    """Run `generate` on each item, `concurrency` at a time; see `AudioClient.generate_many`.

    Raises `ValueError` when `concurrency` is below 1; each item's own failure is in its result.
    """
    from tqdm.auto import tqdm  # imported here: only batches draw a progress bar

    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    items = list(requests)
    folder = Path(out_dir) if out_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    results: list[BatchResult | None] = [None] * len(items)
    todo: list[tuple[int, GenerationRequest, Path | None]] = []
    for index, item in enumerate(items):
        try:
            request = as_request(item)
        except InvalidParameters as exc:
            results[index] = BatchResult(index, None, error=exc)
            continue
        path = folder / clip_file_name(index, request) if folder is not None else None
        saved = _reusable(path, request) if path is not None else None
        if saved is not None:
            results[index] = BatchResult(index, request, saved, path=path, reused=True)
        else:
            todo.append((index, request, path))

    def update_manifest() -> None:
        if folder is not None:
            write_manifest(
                folder, (ManifestLine.for_result(results[i], i, item, folder) for i, item in enumerate(items))
            )

    def run(index: int, request: GenerationRequest, path: Path | None) -> BatchResult:
        try:
            clip = generate(request)
            if path is not None:
                clip.save(path)
        except Exception as exc:  # one item's failure, whatever it is, must not lose the others
            return BatchResult(index, request, error=exc)
        return BatchResult(index, request, clip, path=path)

    update_manifest()
    failed = sum(1 for result in results if result is not None and not result.ok)
    bar = tqdm(
        total=len(items), initial=len(items) - len(todo), disable=not progress, desc="generating", unit="clip"
    )
    if failed:
        bar.set_postfix(failed=failed)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="flexaudio")
    try:
        for future in as_completed([pool.submit(run, *job) for job in todo]):
            result = future.result()
            results[result.index] = result
            failed += not result.ok
            update_manifest()
            bar.update()
            if failed:
                bar.set_postfix(failed=failed)
    finally:
        # On Ctrl-C, drop what has not started instead of waiting for the whole batch.
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
    return [result for result in results if result is not None]
