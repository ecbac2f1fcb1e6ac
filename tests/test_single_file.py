"""Loading one original-format (LDM) `.safetensors` checkpoint through diffusers' single-file path, offline."""

import socket

import pytest
import torch
from ldm_checkpoint import write_ldm_checkpoint

from memestar.models.base import load_base
from memestar.models.random_base import build_random_base


@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch):
    """random-tiny as a diffusers folder and as one LDM checkpoint; any network connection fails the test."""

    def no_network(*args, **kwargs):
        raise AssertionError(f"network connection attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    folder = build_random_base("random-tiny", tmp_path / "base")
    ckpt = tmp_path / "tiny.safetensors"
    write_ldm_checkpoint(folder, ckpt)
    return folder, ckpt


def test_single_file_loads_the_same_weights_as_the_folder(tiny_checkpoint):
    folder, ckpt = tiny_checkpoint
    from_file = load_base(str(ckpt), config=str(folder))
    from_folder = load_base(str(folder))
    for name in ("unet", "vae", "text_encoder"):
        got, want = getattr(from_file, name).state_dict(), getattr(from_folder, name).state_dict()
        assert got.keys() == want.keys(), name
        for key, t in want.items():
            assert got[key].dtype == t.dtype and torch.equal(got[key], t), f"{name}.{key}"
    assert from_file.fingerprint.id == from_folder.fingerprint.id


def test_single_file_in_half_precision_matches_full_precision(tiny_checkpoint):
    folder, ckpt = tiny_checkpoint
    fp32 = load_base(str(ckpt), config=str(folder))
    fp16 = load_base(str(ckpt), config=str(folder), dtype=torch.float16)
    assert fp16.unet.dtype == fp16.vae.dtype == fp16.text_encoder.dtype == torch.float16
    assert fp16.fingerprint.matches(fp32.fingerprint)


def test_incomplete_checkpoint_is_refused_clearly(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    from memestar.errors import MemeError

    folder, ckpt = tiny_checkpoint
    state = load_file(ckpt)
    dropped = next(k for k in state if k.startswith("cond_stage_model.") and ".layers.1." in k)
    del state[dropped]
    partial = tmp_path / "partial.safetensors"
    save_file(state, partial)
    with pytest.raises(MemeError, match="not a complete"):
        load_base(str(partial), config=str(folder))
