"""`meme serve`'s options and their defaults, apart from the server so that the CLI imports no web framework."""

import os
from dataclasses import dataclass
from pathlib import Path

from ..device import DEFAULT_DEVICE
from ..errors import MemeError
from ..runtime.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMES
from ..train.meme import DEFAULT_BASE

TOKEN_ENV = "MEMESTAR_TOKEN"


@dataclass
class ServeOptions:
    memes: Path = Path("memes")
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # None: $MEMESTAR_TOKEN if set, else no auth (the default bind is loopback only)
    device: str = DEFAULT_DEVICE
    precision: str = "auto"
    backend: str = "auto"
    max_memes: int = DEFAULT_MAX_MEMES
    max_bytes: int = DEFAULT_MAX_BYTES
    window_ms: float = 10.0
    max_batch: int = 8
    max_queue: int = 64
    deadline_s: float = 60.0
    max_upload_mb: float = 50.0
    train_base: str = DEFAULT_BASE
    train_base_config: str | None = None
    cuda_graphs: bool = True

    def check(self) -> "ServeOptions":
        if self.token is None:
            self.token = os.environ.get(TOKEN_ENV) or None
        if not self.memes.is_dir():
            raise MemeError(f"memes folder {self.memes} not found: pass a folder of memes made by `meme train` "
                            f"(it may be empty)")
        for name, low, high in (("window_ms", 0, 1000), ("max_batch", 1, 64), ("max_queue", 1, 100_000),
                                ("deadline_s", 0.1, 3600), ("max_upload_mb", 0.01, 4096), ("port", 0, 65535)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise MemeError(f"--{name.replace('_', '-')} is {value}: it must be from {low} to {high}")
        if self.token is not None and len(self.token) < 16:
            raise MemeError("--token is shorter than 16 characters: use a long random token (e.g. `openssl rand "
                            "-hex 32`)")
        return self
