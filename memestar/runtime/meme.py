"""The Python API a chat app holds in memory: load a meme once, then generate many prompts.

```python
meme = Meme.load("memes/running-apple-cat")
gif_bytes, note = meme.generate("running blueberry-elephant", seed=1).encode("gif", max_kb=512)
```
"""

import importlib.util
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..device import compute_dtype, pick_device
from ..errors import MemeError
from ..export_folder import EXPORT_JSON, EXPORT_PRECISIONS, engine_identity, engines_for, find_export, list_exports
from ..media.writers import ENCODERS, encode_media, fit_to_kb
from ..meme_folder import ADAPTER, load_inversion, read_meme
from ..models.adapter import load_adapter
from ..models.base import load_base
from ..models.text import truncation_warning
from ..models.video_unet import VideoUNet
from .backend import SAMPLERS
from .torch_backend import TorchBackend

BACKENDS = ("auto", "torch", "ort", "trt")
STARTS = ("inversion", "noise")
TEXT_CACHE_SIZE = 256
MIN_DEFAULT_FPS = 8.0
MAX_STEPS = 500  # a clip sampled sparsely from a long video would otherwise crawl


@dataclass
class Generation:
    prompt: str
    frames: np.ndarray  # f h w 3, uint8
    fps: float
    settings: dict
    seconds: dict
    warnings: list[str] = field(default_factory=list)

    def encode(self, fmt: str = "gif", max_kb: float | None = None) -> tuple[bytes, str | None]:
        """The clip as GIF/MP4/WebP bytes; with `max_kb`, fitted under that size (the note says how)."""
        if fmt not in ENCODERS:
            raise MemeError(f"unknown format {fmt!r}: use gif, mp4 or webp")
        if max_kb is None:
            return encode_media(self.frames, fmt, self.fps), None
        return fit_to_kb(self.frames, fmt, self.fps, max_kb)


class Meme:
    def __init__(self, folder: Path, meta: dict, backend, inversion: torch.Tensor):
        self.folder, self.meta, self.backend, self.inversion = folder, meta, backend, inversion
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()  # one generation at a time: the backend's buffers are shared

    @classmethod
    def load(cls, folder: str | Path, *, base: str | None = None, device: str | None = None,
             precision: str = "auto", backend: str = "auto", base_config: str | None = None,
             allow_pickle: bool = False, cuda_graphs: bool = True, compile: bool = False) -> "Meme":
        """Loads the meme's base (or `base`, if it moved), its adapter and inversion, and checks they belong
        together; with `backend` ort or trt, the meme's export instead (`meme export`), which needs no base."""
        folder = Path(folder)
        meta = read_meme(folder)
        if backend not in BACKENDS:
            raise MemeError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
        dev = pick_device(device)
        inversion = load_inversion(folder).to(dev)
        export_folder = None
        if backend == "auto":
            backend, export_folder = choose_backend(folder, meta, dev, precision)
        if backend in ("ort", "trt"):
            return cls(folder, meta, load_graph_backend(backend, folder, meta, dev, precision, export_folder),
                       inversion)
        dtype = compute_dtype(precision, dev)
        b = load_base(base or meta["base"]["reference"], device=dev, dtype=dtype, config=base_config,
                      allow_pickle=allow_pickle)
        video = VideoUNet(b.unet, meta["group_norm"])
        load_adapter(video, folder / ADAPTER, b.reference, b.fingerprint)
        video.to(dtype).eval()
        return cls(folder, meta, TorchBackend(b, video, dev, dtype, cuda_graphs=cuda_graphs, compile=compile),
                   inversion)

    def text_embedding(self, prompt: str) -> torch.Tensor:
        """(1, 77, d), cached per prompt."""
        if prompt in self._text_cache:
            self._text_cache.move_to_end(prompt)
        else:
            self._text_cache[prompt] = self.backend.encode_text([prompt])
            if len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return self._text_cache[prompt]

    def generate(self, prompt: str, *, seed: int = 0, steps: int = 25, guidance: float = 7.5, negative: str = "",
                 sampler: str = "ddim", start: str = "inversion", fps: float | None = None) -> Generation:
        """One clip for `prompt` with the meme's motion. Same arguments, same backend: the same frames."""
        check_generation(prompt, steps, guidance, sampler, start)
        with self._lock:
            return self._generate(prompt, seed, steps, guidance, negative, sampler, start, fps)

    def _generate(self, prompt, seed, steps, guidance, negative, sampler, start, fps) -> Generation:
        warnings = [w for w in (truncation_warning(self.backend.tokenizer, p) for p in (prompt, negative)) if w]
        sync = torch.cuda.synchronize if self.backend.device.type == "cuda" else (lambda: None)
        seconds = {}
        t0 = t = time.perf_counter()
        text = self.text_embedding(prompt)
        if guidance > 1:
            text = torch.cat([self.text_embedding(negative), text])
        sync()
        seconds["text"] = time.perf_counter() - t

        t = time.perf_counter()
        if start == "inversion":
            x = self.inversion.float()
        else:
            shape = self.inversion.shape
            x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(self.backend.device)
        latents = self.backend.sample(sampler, steps, x, text, guidance)
        sync()
        seconds["denoise"] = time.perf_counter() - t

        t = time.perf_counter()
        frames = self.backend.decode(latents).numpy()
        seconds["decode"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - t0
        settings = {"seed": seed, "steps": steps, "guidance": guidance if guidance > 1 else "none",
                    "negative": negative, "sampler": sampler, "start": start, "backend": self.backend.name}
        return Generation(prompt, frames, fps or max(self.meta["fps"], MIN_DEFAULT_FPS), settings, seconds, warnings)


def choose_backend(folder: Path, meta: dict, device: torch.device, precision: str = "auto") -> tuple[str, Path | None]:
    """The fastest backend this meme's exports allow here, and the export it runs: TensorRT engines built for
    this GPU; on a CPU, ONNX Runtime when the export's own timing there found it faster than torch; else torch
    (also for bf16, which no export holds)."""
    if precision not in ("auto", *EXPORT_PRECISIONS):
        return "torch", None
    exports = [(path, m) for path, m in list_exports(folder, meta["files"][ADAPTER])
               if precision in ("auto", m["built_from"]["precision"])]
    if device.type == "cuda":
        try:
            identity = engine_identity(device)
        except MemeError:  # no TensorRT here
            return "torch", None
        for path, _ in exports:
            if engines_for(path, identity) is not None:
                return "trt", path
        return "torch", None
    if importlib.util.find_spec("onnxruntime"):
        for path, manifest in exports:
            checks = [g["check"] for g in manifest["graphs"].values()]
            if manifest["device"] == "cpu" and sum(c["ort_s"] for c in checks) < sum(c["torch_s"] for c in checks):
                return "ort", path
    return "torch", None


def load_graph_backend(kind: str, folder: Path, meta: dict, device: torch.device, precision: str,
                       export_folder: Path | None = None):
    """The ONNX Runtime or TensorRT backend on `export_folder`, or on the meme's newest export of `precision`
    (auto: fp16 on a GPU, fp32 on a CPU, else whichever there is)."""
    if export_folder is not None:
        manifest = json.loads((export_folder / EXPORT_JSON).read_text())
    elif precision == "auto":
        export_folder, manifest = find_export(folder, meta["files"][ADAPTER],
                                              prefer="fp16" if device.type == "cuda" else "fp32")
    elif precision in EXPORT_PRECISIONS:
        export_folder, manifest = find_export(folder, meta["files"][ADAPTER], precision)
    else:
        raise MemeError(f"--precision {precision} has no export: exports are fp32 or fp16 (`meme export --precision`)")
    if kind == "ort":
        from .ort_backend import OrtBackend

        return OrtBackend(export_folder, manifest, device)
    from .trt_backend import TrtBackend

    return TrtBackend(export_folder, manifest, device)


def check_generation(prompt: str, steps: int, guidance: float, sampler: str, start: str) -> None:
    if not prompt.strip():
        raise MemeError("the prompt is empty: say what the meme should show, e.g. \"running blueberry-elephant\"")
    if not 1 <= steps <= MAX_STEPS:
        raise MemeError(f"--steps is {steps}: it must be between 1 and {MAX_STEPS}")
    if guidance < 1:
        raise MemeError(f"--guidance {guidance:g} is below 1: use 1 for no guidance (the prompt alone, one UNet "
                        f"pass per step) or a scale above 1 such as 7.5")
    if sampler not in SAMPLERS:
        raise MemeError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    if start not in STARTS:
        raise MemeError(f"--start must be one of {', '.join(STARTS)}, not {start!r}")
