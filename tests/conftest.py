import os
from pathlib import Path

import pytest
import torch

# Before any test module imports huggingface_hub, which reads this once: no test may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Built-in bases are built into a cache folder: keep the suite's out of the user's home."""
    os.environ["MEMESTAR_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    from memestar.models.random_base import build_random_base

    return build_random_base("random-tiny", tmp_path_factory.mktemp("base") / "random-tiny")


@pytest.fixture
def tiny(tiny_dir):
    """A fresh random-tiny base (its UNet may be inflated in place by the test)."""
    from memestar.models.base import load_base

    return load_base(str(tiny_dir))


def text_embedding(base, prompt: str = "a red circle bouncing") -> torch.Tensor:
    ids = base.tokenizer([prompt], padding="max_length", max_length=base.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return base.text_encoder(ids)[0]
