"""Adapter files: only the tuned tensors of a video UNet, tied to the base they were tuned on.

`adapter.safetensors` holds the trainable tensors under their SD-style names (fp16 by default) and, in
its metadata, the adapter format, the GroupNorm mode and the base model's reference and fingerprint.
"""

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import MemeError
from ..files import atomic_path
from .base import BaseFingerprint
from .video_unet import VideoUNet

ADAPTER_FORMAT = "memestar-adapter/1"


def save_adapter(video_unet: VideoUNet, path: str | Path, base_reference: str, base_fingerprint: BaseFingerprint,
                 dtype: torch.dtype = torch.float16) -> None:
    """Writes the trainable tensors atomically (a temporary name, then a rename)."""
    path = Path(path)
    tensors = {name: p.detach().to("cpu", dtype).contiguous() for name, p in video_unet.trainable_parameters().items()}
    metadata = {
        "format": ADAPTER_FORMAT,
        "group_norm": video_unet.group_norm,
        "base_reference": base_reference,
        "base_fingerprint": json.dumps(base_fingerprint.to_dict()),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def read_adapter_metadata(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MemeError(f"adapter file {path} not found")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as e:
        raise MemeError(f"{path} is not a readable safetensors adapter ({e}): retrain or restore the file") from e
    if metadata.get("format") != ADAPTER_FORMAT:
        raise MemeError(f"{path} is not a meme-star adapter (format {metadata.get('format')!r}, expected "
                        f"{ADAPTER_FORMAT!r})")
    return metadata


def load_adapter(video_unet: VideoUNet, path: str | Path, base_reference: str,
                 base_fingerprint: BaseFingerprint) -> dict:
    """Loads the tuned tensors into `video_unet` after checking that it is built on the same base."""
    metadata = read_adapter_metadata(path)
    trained_on = BaseFingerprint.from_dict(json.loads(metadata["base_fingerprint"]))
    if not trained_on.matches(base_fingerprint):
        raise MemeError(f"adapter {path} was tuned on base {metadata['base_reference']!r} (fingerprint "
                        f"{trained_on.id}), not on {base_reference!r} (fingerprint {base_fingerprint.id}): "
                        f"load it with the base it was tuned on")
    if metadata["group_norm"] != video_unet.group_norm:
        raise MemeError(f"adapter {path} was tuned with group_norm={metadata['group_norm']!r}, but the video UNet "
                        f"uses {video_unet.group_norm!r}")
    params = video_unet.trainable_parameters()
    with safe_open(path, framework="pt") as f:
        names = set(f.keys())
        if names != set(params):
            missing, extra = sorted(set(params) - names), sorted(names - set(params))
            raise MemeError(f"adapter {path} does not fit this UNet (missing {missing[:3]}, unexpected {extra[:3]})")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(f.get_tensor(name))
    return metadata
