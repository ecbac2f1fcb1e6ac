"""Where a stage's base model comes from and where it runs, as options (light: read by the CLI, which starts
without torch; `base.py` loads what it names)."""

from dataclasses import dataclass

from ..device import DEFAULT_DEVICE, PRECISIONS
from ..options import option


@dataclass(kw_only=True)
class BaseSource:
    """Where a stage's base model comes from and where it runs: the options `meme train`, `meme export` and
    `meme gen` share (a stage redeclares one where its meaning differs, as `meme train`'s default base)."""

    base: str | None = option(None, "Where the meme's base is now, if it moved (must be the same weights).")
    base_config: str | None = option(None, "Diffusers folder with the configs for a single-file base.")
    allow_pickle: bool = option(False, "Allow pickled .ckpt/.bin weights (unpickling runs code).")
    device: str = option(DEFAULT_DEVICE, "auto, cpu, cuda or cuda:N.")
    precision: str = option("auto", "auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16 or fp32.", choices=PRECISIONS)
