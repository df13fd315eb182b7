"""flexaudio: text-to-audio with Stable Audio Open, from a notebook, on FlexAI or this machine.

One concern per module (import what you need; nothing heavy is imported here):

- `params`: the request model shared by client and server (`GenerationRequest`).
- `client`: `AudioClient`, which posts requests to any FlexServe-compatible endpoint.
- `audio`: `Clip`, the generated audio (save, load, facts, inline player).
- `plots`: waveforms, mel spectrograms, comparison grids and sweeps.
- `analysis`: what a clip measures (loudness, tempo, brightness...) and whether it followed its prompt.
- `explorer`: the widget parameter explorer (`explore()`); `explorer_session`: its history,
  worker threads and export, without widgets.
- `deploy`: serve on FlexAI or locally with the same verbs (`connect()`).
- `serving`: our local FlexServe-compatible endpoint (real or offline model).
- `tour`: what the tutorial notebooks share (the seed's examples, finding the endpoint).
- `errors`, `protocol`, `state`: typed errors, wire constants, the private state folder.
"""

__version__ = "0.1.0"
