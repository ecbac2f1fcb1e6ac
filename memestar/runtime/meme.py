"""The Python API a chat app holds in memory: load a meme once, then generate many prompts, alone or batched.

```python
meme = Meme.load("memes/running-apple-cat")
gif_bytes, note = meme.generate("running blueberry-elephant", seed=1).encode("gif", max_kb=512)
options = meme.generate_batch(variant_requests("running blueberry-elephant", GenSettings(), 4))  # 4 to pick from
```
Many memes on one base: `MemeStore` (`store.py`). Settings and requests: `settings.py`; a clip and its
encodings: `generation.py`; which backend: `backends/choice.py`.
"""

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..checks import check_prompt
from ..device import DEFAULT_DEVICE
from ..errors import MemeError
from ..formats.meme_folder import MemeManifest, read_meme
from ..media.matte import background_colour
from ..models.text import truncation_warning
from ..prompts import subject_prompt
from ..sampling.batch import MAX_BATCH
from ..sampling.plan import first_step as first_step_of
from ..sampling.starts import layout_start, mix_start
from .backends.base import Backend
from .generation import Generation
from .runtimes import Runtimes
from .settings import MIN_DEFAULT_FPS, GenRequest, GenSettings, follows, still_action, still_negative
from .still import cut_out, place_along_track, read_still
from .subjects import check_subject_base, learned_prompt, subject_for


class Meme:
    """A loaded meme: its manifest, inversion and (torch backend) adapter tensors, on a runtime it may share with
    other memes of the same base (`runtimes.BaseRuntime`)."""

    def __init__(
        self,
        folder: Path,
        manifest: MemeManifest,
        runtime,
        inversion: torch.Tensor,
        adapter: dict[str, torch.Tensor] | None = None,
    ):
        self.folder, self.manifest, self.runtime, self.inversion = folder, manifest, runtime, inversion
        self.adapter = adapter
        self.stamp = None  # meme.json as it was when loaded (`MemeStore`)
        self._background = None  # `background`, once known
        self.nbytes = inversion.nbytes + sum(t.nbytes for t in (adapter or {}).values())

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        base: str | None = None,
        device: str = DEFAULT_DEVICE,
        precision: str = "auto",
        backend: str = "auto",
        base_config: str | None = None,
        allow_pickle: bool = False,
        cuda_graphs: bool = True,
        compile: bool = False,
    ) -> "Meme":
        """Loads the meme's base (or `base`, if it moved), its adapter and inversion, and checks they belong
        together; with `backend` ort or trt, the meme's export instead (`meme export`), which needs no base."""
        runtimes = Runtimes(
            base=base,
            device=device,
            precision=precision,
            backend=backend,
            base_config=base_config,
            allow_pickle=allow_pickle,
            cuda_graphs=cuda_graphs,
            compile=compile,
        )
        folder = Path(folder).absolute()
        manifest = read_meme(folder)
        return cls(folder, manifest, *runtimes.open(folder, manifest))

    def prompt_with(self, subject: str) -> str:
        """This meme's prompt with a new subject: "running {apple-cat}" -> "running blueberry-elephant"."""
        return subject_prompt(self.manifest.prompt, self.manifest.template, subject)

    def prompt_with_learned(self, folder: str | Path) -> str:
        """This meme's prompt with the learned subject at `folder` (`meme subject learn`), whose word goes into the
        base's text encoder (once): "{subject} popping" -> "a <my-cat> popping". Refused in one line when the
        subject was learned on another base, or on an export made before learned subjects ran on exports."""
        subject, embedding = subject_for(self.manifest, Path(folder), self.folder.name)
        self.runtime.use_subject(subject, embedding)
        return learned_prompt(self.manifest, subject)

    @property
    def backend(self) -> Backend:
        """The backend with this meme's adapter in it (for direct use from one thread)."""
        self.runtime.activate(self)
        return self.runtime.backend

    def text_embedding(self, prompt: str) -> torch.Tensor:
        """(1, L, d) fp32, cached per prompt (per base)."""
        return self.runtime.text_embedding(prompt)

    def generate(
        self,
        prompt: str | None = None,
        *,
        image: np.ndarray | str | Path | None = None,
        seed: int = GenSettings.seed,
        steps: int = GenSettings.steps,
        guidance: float = GenSettings.guidance,
        negative: str = GenSettings.negative,
        sampler: str = GenSettings.sampler,
        start: str = GenSettings.start,
        variation: float | None = GenSettings.variation,
        fps: float | None = GenSettings.fps,
        follow: str = GenSettings.follow,
        follow_measure: str = GenSettings.follow_measure,
        guidance_until: float = GenSettings.guidance_until,
        cache_interval: int = GenSettings.cache_interval,
        strength: float = GenSettings.strength,
    ) -> Generation:
        """One clip for `prompt` with the meme's motion; with `image` (a photo's path, or RGB/RGBA `(h, w, 3|4)`
        uint8), that still's subject animated along the meme's subject track, `strength` of it redrawn (the
        prompt may then be left out: `still_action`). Same arguments, same backend: the same frames."""
        settings = GenSettings(
            seed,
            steps,
            guidance,
            negative,
            sampler,
            start,
            variation,
            fps,
            follow,
            follow_measure,
            guidance_until,
            cache_interval,
            strength,
        )
        if image is None:
            return self.generate_batch([GenRequest(prompt, settings)])[0]
        if isinstance(image, (str, Path)):
            image = read_still(Path(image))
        elif not (
            isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] in (3, 4)
        ):
            raise MemeError("image must be a photo's path, or an RGB or RGBA array (h, w, 3 or 4) of uint8")
        elif image.shape[-1] == 3:
            image = np.concatenate([image, np.full_like(image[..., :1], 255)], axis=-1)
        action = still_action(self.manifest, self.folder.name)
        prompt, settings = (prompt, settings) if prompt else (action, still_negative(self.manifest, settings))
        return self.generate_batch([GenRequest(prompt, settings, cut_out(image))])[0]

    def generate_batch(self, requests: list[GenRequest]) -> list[Generation]:
        """One clip per request, in order. Requests with the same `batch_key` (sampler, steps, guided-or-not,
        following, the work savers and an animated still's strength) run together, up to `MAX_BATCH` clips at a
        time; each clip equals its own `generate` (within rounding)."""
        for r in requests:
            check_prompt(r.prompt)
            r.settings.check()
            follows(self.manifest, r.settings, self.folder.name)
            if r.subject is not None:  # its word in the base's text encoder before the prompt is encoded
                check_subject_base(self.manifest, r.subject[0], self.folder.name)
                self.runtime.use_subject(*r.subject)
            if r.image is not None:
                still_action(self.manifest, self.folder.name)  # a meme with a track
                self.background  # noqa: B018 (known before the batch runs: a meme made before may sample it)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.batch_key, []).append(i)
        out: list[Generation | None] = [None] * len(requests)
        for indices in groups.values():
            for k in range(0, len(indices), MAX_BATCH):
                chunk = indices[k : k + MAX_BATCH]
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

    @property
    def background(self) -> np.ndarray:
        """The RGB `(3,)` of the plain background the meme's clip is on: stored with its track, else (a meme made
        before) the border of the meme's own prompt sampled from its inversion, once."""
        if self._background is None:
            stored = self.manifest.subject_track.background
            if stored is None:
                stored = background_colour(self.generate(self.manifest.prompt, follow="off").frames)
            self._background = np.asarray(stored, np.float32)
        return self._background

    def _still_start(self, requests: list[GenRequest], x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Start latents `(n, c, f, h, w)` for a batch of stills (one strength), and the step they start from: each
        still's subject placed along the meme's track on its background, encoded, and noised to the strength's step
        with the start latents `x` (standardised per clip) as the noise."""
        s, backend = requests[0].settings, self.backend
        schedule = backend.sampler(s.sampler, s.steps)
        first_step = first_step_of(schedule.timestep_list, backend.scheduler_config, s.strength)
        track, background = self.manifest.subject_track.tensor().numpy(), self.background
        placed = np.stack([place_along_track(r.image, track, background, self.manifest.size) for r in requests])
        latents = backend.encode_pixels(torch.from_numpy(placed))  # n c f h w
        if first_step == len(schedule):  # strength 0: the still as placed
            return latents, first_step
        dims = tuple(range(1, x.dim()))
        noise = (x - x.mean(dims, keepdim=True)) / x.std(dims, keepdim=True)
        return schedule.noised(latents, noise.to(latents.device), first_step), first_step

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

        x = torch.cat([self.start_latents(r.settings) for r in requests])  # n c f h w
        first_step = 0
        if requests[0].image is not None:  # the batch's stills, placed, encoded and noised to their strength
            t = time.perf_counter()
            x, first_step = self._still_start(requests, x)
            sync()
            seconds["still"] = time.perf_counter() - t
        t = time.perf_counter()
        follow = follows(self.manifest, first, self.folder.name)
        track = (
            self.manifest.subject_track.tensor().to(backend.device).expand(len(requests), -1, -1) if follow else None
        )  # n f 3
        latents = backend.sample(
            first.sampler,
            first.steps,
            x,
            text,
            [r.settings.guidance for r in requests],
            track,
            guidance_until=first.guidance_until,
            cache_interval=first.cache_interval,
            follow_measure=first.follow_measure,
            first_step=first_step,
        )
        sync()
        seconds["denoise"] = time.perf_counter() - t
        for r, z in zip(requests, latents):
            if not torch.isfinite(z).all():
                raise MemeError(
                    f"sampling {r.prompt!r} gave non-finite latents (guidance {r.settings.guidance:g} "
                    f"in {backend.name}): lower --guidance, or use --precision fp32"
                )

        t = time.perf_counter()
        frames = backend.decode(latents).numpy()  # n f H W 3
        seconds["decode"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - t0
        out = []
        for r, clip in zip(requests, frames):
            s = r.settings
            warnings = [w for w in (truncation_warning(backend.tokenizer, p) for p in (r.prompt, s.negative)) if w]
            settings = {
                **asdict(s),
                "guidance": s.guidance if s.guidance > 1 else "none",
                "variation": s.noise_share,
                "follow": follow,
                "backend": backend.name,
                "follow_measure": s.follow_measure if follow else None,
                "guidance_until": s.guidance_until if s.guidance > 1 else None,
                "cache_interval": s.cache_interval if backend.caches_deep_features else 1,
                "strength": s.strength if r.image is not None else None,
            }
            settings.pop("fps")
            fps = s.fps or max(self.manifest.fps, MIN_DEFAULT_FPS)
            out.append(Generation(r.prompt, clip, fps, settings, dict(seconds), warnings, len(requests)))
        return out
