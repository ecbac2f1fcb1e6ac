"""Built-in bases with random weights, built from configs without touching the network.

- `random-tiny`: a small SD-shaped model (64 px images <-> 8x8 latents), built in about a second, for
  tests and smoke runs.
- `random-sd15`: the full SD1.5 architecture (859.5 M UNet parameters), for timing on GPUs: the
  arithmetic does not depend on the values.

Both use a byte-level CLIP tokenizer (every byte is a token, no merges): any text tokenizes, and no
vocabulary has to be downloaded.
"""

import json
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

RANDOM_BASES = ("random-tiny", "random-sd15")

# SD1.x's noise schedule, as its scheduler config states it.
SD_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)

_CONFIGS = {
    "random-tiny": dict(
        unet=dict(
            sample_size=8,
            block_out_channels=(32, 64),
            layers_per_block=1,
            norm_num_groups=16,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
        ),
        vae=dict(
            block_out_channels=(8, 16, 16, 16),
            layers_per_block=1,
            norm_num_groups=8,
            latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            sample_size=64,
            scaling_factor=0.18215,
        ),
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32),
    ),
    "random-sd15": dict(
        unet=dict(
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            cross_attention_dim=768,
            attention_head_dim=8,
        ),
        vae=dict(
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            sample_size=512,
            scaling_factor=0.18215,
        ),
        text=dict(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            projection_dim=768,
        ),
    ),
}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's map from bytes to printable characters, the alphabet of byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


def write_byte_tokenizer(folder: Path) -> None:
    """A CLIP tokenizer folder whose vocabulary is the 256 bytes, with and without `</w>`."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))


def write_pipeline(folder: Path, models: dict, dtype: torch.dtype) -> None:
    """`models` (unet, vae, text_encoder) in `dtype` in diffusers' layout, with SD's DDIM scheduler and a model index:
    a base `load_base` reads (the tokenizer is the caller's)."""
    for sub, model in models.items():
        model.to(dtype).save_pretrained(folder / sub)
    DDIMScheduler(**SD_SCHEDULER).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "_diffusers_version": diffusers.__version__,
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "scheduler": ["diffusers", "DDIMScheduler"],
                "safety_checker": [None, None],
                "feature_extractor": [None, None],
                "requires_safety_checker": False,
            },
            indent=2,
        )
    )


def build_random_base(name: str, folder: Path, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Builds `name` with seeded random weights and writes it to `folder` in diffusers layout."""
    cfg = _CONFIGS[name]
    folder = Path(folder)
    write_byte_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    torch.manual_seed(seed)
    text_cfg = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text_cfg.update(cfg["text"])
    models = {
        "unet": UNet2DConditionModel(**cfg["unet"]),
        "vae": AutoencoderKL(**cfg["vae"]),
        "text_encoder": CLIPTextModel(CLIPTextConfig(**text_cfg)),
    }
    write_pipeline(folder, models, dtype)
    return folder
