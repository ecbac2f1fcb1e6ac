"""Test-only: writes a diffusers SD1.x folder as one original-format (LDM/CompVis) `.safetensors` checkpoint.

This is the inverse of diffusers' single-file conversion (`diffusers.loaders.single_file_utils`), as in
diffusers' script `scripts/convert_diffusers_to_original_stable_diffusion.py`, but with the numbers of
blocks and of layers per block read from the folder's configs instead of SD1.x's fixed 4 x 2, so tests
can run `from_single_file(..., config=folder)` offline on tiny random models. It covers the layers SD1.x
models have (UNet, KL VAE, CLIP text encoder), nothing more: any other weight raises KeyError.
"""

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _unet_rules(cfg: dict) -> list:
    n = cfg["layers_per_block"] + 1  # LDM slots per level: the resnets, then the down/upsampler
    up_slot = [2 if "CrossAttn" in t else 1 for t in cfg["up_block_types"]]  # the upsampler follows any attention
    return [
        (r"time_embedding\.linear_1\.", lambda m: "time_embed.0."),
        (r"time_embedding\.linear_2\.", lambda m: "time_embed.2."),
        (r"conv_in\.", lambda m: "input_blocks.0.0."),
        (r"conv_norm_out\.", lambda m: "out.0."),
        (r"conv_out\.", lambda m: "out.2."),
        (
            r"down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.",
            lambda m: f"input_blocks.{1 + int(m[1]) * n + int(m[2])}.0.{UNET_RESNET[m[3]]}.",
        ),
        (r"down_blocks\.(\d+)\.attentions\.(\d+)\.", lambda m: f"input_blocks.{1 + int(m[1]) * n + int(m[2])}.1."),
        (r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.", lambda m: f"input_blocks.{(int(m[1]) + 1) * n}.0.op."),
        (r"mid_block\.resnets\.(\d+)\.(\w+)\.", lambda m: f"middle_block.{2 * int(m[1])}.{UNET_RESNET[m[2]]}."),
        (r"mid_block\.attentions\.(\d+)\.", lambda m: f"middle_block.{2 * int(m[1]) + 1}."),
        (
            r"up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.",
            lambda m: f"output_blocks.{int(m[1]) * n + int(m[2])}.0.{UNET_RESNET[m[3]]}.",
        ),
        (r"up_blocks\.(\d+)\.attentions\.(\d+)\.", lambda m: f"output_blocks.{int(m[1]) * n + int(m[2])}.1."),
        (
            r"up_blocks\.(\d+)\.upsamplers\.0\.",
            lambda m: f"output_blocks.{int(m[1]) * n + n - 1}.{up_slot[int(m[1])]}.",
        ),
    ]


def _vae_resnet(name: str) -> str:
    return "nin_shortcut" if name == "conv_shortcut" else name


def _vae_rules(cfg: dict) -> list:
    last = len(cfg["block_out_channels"]) - 1  # LDM numbers the decoder's levels bottom-up
    return [
        (r"(encoder|decoder)\.conv_norm_out\.", lambda m: f"{m[1]}.norm_out."),
        (r"((?:encoder|decoder)\.conv_(?:in|out)|(?:post_)?quant_conv)\.", lambda m: f"{m[1]}."),
        (
            r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.",
            lambda m: f"encoder.down.{m[1]}.block.{m[2]}.{_vae_resnet(m[3])}.",
        ),
        (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", lambda m: f"encoder.down.{m[1]}.downsample."),
        (
            r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.",
            lambda m: f"decoder.up.{last - int(m[1])}.block.{m[2]}.{_vae_resnet(m[3])}.",
        ),
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{last - int(m[1])}.upsample."),
        (
            r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(\w+)\.",
            lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}.{_vae_resnet(m[3])}.",
        ),
        (
            r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.",
            lambda m: f"{m[1]}.mid.attn_1.{VAE_ATTENTION[m[2]]}.",
        ),
    ]


def _rename(key: str, rules: list) -> str:
    for pattern, new in rules:
        m = re.match(pattern, key)
        if m:
            return new(m) + key[m.end() :]
    raise KeyError(f"no LDM name for {key}")


def _component(folder: Path, name: str) -> tuple[dict, dict]:
    weights = {}
    for file in sorted((folder / name).glob("*.safetensors")):
        weights.update(load_file(file))
    return json.loads((folder / name / "config.json").read_text()), weights


def write_ldm_checkpoint(diffusers_folder: Path, out_path: Path) -> None:
    """Writes the UNet, VAE and text encoder of `diffusers_folder` to `out_path` with SD1.x's LDM key names."""
    folder = Path(diffusers_folder)
    out: dict[str, torch.Tensor] = {}
    cfg, weights = _component(folder, "unet")
    rules = _unet_rules(cfg)
    for key, t in weights.items():
        out["model.diffusion_model." + _rename(key, rules)] = t
    cfg, weights = _component(folder, "vae")
    rules = _vae_rules(cfg)
    for key, t in weights.items():
        name = _rename(key, rules)
        if ".mid.attn_1." in name and name.endswith(".weight") and t.ndim == 2:
            t = t.reshape(*t.shape, 1, 1)  # LDM's VAE attention uses 1x1 convs where diffusers uses Linear
        out["first_stage_model." + name] = t
    _, weights = _component(folder, "text_encoder")
    for key, t in weights.items():  # transformers >= 5.6 drops CLIPTextModel's `text_model.` level: put it back
        out["cond_stage_model.transformer.text_model." + key.removeprefix("text_model.")] = t
    save_file({k: t.contiguous() for k, t in out.items()}, str(out_path), metadata={"format": "pt"})
