"""The offline model: the real Stable Audio classes with small random weights, built in code.

Our machines cannot download the 5 GB gated weights, so CI and fresh laptops run the whole
tour on this instead. It is the real `diffusers.StableAudioPipeline` (T5 encoder, projection
model, DiT transformer, Oobleck VAE, cosine DPM-Solver scheduler) at the real output shape:
44.1 kHz stereo, up to 47.55 s, the same parameter limits. Only the sizes are shrunk, and
the weights are random, so **its audio is noise, not music**.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from diffusers import (
    AutoencoderOobleck,
    CosineDPMSolverMultistepScheduler,
    StableAudioDiTModel,
    StableAudioPipeline,
    StableAudioProjectionModel,
)
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from ..protocol import OFFLINE_NOTICE

OFFLINE_MODEL_NAME = "offline"
# save_pretrained() writes this file too, so a saved copy still knows it is the offline model.
MARKER_FILE = "flexaudio_offline.json"

# Random weights put the noise near full scale (our first offline model read about -8 LUFS, with
# peaks at -5 dBFS): a risk in headphones. An untrained model's output level is ours to choose, so
# its last layer is scaled down to about -35 LUFS with peaks near -34 dBFS.
OUTPUT_GAIN_DB = -39.0
_TEXT_WIDTH = 32  # T5 d_model
_CONDITIONING_WIDTH = 16  # projection output, transformer cross-attention input
_LATENT_CHANNELS = 4
# The VAE runs over the whole 47.55 s window (2 million samples) on every call, so its widths set
# the CPU cost of each generation: 4 latent channels and decoder width 2, against 8 and 4 before,
# took the fast tests from 213 s to 176 s on our 2-core machines. One transformer layer (not two)
# saves about 1.4 s of each 200-step generation.


def _tokenizer() -> T5Tokenizer:
    # A character-level unigram vocabulary, so any prompt tokenizes without a download.
    pieces = ["<pad>", "</s>", "<unk>", "\u2581"]
    pieces += [char for char in string.printable if not char.isspace()]
    pieces += ["\u2581" + char for char in string.ascii_letters + string.digits]
    vocab = [(piece, 0.0 if index < 3 else -1.0) for index, piece in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=128)


def build_offline_pipeline() -> StableAudioPipeline:
    """Build the offline pipeline. Deterministic: the same weights on every call."""
    tokenizer = _tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = T5EncoderModel(
            T5Config(
                vocab_size=len(tokenizer),
                d_model=_TEXT_WIDTH,
                d_kv=8,
                d_ff=37,
                num_layers=2,
                num_heads=4,
                pad_token_id=0,
                eos_token_id=1,
                decoder_start_token_id=0,
            )
        )
        # min/max are the real ones: they bound audio_end_in_s exactly as the real model does.
        projection_model = StableAudioProjectionModel(
            text_encoder_dim=_TEXT_WIDTH,
            conditioning_dim=_CONDITIONING_WIDTH,
            min_value=0,
            max_value=512,
        )
        transformer = StableAudioDiTModel(
            sample_size=1024,  # the real latent length: 47.55 s at 44.1 kHz
            in_channels=_LATENT_CHANNELS,
            num_layers=1,
            attention_head_dim=8,
            num_attention_heads=2,
            num_key_value_attention_heads=1,
            out_channels=_LATENT_CHANNELS,
            cross_attention_dim=16,
            time_proj_dim=8,
            global_states_input_dim=2 * _CONDITIONING_WIDTH,
            cross_attention_input_dim=_CONDITIONING_WIDTH,
        )
        vae_shape = {
            "downsampling_ratios": [2, 4, 4, 8, 8],  # the real hop of 2048 samples
            "channel_multiples": [1, 1, 2, 2, 2],
            "decoder_channels": 2,
            "decoder_input_channels": _LATENT_CHANNELS,
            "audio_channels": 2,
            "sampling_rate": 44_100,
        }
        vae = AutoencoderOobleck(encoder_hidden_size=4, **vae_shape)
        _scale_output(vae, 10 ** (OUTPUT_GAIN_DB / 20))
        # The encoder's output splits into mean and scale, so it needs twice the decoder's latent
        # channels (as the real 128 -> 64). Built last, so every other weight (and every
        # text-to-audio output) is what it was before audio-to-audio needed the encoder.
        vae.encoder = AutoencoderOobleck(encoder_hidden_size=2 * _LATENT_CHANNELS, **vae_shape).encoder
        vae.register_to_config(encoder_hidden_size=2 * _LATENT_CHANNELS)
    # The real model's scheduler settings (stabilityai/stable-audio-open-1.0 scheduler_config).
    scheduler = CosineDPMSolverMultistepScheduler(
        sigma_min=0.3,
        sigma_max=500,
        sigma_data=1.0,
        sigma_schedule="exponential",
        solver_order=2,
        prediction_type="v_prediction",
        solver_type="midpoint",
    )
    return StableAudioPipeline(
        vae=vae,
        text_encoder=text_encoder,
        projection_model=projection_model,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=scheduler,
    )


def _scale_output(vae: AutoencoderOobleck, gain: float) -> None:
    """Scale the decoder's last convolution: the audio is linear in it (no bias), so `gain` applies
    exactly. Under weight norm the layer's weight is g * v / |v|, so scaling g is enough."""
    last = vae.decoder.conv2
    with torch.no_grad():
        if hasattr(last, "weight_g"):  # torch.nn.utils.weight_norm, as diffusers uses today
            last.weight_g.mul_(gain)
        elif hasattr(last, "parametrizations"):  # torch.nn.utils.parametrizations.weight_norm
            last.parametrizations.weight.original0.mul_(gain)
        else:
            last.weight.mul_(gain)


def save_offline_model(folder: str | Path) -> Path:
    """Write the offline model as a diffusers folder that `from_pretrained` loads offline."""
    folder = Path(folder)
    build_offline_pipeline().save_pretrained(folder)
    (folder / MARKER_FILE).write_text(json.dumps({"offline": True, "notice": OFFLINE_NOTICE}))
    return folder


def is_offline_folder(folder: str | Path) -> bool:
    """True when a model folder was written by `save_offline_model`."""
    return (Path(folder) / MARKER_FILE).is_file()
