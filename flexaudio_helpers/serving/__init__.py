"""The local FlexServe-compatible endpoint (needs the ``local`` extra: torch, diffusers).

- `pipeline`: load Stable Audio Open (real weights or the offline model) and generate.
- `offline_model`: the small random-weight model built in code, for machines with no hub.
- `speed`: speed options chosen by device (dtype, SDPA, torch.compile, VAE slicing/tiling, offload).
- `audio_to_audio`: a source clip as the starting point, and the init noise level.
- `queue`: one run at a time on the device, a bounded wait list.
- `app`: the FastAPI app (route, auth, errors, WAV out).
- ``python -m flexaudio_helpers.serving``: the command that serves it.
"""

import warnings

# Warnings no user can act on, kept out of notebooks and the server's log:
# torchsde's Brownian interval warns on every run about float rounding at the interval ends
# (harmless, see diffusers #13274), and diffusers' Oobleck VAE still calls the deprecated
# torch.nn.utils.weight_norm.
warnings.filterwarnings("ignore", message=r"Should have t[ab]", category=UserWarning)
warnings.filterwarnings("ignore", message=r".*torch\.nn\.utils\.weight_norm", category=FutureWarning)
