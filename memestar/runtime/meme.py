"""The Python API a chat app holds in memory: load a meme once, then generate many prompts, alone or batched.

```python
meme = Meme.load("memes/running-apple-cat")
gif_bytes, note = meme.generate("running blueberry-elephant", seed=1).encode("gif", max_kb=512)
options = meme.generate_batch(variant_requests("running blueberry-elephant", GenSettings(), 4))  # 4 to pick from
```
Many memes on one base: `MemeStore` (`store.py`); `Meme.load` is a store of its own.
"""

import importlib.util
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..checks import (MAX_SEED, check_cache_interval, check_choice, check_fps, check_guidance, check_guidance_until,
                      check_max_kb, check_prompt, check_seed, check_steps, check_variants, check_variation,
                      plain_text)
from ..device import DEFAULT_DEVICE
from ..errors import MemeError
from ..export_folder import (EXPORT_JSON, EXPORT_PRECISIONS, ExportManifest, engine_identity, engines_for,
                             find_export, list_exports)
from ..media.fit import fit_to_preset
from ..media.look import Look, apply_look
from ..media.presets import get_preset
from ..media.writers import ENCODERS, encode_media, fit_to_kb
from ..meme_folder import MemeManifest
from ..models.batch import MAX_BATCH
from ..models.follow import FOLLOW_MEASURES
from ..models.text import truncation_warning
from ..prompts import subject_prompt
from .backend import SAMPLERS, Backend
from .starts import layout_start, mix_start

BACKENDS = ("auto", "torch", "ort", "trt")
STARTS = ("inversion", "layout", "mix", "noise")
MIN_DEFAULT_FPS = 8.0
# The variation of variants when none is given: on the tiny world it keeps trajectory correlation at 0.73 (0.83 at
# 0, 0.68 at 0.5, 0.04 at 1) while variants differ by 4.5 levels per pixel (benchmarks/results/variation-tiny-*).
VARIANTS_VARIATION = 0.25
# The variation of `--start mix` when none is given: fresh noise with a little of the inversion in it
# (MotionDirector's noise prior), chosen by `meme eval` (README).
MIX_VARIATION = 0.5
# The variation of `--start layout` when none is given: the inversion below half the latent's Nyquist frequency, the
# seed's noise above: of the cuts a pilot tried (0.25, 0.5, 0.75) the middle one, motion and shape both (README).
LAYOUT_VARIATION = 0.5
DEFAULT_VARIATIONS = {"mix": MIX_VARIATION, "layout": LAYOUT_VARIATION}  # of the starts that take one; others: 0
FOLLOWS = ("auto", "on", "off")


@dataclass
class GenSettings:
    """How one clip is sampled: the defaults of `Meme.generate`, `meme gen`, `meme serve` and the bench."""
    seed: int = 0
    # DDIM 10, guidance down to timestep 200, deep features every other step, the subject measured on the latents:
    # of the points `meme eval` measured, the least work (0.14 of DDIM 25's at SD1.5 size, 256 px) within 0.02 of
    # every quality figure of DDIM 12 from the inversion and the mix (benchmarks/results/eval-tiny-work-savers-*)
    steps: int = 10
    guidance: float = 7.5  # 1: no guidance
    negative: str = ""
    sampler: str = "ddim"
    # "inversion": the stored inversion, which keeps the clip's motion; "layout": the inversion's coarse layout with
    # the seed's noise for the detail (the subject's place kept, its shape free); "mix": the seed's noise with some of
    # the inversion in it; "noise": the seed's noise alone (`starts.py`)
    start: str = "inversion"
    # how much comes from the seed's noise (mix: a share of the variance; layout: the cut, the inversion below 1 - v
    # of Nyquist); None: 0 for one clip from the inversion (the inversion as stored), VARIANTS_VARIATION for variants
    # (else they would be one clip N times), DEFAULT_VARIATIONS for the mix and layout starts
    variation: float | None = None
    fps: float | None = None  # default: the clip's, at least MIN_DEFAULT_FPS
    # hold the subject on the clip's subject track while sampling (models/follow.py): "on" (an error for a meme with
    # no track), "off", or "auto": on where the meme has a track
    follow: str = "auto"
    # where a followed subject is measured: "latents" (no decoder in the loop) or "pixels" (a VAE decode per step)
    follow_measure: str = "latents"
    # guidance only while the timestep is at or above this share of training's; the later steps run the conditional
    # half alone (models/guidance.py). 0: every step guided
    guidance_until: float = 0.2
    # the UNet's deep features computed every this many steps and reused between (models/deep_cache.py); 1: off
    cache_interval: int = 2

    def check(self) -> "GenSettings":
        check_seed(self.seed)
        check_steps(self.steps)
        check_guidance(self.guidance)
        check_choice("--sampler", self.sampler, tuple(SAMPLERS))
        check_choice("--start", self.start, STARTS)
        check_choice("--follow", self.follow, FOLLOWS)
        check_choice("--follow-measure", self.follow_measure, FOLLOW_MEASURES)
        check_guidance_until(self.guidance_until)
        check_cache_interval(self.cache_interval)
        if self.variation is not None:
            check_variation(self.variation)
        check_fps(self.fps)
        if not isinstance(self.negative, str):
            raise MemeError("the negative prompt must be plain text")
        plain_text(self.negative, "the negative prompt")
        return self

    @property
    def noise_share(self) -> float:
        """How much of the start latents comes from the seed's noise: a share of their variance, or with the layout
        start the cut (the inversion below 1 - v of Nyquist); 0 the inversion, 1 fresh noise."""
        if self.start == "noise":
            return 1.0
        if self.variation is not None:
            return self.variation
        return DEFAULT_VARIATIONS.get(self.start, 0.0)

    @property
    def batch_key(self) -> tuple:
        """Requests with the same key can run as one batch: one schedule with the same steps guided and cached,
        following (measured alike) or not."""
        return (self.sampler, self.steps, self.guidance > 1, self.follow, self.follow_measure, self.guidance_until,
                self.cache_interval)


def follows(manifest: MemeManifest, s: GenSettings, name: str) -> bool:
    """Whether `s` holds the subject on the meme's subject track; `--follow on` for a meme without one is an error."""
    if s.follow == "on" and manifest.subject_track is None:
        raise MemeError(f"meme {name} has no subject track to follow (its clip has no plain background, or it was "
                        f"trained before meme-star tracked subjects): use --follow off, or retrain it")
    return s.follow == "on" or (s.follow == "auto" and manifest.subject_track is not None)


@dataclass
class GenRequest:
    prompt: str
    settings: GenSettings = field(default_factory=GenSettings)


def variant_requests(prompt: str, settings: GenSettings, variants: int) -> list[GenRequest]:
    """`variants` requests for one prompt, seeds `seed`, `seed + 1`, ...: options to pick from. From the
    inversion they differ only with a variation above 0 (`VARIANTS_VARIATION` unless one is given)."""
    check_variants(variants)
    if settings.seed + variants - 1 > MAX_SEED:
        raise MemeError(f"--seed {settings.seed} leaves no room for {variants} variants: use a lower seed")
    variation = settings.variation
    if variation is None and settings.start == "inversion":
        variation = VARIANTS_VARIATION if variants > 1 else 0.0
    return [GenRequest(prompt, replace(settings, seed=settings.seed + i, variation=variation))
            for i in range(variants)]


@dataclass
class Generation:
    prompt: str
    frames: np.ndarray  # f h w 3, uint8
    fps: float
    settings: dict
    seconds: dict  # of the batch this clip was sampled in
    warnings: list[str] = field(default_factory=list)
    batch_size: int = 1

    def encode(self, fmt: str = "gif", max_kb: float | None = None,
               look: Look | None = None) -> tuple[bytes, str | None]:
        """The clip as GIF/MP4/WebP bytes in `look`; with `max_kb`, fitted under that size (the note says how)."""
        if fmt not in ENCODERS:
            raise MemeError(f"unknown format {fmt!r}: use gif, mp4 or webp")
        look = (look or Look()).check(self.frames.shape[1], fmt)
        frames = apply_look(self.frames, look)
        if check_max_kb(max_kb) is None:
            return encode_media(frames, fmt, self.fps), None
        return fit_to_kb(frames, fmt, self.fps, max_kb)

    def encode_for(self, preset: str, look: Look | None = None) -> tuple[bytes, str]:
        """The clip in `look` as the chat app `preset` takes it (`media/presets.py`: canvas, container, timing, byte
        budget), and a note saying what fitting it gave up; a one-line error naming the limit it cannot meet."""
        app = get_preset(preset)
        look = (look or Look()).check(app.side)
        return fit_to_preset(apply_look(self.frames, look, app.side), self.fps, app)


class Meme:
    """A loaded meme: its manifest, inversion and (torch backend) adapter tensors, on a runtime it may share with
    other memes of the same base (`store.BaseRuntime`)."""

    def __init__(self, folder: Path, manifest: MemeManifest, runtime, inversion: torch.Tensor,
                 adapter: dict[str, torch.Tensor] | None = None):
        self.folder, self.manifest, self.runtime, self.inversion = folder, manifest, runtime, inversion
        self.adapter = adapter
        self.stamp = None  # meme.json as it was when loaded (`MemeStore`)
        self.nbytes = inversion.nbytes + sum(t.nbytes for t in (adapter or {}).values())

    @classmethod
    def load(cls, folder: str | Path, *, base: str | None = None, device: str = DEFAULT_DEVICE,
             precision: str = "auto", backend: str = "auto", base_config: str | None = None,
             allow_pickle: bool = False, cuda_graphs: bool = True, compile: bool = False) -> "Meme":
        """Loads the meme's base (or `base`, if it moved), its adapter and inversion, and checks they belong
        together; with `backend` ort or trt, the meme's export instead (`meme export`), which needs no base."""
        from .store import MemeStore

        return MemeStore(base=base, device=device, precision=precision, backend=backend, base_config=base_config,
                         allow_pickle=allow_pickle, cuda_graphs=cuda_graphs, compile=compile).load(folder)

    def prompt_with(self, subject: str) -> str:
        """This meme's prompt with a new subject: "running {apple-cat}" -> "running blueberry-elephant"."""
        return subject_prompt(self.manifest.prompt, self.manifest.template, subject)

    @property
    def backend(self) -> Backend:
        """The backend with this meme's adapter in it (for direct use from one thread)."""
        self.runtime.activate(self)
        return self.runtime.backend

    def text_embedding(self, prompt: str) -> torch.Tensor:
        """(1, L, d) fp32, cached per prompt (per base)."""
        return self.runtime.text_embedding(prompt)

    def generate(self, prompt: str, *, seed: int = GenSettings.seed, steps: int = GenSettings.steps,
                 guidance: float = GenSettings.guidance, negative: str = GenSettings.negative,
                 sampler: str = GenSettings.sampler, start: str = GenSettings.start,
                 variation: float | None = GenSettings.variation, fps: float | None = GenSettings.fps,
                 follow: str = GenSettings.follow, follow_measure: str = GenSettings.follow_measure,
                 guidance_until: float = GenSettings.guidance_until,
                 cache_interval: int = GenSettings.cache_interval) -> Generation:
        """One clip for `prompt` with the meme's motion. Same arguments, same backend: the same frames."""
        return self.generate_batch([GenRequest(prompt, GenSettings(seed, steps, guidance, negative, sampler, start,
                                                                   variation, fps, follow, follow_measure,
                                                                   guidance_until, cache_interval))])[0]

    def generate_batch(self, requests: list[GenRequest]) -> list[Generation]:
        """One clip per request, in order. Requests with the same `batch_key` (sampler, steps, guided-or-not, following
        and the work savers) run together, up to `MAX_BATCH` clips at a time; each clip equals its own `generate`
        (within rounding)."""
        for r in requests:
            check_prompt(r.prompt)
            r.settings.check()
            follows(self.manifest, r.settings, self.folder.name)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.settings.batch_key, []).append(i)
        out: list[Generation | None] = [None] * len(requests)
        for indices in groups.values():
            for k in range(0, len(indices), MAX_BATCH):
                chunk = indices[k:k + MAX_BATCH]
                with self.runtime.lock:  # one batch at a time on a runtime: its buffers and adapter are shared
                    for i, g in zip(chunk, self._run_batch([requests[i] for i in chunk])):
                        out[i] = g
        return out

    def warm_up(self, batch_sizes: tuple[int, ...], settings: GenSettings | None = None) -> dict[int, float]:
        """Runs one batch of each size with `settings` (default: the defaults), so that the CUDA graphs of those
        batch sizes are captured (and cuDNN has planned) before a user waits on them. Batch size -> seconds."""
        took = {}
        for n in batch_sizes:
            t = time.perf_counter()
            self.generate_batch([GenRequest("warm-up", settings or GenSettings())] * min(n, MAX_BATCH))
            took[n] = time.perf_counter() - t
        return took

    def start_latents(self, s: GenSettings) -> torch.Tensor:
        """`(1, c, f, h, w)` fp32: the stored inversion with a share v (`noise_share`) of the seed's noise, blended
        whole or, with the layout start, above a spatial frequency (`starts.py`)."""
        v = s.noise_share
        if v == 0:
            return self.inversion.float()
        noise = torch.randn(self.inversion.shape, generator=torch.Generator().manual_seed(s.seed))
        noise = noise.to(self.inversion.device)
        if v == 1:
            return noise
        return (layout_start if s.start == "layout" else mix_start)(self.inversion.float(), noise, v)

    def _run_batch(self, requests: list[GenRequest]) -> list[Generation]:
        first = requests[0].settings
        backend = self.backend
        sync = torch.cuda.synchronize if backend.device.type == "cuda" else (lambda: None)
        seconds = {}
        t0 = t = time.perf_counter()
        text = torch.cat([self.text_embedding(r.prompt) for r in requests])  # n L d
        if first.guidance > 1:
            text = torch.cat([torch.cat([self.text_embedding(r.settings.negative) for r in requests]), text])
        sync()
        seconds["text"] = time.perf_counter() - t

        t = time.perf_counter()
        x = torch.cat([self.start_latents(r.settings) for r in requests])  # n c f h w
        follow = follows(self.manifest, first, self.folder.name)
        track = self.manifest.subject_track.tensor().to(backend.device).expand(len(requests), -1, -1) \
            if follow else None  # n f 3
        latents = backend.sample(first.sampler, first.steps, x, text, [r.settings.guidance for r in requests], track,
                                 guidance_until=first.guidance_until, cache_interval=first.cache_interval,
                                 follow_measure=first.follow_measure)
        sync()
        seconds["denoise"] = time.perf_counter() - t
        for r, z in zip(requests, latents):
            if not torch.isfinite(z).all():
                raise MemeError(f"sampling {r.prompt!r} gave non-finite latents (guidance {r.settings.guidance:g} "
                                f"in {backend.name}): lower --guidance, or use --precision fp32")

        t = time.perf_counter()
        frames = backend.decode(latents).numpy()  # n f H W 3
        seconds["decode"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - t0
        out = []
        for r, clip in zip(requests, frames):
            s = r.settings
            warnings = [w for w in (truncation_warning(backend.tokenizer, p) for p in (r.prompt, s.negative)) if w]
            settings = {**asdict(s), "guidance": s.guidance if s.guidance > 1 else "none",
                        "variation": s.noise_share, "follow": follow, "backend": backend.name,
                        "follow_measure": s.follow_measure if follow else None,
                        "guidance_until": s.guidance_until if s.guidance > 1 else None,
                        "cache_interval": s.cache_interval if backend.caches_deep_features else 1}
            settings.pop("fps")
            fps = s.fps or max(self.manifest.fps, MIN_DEFAULT_FPS)
            out.append(Generation(r.prompt, clip, fps, settings, dict(seconds), warnings, len(requests)))
        return out


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
