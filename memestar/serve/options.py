"""`meme serve`'s options and their defaults, apart from the server so that the CLI imports no web framework."""

import os
from dataclasses import dataclass
from pathlib import Path

from ..device import DEFAULT_DEVICE, PRECISIONS
from ..errors import MemeError
from ..options import declared, option
from ..runtime.options import BACKENDS, DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMES
from ..train.options import DEFAULT_BASE

TOKEN_ENV = "MEMESTAR_TOKEN"


@dataclass
class ServeOptions:
    memes: Path = option(
        Path("memes"),
        "Folder of memes (one sub-folder each, as `meme train` writes them); trained memes land here too.",
        argument=True,
    )
    subjects: Path | None = option(
        None,
        "Folder of learned subjects (`meme subject learn`): a gen body's subject is the one learned under that name "
        "when it is there; GET /subjects lists them, POST /subjects learns new ones into it.",
    )
    host: str = option("127.0.0.1", "Address to bind: loopback by default; 0.0.0.0 exposes it.")
    port: int = option(8000, "Port (0: any free one).", low=0, high=65535)
    # None: $MEMESTAR_TOKEN if set, else no auth (the default bind is loopback only)
    token: str | None = option(
        None, f"Require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV} if set, else no auth)."
    )
    device: str = option(DEFAULT_DEVICE, "auto, cpu, cuda or cuda:N.")
    precision: str = option("auto", "auto, bf16, fp16 or fp32.", choices=PRECISIONS)
    backend: str = option("auto", "auto, torch, ort or trt.", choices=BACKENDS)
    max_memes: int = option(DEFAULT_MAX_MEMES, "Memes kept in memory (least recently used go).", low=1, high=100_000)
    max_bytes: int = option(DEFAULT_MAX_BYTES, "Bytes of adapters and inversions kept in memory.", low=1, high=2**50)
    window_ms: float = option(10.0, "How long a request waits for others to batch with.", low=0, high=1000)
    max_batch: int = option(8, "Clips per batch at most.", low=1, high=64)
    max_queue: int = option(64, "Requests waiting at most; more get 503.", low=1, high=100_000)
    deadline_s: float = option(60.0, "Seconds a request may take; then 504.", low=0.1, high=3600, flags=("--deadline",))
    max_upload_mb: float = option(50.0, "Largest clip upload for training.", low=0.01, high=4096)
    train_base: str = option(DEFAULT_BASE, "Base that POST /memes tunes on.")
    train_base_config: str | None = option(None, "Diffusers folder with the configs for a single-file base.")
    cuda_graphs: bool = True

    def check(self) -> "ServeOptions":
        if self.token is None:
            self.token = os.environ.get(TOKEN_ENV) or None
        if not self.memes.is_dir():
            raise MemeError(
                f"memes folder {self.memes} not found: pass a folder of memes made by `meme train` (it may be empty)"
            )
        if self.subjects is not None and not self.subjects.is_dir():
            raise MemeError(
                f"subjects folder {self.subjects} not found: pass a folder `meme subject learn` writes into"
            )
        for d in declared(ServeOptions):
            value = getattr(self, d.name)
            if d.spec.low is not None and not d.spec.low <= value <= d.spec.high:
                raise MemeError(f"{d.flag} is {value}: it must be from {d.spec.low} to {d.spec.high}")
        if self.token is not None and len(self.token) < 16:
            raise MemeError(
                "--token is shorter than 16 characters: use a long random token (e.g. `openssl rand -hex 32`)"
            )
        return self
