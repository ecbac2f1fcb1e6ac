"""`torch.compile` of the UNet with its compiled kernels kept on disk, so that a second process does not compile again.

Inductor's own caches (the FX graph cache and the AOT autograd cache, both on in torch 2.13) key each compiled
graph by its content: the operations, input shapes and dtypes (so the frame count, size, batch bucket, precision and
every deep-cache mode get their own entry), the inductor configuration, the torch and Triton versions and the
device. The weights are graph inputs, not constants, so every meme on one base architecture, and every base of that
architecture, shares the entries. What they lack is a lasting home: by default they live under the temporary folder.
Here they go to `$MEMESTAR_CACHE/compile/torch-<version>/` (inductor and Triton alike), unless the user chose
folders with inductor's and Triton's own variables.
"""

import os
from pathlib import Path

import torch
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

from ...models.base import cache_dir

INDUCTOR_CACHE_ENV, TRITON_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"


def compile_cache_dir() -> Path:
    return cache_dir() / "compile" / f"torch-{torch.__version__}"


def compile_unet(unet: torch.nn.Module) -> Path:
    """Compiles `unet` in place (the parameters keep their names, so adapters still load and swap into them) with
    the on-disk cache; returns the inductor folder in use. Compilation itself happens at the first call per shape."""
    folder = compile_cache_dir()
    if os.environ.get(INDUCTOR_CACHE_ENV) in (None, os.path.abspath(default_cache_dir())):  # torch sets its default
        os.environ[INDUCTOR_CACHE_ENV] = str(folder / "inductor")  # on import: not the user
    os.environ.setdefault(TRITON_CACHE_ENV, str(folder / "triton"))
    unet.compile(dynamic=False)
    return Path(os.environ[INDUCTOR_CACHE_ENV])
