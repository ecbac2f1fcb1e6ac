"""The Python API a chat app holds in memory: load a meme once, then generate many prompts.

```python
meme = Meme.load("memes/running-apple-cat")
gif_bytes, note = meme.generate("running blueberry-elephant", seed=1).encode("gif", max_kb=512)
```
"""

import importlib.util
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checks import (check_choice, check_device, check_fps, check_guidance, check_max_kb, check_prompt, check_seed,
                      check_steps)
from ..device import DEFAULT_DEVICE, PRECISIONS, compute_dtype, pick_device
from ..errors import MemeError
from ..export_folder import (EXPORT_JSON, EXPORT_PRECISIONS, ExportManifest, engine_identity, engines_for,
                             find_export, list_exports)
from ..media.writers import ENCODERS, encode_media, fit_to_kb
from ..meme_folder import ADAPTER, MemeManifest, load_inversion, read_meme
from ..models.adapter import load_adapter
from ..models.base import load_base
from ..models.text import truncation_warning
from ..models.vae import vae_scale_factor
from ..models.video_unet import VideoUNet
from .backend import SAMPLERS, Backend
from .torch_backend import TorchBackend

BACKENDS = ("auto", "torch", "ort", "trt")
STARTS = ("inversion", "noise")
TEXT_CACHE_SIZE = 256
MIN_DEFAULT_FPS = 8.0


@dataclass
class GenSettings:
    """How one clip is sampled: the defaults of `Meme.generate`, `meme gen` and the bench."""
    seed: int = 0
    steps: int = 25
    guidance: float = 7.5  # 1: no guidance
    negative: str = ""
    sampler: str = "ddim"
    start: str = "inversion"  # the stored inversion keeps the clip's motion; "noise" starts from the seed
    fps: float | None = None  # default: the clip's, at least MIN_DEFAULT_FPS

    def check(self) -> "GenSettings":
        check_seed(self.seed)
        check_steps(self.steps)
        check_guidance(self.guidance)
        check_choice("--sampler", self.sampler, tuple(SAMPLERS))
        check_choice("--start", self.start, STARTS)
        check_fps(self.fps)
        if "\x00" in self.negative:
            raise MemeError("the negative prompt holds a NUL character: pass plain text")
        return self


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
        if check_max_kb(max_kb) is None:
            return encode_media(self.frames, fmt, self.fps), None
        return fit_to_kb(self.frames, fmt, self.fps, max_kb)


class Meme:
    def __init__(self, folder: Path, manifest: MemeManifest, backend: Backend, inversion: torch.Tensor):
        self.folder, self.manifest, self.backend, self.inversion = folder, manifest, backend, inversion
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()  # one generation at a time: the backend's buffers are shared

    @classmethod
    def load(cls, folder: str | Path, *, base: str | None = None, device: str = DEFAULT_DEVICE,
             precision: str = "auto", backend: str = "auto", base_config: str | None = None,
             allow_pickle: bool = False, cuda_graphs: bool = True, compile: bool = False) -> "Meme":
        """Loads the meme's base (or `base`, if it moved), its adapter and inversion, and checks they belong
        together; with `backend` ort or trt, the meme's export instead (`meme export`), which needs no base."""
        check_choice("--backend", backend, BACKENDS)
        check_choice("--precision", precision, PRECISIONS)
        check_device(device)
        folder = Path(folder)
        manifest = read_meme(folder)
        dev = pick_device(device)
        export_folder = None
        if backend == "auto":
            backend, export_folder = choose_backend(folder, manifest, dev, precision)
        if backend in ("ort", "trt"):
            graphs = load_graph_backend(backend, folder, manifest, dev, precision, export_folder)
            s = graphs.manifest.shapes
            shape = (1, s.latent_channels, s.frames, s.latent_side, s.latent_side)
            return cls(folder, manifest, graphs, load_inversion(folder, shape).to(dev))
        dtype = compute_dtype(precision, dev)
        b = load_base(base or manifest.base.reference, device=dev, dtype=dtype, config=base_config,
                      allow_pickle=allow_pickle)
        video = VideoUNet(b.unet, manifest.group_norm)
        load_adapter(video, folder / ADAPTER, b.reference, b.fingerprint)
        video.to(dtype).eval()
        side = manifest.size // vae_scale_factor(b.vae)
        inversion = load_inversion(folder, (1, b.vae.config.latent_channels, manifest.frames, side, side))
        return cls(folder, manifest, TorchBackend(b, video, dev, dtype, cuda_graphs=cuda_graphs, compile=compile),
                   inversion.to(dev))

    def text_embedding(self, prompt: str) -> torch.Tensor:
        """(1, L, d) fp32, cached per prompt."""
        if prompt in self._text_cache:
            self._text_cache.move_to_end(prompt)
        else:
            self._text_cache[prompt] = self.backend.encode_text([prompt])
            if len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return self._text_cache[prompt]

    def generate(self, prompt: str, *, seed: int = GenSettings.seed, steps: int = GenSettings.steps,
                 guidance: float = GenSettings.guidance, negative: str = GenSettings.negative,
                 sampler: str = GenSettings.sampler, start: str = GenSettings.start,
                 fps: float | None = GenSettings.fps) -> Generation:
        """One clip for `prompt` with the meme's motion. Same arguments, same backend: the same frames."""
        check_prompt(prompt)
        s = GenSettings(seed, steps, guidance, negative, sampler, start, fps).check()
        with self._lock:
            return self._generate(prompt, s)

    def _generate(self, prompt: str, s: GenSettings) -> Generation:
        warnings = [w for w in (truncation_warning(self.backend.tokenizer, p) for p in (prompt, s.negative)) if w]
        sync = torch.cuda.synchronize if self.backend.device.type == "cuda" else (lambda: None)
        seconds = {}
        t0 = t = time.perf_counter()
        text = self.text_embedding(prompt)
        if s.guidance > 1:
            text = torch.cat([self.text_embedding(s.negative), text])
        sync()
        seconds["text"] = time.perf_counter() - t

        t = time.perf_counter()
        if s.start == "inversion":
            x = self.inversion.float()
        else:
            generator = torch.Generator().manual_seed(s.seed)
            x = torch.randn(self.inversion.shape, generator=generator).to(self.backend.device)
        latents = self.backend.sample(s.sampler, s.steps, x, text, s.guidance)
        sync()
        seconds["denoise"] = time.perf_counter() - t
        if not torch.isfinite(latents).all():
            raise MemeError(f"sampling {prompt!r} gave non-finite latents (guidance {s.guidance:g} in "
                            f"{self.backend.name}): lower --guidance, or use --precision fp32")

        t = time.perf_counter()
        frames = self.backend.decode(latents).numpy()
        seconds["decode"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - t0
        settings = {**asdict(s), "guidance": s.guidance if s.guidance > 1 else "none", "backend": self.backend.name}
        settings.pop("fps")
        fps = s.fps or max(self.manifest.fps, MIN_DEFAULT_FPS)
        return Generation(prompt, frames, fps, settings, seconds, warnings)


def choose_backend(folder: Path, meme: MemeManifest, device: torch.device,
                   precision: str = "auto") -> tuple[str, Path | None]:
    """The fastest backend this meme's exports allow here, and the export it runs: TensorRT engines built for
    this GPU; on a CPU, ONNX Runtime when the export's own timing there found it faster than torch; else torch
    (also for bf16, which no export holds)."""
    if precision not in ("auto", *EXPORT_PRECISIONS):
        return "torch", None
    exports = [(path, m) for path, m in list_exports(folder, meme.adapter_sha256)
               if precision in ("auto", m.built_from.precision)]
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
        for path, export in exports:
            checks = [g.check for g in export.graphs.values()]
            if export.device == "cpu" and sum(c.ort_s for c in checks) < sum(c.torch_s for c in checks):
                return "ort", path
    return "torch", None


def load_graph_backend(kind: str, folder: Path, meme: MemeManifest, device: torch.device, precision: str,
                       export_folder: Path | None = None) -> Backend:
    """The ONNX Runtime or TensorRT backend on `export_folder`, or on the meme's newest export of `precision`
    (auto: fp16 on a GPU, fp32 on a CPU, else whichever there is)."""
    if export_folder is not None:
        manifest = ExportManifest.from_json(export_folder / EXPORT_JSON)
    elif precision == "auto":
        export_folder, manifest = find_export(folder, meme.adapter_sha256,
                                              prefer="fp16" if device.type == "cuda" else "fp32")
    elif precision in EXPORT_PRECISIONS:
        export_folder, manifest = find_export(folder, meme.adapter_sha256, precision)
    else:
        raise MemeError(f"--precision {precision} has no export: exports are fp32 or fp16 (`meme export --precision`)")
    if kind == "ort":
        from .ort_backend import OrtBackend

        return OrtBackend(export_folder, manifest, device)
    from .trt_backend import TrtBackend

    return TrtBackend(export_folder, manifest, device)
