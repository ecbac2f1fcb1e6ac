"""Adapter files: only the tuned tensors of a video UNet, tied to the base they were tuned on.

`adapter.safetensors` holds the trainable tensors under their SD-style names (fp16 by default) and, in
its metadata, the adapter format, how the video UNet was built (GroupNorm mode, frame positions) and the base
model's reference and fingerprint.
"""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ..errors import MemeError
from ..files import save_safetensors
from .base import BaseFingerprint
from .layout import FRAME_ATTENTION_BEFORE
from .video_unet import VideoUNet

ADAPTER_FORMAT = "memestar-adapter/1"


def save_adapter(
    video_unet: VideoUNet,
    path: str | Path,
    base_reference: str,
    base_fingerprint: BaseFingerprint,
    dtype: torch.dtype = torch.float16,
) -> None:
    """Writes the trainable tensors atomically (a temporary name, then a rename); the same tensors and base give
    the same bytes."""
    tensors = {name: p.detach().to("cpu", dtype) for name, p in video_unet.trainable_parameters().items()}
    metadata = {
        "format": ADAPTER_FORMAT,
        "group_norm": video_unet.group_norm,
        "frame_positions": json.dumps(video_unet.frame_positions),
        "frame_attention": video_unet.frame_attention,
        "base_reference": base_reference,
        "base_fingerprint": json.dumps(base_fingerprint.to_dict()),
    }
    save_safetensors(tensors, path, metadata)


def layout_difference(
    metadata: dict, group_norm: str, frame_positions: bool, frame_attention: str
) -> tuple[str, str, str] | None:
    """The first way the video UNet an adapter was tuned on (its metadata) differs from one built with `group_norm`,
    `frame_positions` and `frame_attention`: (field, as tuned, as asked), spelled as JSON; None when they agree.
    Adapters from before frame positions or frame attention existed have none in their metadata: tuned without
    positions, with frames 0 and i-1."""
    tuned = {
        "group_norm": metadata["group_norm"],
        "frame_positions": metadata.get("frame_positions", "false"),
        "frame_attention": metadata.get("frame_attention", FRAME_ATTENTION_BEFORE),
    }
    asked = {
        "group_norm": group_norm,
        "frame_positions": json.dumps(frame_positions),
        "frame_attention": frame_attention,
    }
    for name in tuned:
        if tuned[name] != asked[name]:
            return name, tuned[name], asked[name]
    return None


def read_adapter_metadata(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MemeError(f"adapter file {path} not found")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise MemeError(
            f"{path} is not a readable safetensors adapter ({str(e).splitlines()[0]}): retrain or restore the file"
        ) from e
    if metadata.get("format") != ADAPTER_FORMAT:
        raise MemeError(
            f"{path} is not a meme-star adapter (format {metadata.get('format')!r}, expected {ADAPTER_FORMAT!r})"
        )
    missing = [k for k in ("group_norm", "base_reference", "base_fingerprint") if k not in metadata]
    if missing:
        raise MemeError(f"{path} lacks the metadata {', '.join(missing)}: retrain the meme")
    return metadata


def load_adapter(
    video_unet: VideoUNet, path: str | Path, base_reference: str, base_fingerprint: BaseFingerprint
) -> dict:
    """Loads the tuned tensors into `video_unet` after checking that it is built on the same base."""
    metadata, tensors = read_adapter(video_unet, path, base_reference, base_fingerprint)
    with torch.no_grad():
        for name, p in video_unet.trainable_parameters().items():
            p.copy_(tensors[name])
    return metadata


def read_adapter(
    video_unet: VideoUNet, path: str | Path, base_reference: str, base_fingerprint: BaseFingerprint
) -> tuple[dict, dict[str, torch.Tensor]]:
    """The adapter's metadata and tensors (on the CPU, as stored), checked against `video_unet`: the same base,
    GroupNorm mode, names and shapes, finite values."""
    metadata = read_adapter_metadata(path)
    try:
        trained_on = BaseFingerprint.from_dict(json.loads(metadata["base_fingerprint"]))
    except (ValueError, KeyError, TypeError) as e:
        raise MemeError(f"{path} has an unreadable base fingerprint in its metadata: retrain the meme") from e
    if not trained_on.matches(base_fingerprint):
        raise MemeError(
            f"adapter {path} was tuned on base {metadata['base_reference']!r} (fingerprint "
            f"{trained_on.id}), not on {base_reference!r} (fingerprint {base_fingerprint.id}): "
            f"load it with the base it was tuned on"
        )
    difference = layout_difference(metadata, **video_unet.layout)
    if difference:
        name, tuned, built = difference
        raise MemeError(
            f"adapter {path} was tuned with {name}={tuned}, but the video UNet has {name}={built}: load "
            f"it as its meme.json says"
        )
    params = video_unet.trainable_parameters()
    with safe_open(path, framework="pt") as f:
        names = set(f.keys())
        if names != set(params):
            missing, extra = sorted(set(params) - names), sorted(names - set(params))
            raise MemeError(f"adapter {path} does not fit this UNet (missing {missing[:3]}, unexpected {extra[:3]})")
        tensors = {name: f.get_tensor(name) for name in params}
    for name, t in tensors.items():
        if t.shape != params[name].shape:
            raise MemeError(
                f"adapter {path} does not fit this UNet: {name} is {tuple(t.shape)}, the UNet's is "
                f"{tuple(params[name].shape)}; retrain the meme on this base"
            )
        if not t.is_floating_point():
            raise MemeError(f"adapter {path} holds {t.dtype} values in {name}, not floating point: retrain the meme")
        if not torch.isfinite(t).all():
            raise MemeError(f"adapter {path} holds non-finite values in {name}: retrain the meme (lower --lr)")
    return metadata, tensors
