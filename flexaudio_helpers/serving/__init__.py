"""The local FlexServe-compatible endpoint (needs the ``local`` extra: torch, diffusers).

- `pipeline`: load Stable Audio Open (real weights or the offline model) and generate.
- `offline_model`: the small random-weight model built in code, for machines with no hub.
- `queue`: one generation at a time on the device, a bounded wait list in front.
- `app`: the FastAPI app (route, auth, errors, WAV out).
- ``python -m flexaudio_helpers.serving``: the command that serves it.
"""
