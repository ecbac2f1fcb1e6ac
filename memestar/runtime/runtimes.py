"""The backends memes run on: one per base for the torch backend, shared by every meme tuned on it, and one per
export for ONNX Runtime and TensorRT (their weights are in the export).

A meme is only its adapter (the tuned tensors) and its inversion. Switching memes on a shared base copies the
adapter's tensors into the video UNet in place: the base is never reloaded, and captured CUDA graphs stay valid
(they read the parameters' memory).
"""

import threading
import time
from collections import OrderedDict
from pathlib import Path

import torch

from ..checks import check_choice, check_device
from ..device import DEFAULT_DEVICE, PRECISIONS, compute_dtype, pick_device
from ..errors import MemeError
from ..formats.meme_folder import ADAPTER, MEME_JSON, MemeManifest, load_inversion
from ..formats.subject_file import EMBEDDING
from ..models.adapter import layout_difference, read_adapter, read_adapter_metadata
from ..models.base import load_base
from ..models.vae import vae_scale_factor
from ..models.video_unet import VideoUNet
from .backends.base import Backend
from .backends.choice import choose_backend, load_graph_backend
from .backends.torch_backend import TorchBackend
from .options import BACKENDS

TEXT_CACHE_SIZE = 256


class BaseRuntime:
    """A backend in memory and what the memes on it share: a lock (one batch at a time), the text embeddings of
    recent prompts, and, for the torch backend, which meme's adapter is in its video UNet."""

    def __init__(self, backend: Backend, video: VideoUNet | None = None):
        self.backend, self.video = backend, video
        self.lock = threading.RLock()
        self.active = None  # the Meme whose adapter is in `video`
        self.swaps, self.last_swap_s = 0, 0.0
        self._text: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.subjects: dict[str, str] = {}  # learned subjects in the text encoder: token -> its embedding's sha256

    def text_embedding(self, prompt: str) -> torch.Tensor:
        """(1, L, d) fp32, cached per prompt."""
        with self.lock:
            if prompt in self._text:
                self._text.move_to_end(prompt)
            else:
                self._text[prompt] = self.backend.encode_text([prompt])
                if len(self._text) > TEXT_CACHE_SIZE:
                    self._text.popitem(last=False)
            return self._text[prompt]

    def clear_text_cache(self) -> None:
        with self.lock:
            self._text.clear()

    def use_subject(self, manifest, embedding: torch.Tensor) -> None:
        """Learned subject `manifest` (its `embedding`) as a word of the base's text encoder; prompts encoded before
        a subject of that name changed are dropped from the cache."""
        with self.lock:
            digest = manifest.files[EMBEDDING]
            if self.subjects.get(manifest.token) == digest:
                return
            self.backend.add_token(manifest.token, embedding)
            self.subjects[manifest.token] = digest
            self.clear_text_cache()

    def activate(self, meme) -> None:
        """Puts `meme`'s adapter into the shared UNet, in place (nothing to do for an export's own runtime)."""
        with self.lock:
            if self.video is None or self.active is meme:
                return
            t = time.perf_counter()
            with torch.no_grad():
                for name, p in self.video.trainable_parameters().items():
                    p.copy_(meme.adapter[name], non_blocking=True)
            if self.backend.device.type == "cuda":
                torch.cuda.synchronize(self.backend.device)
            self.active, self.swaps, self.last_swap_s = meme, self.swaps + 1, time.perf_counter() - t


class Runtimes:
    """Opens memes on runtimes, keeping one `BaseRuntime` per (base, device, precision, UNet layout) for the torch
    backend; ONNX Runtime and TensorRT memes each get one of their own. Not thread-safe: `MemeStore` holds a lock."""

    def __init__(
        self,
        *,
        device: str = DEFAULT_DEVICE,
        precision: str = "auto",
        backend: str = "auto",
        base: str | None = None,
        base_config: str | None = None,
        allow_pickle: bool = False,
        cuda_graphs: bool = True,
        compile: bool = False,
    ):
        check_choice("--backend", backend, BACKENDS)
        check_choice("--precision", precision, PRECISIONS)
        check_device(device)
        self.device, self.precision, self.backend = pick_device(device), precision, backend
        self.dtype = compute_dtype(precision, self.device)  # of the torch backend's bases
        self.base, self.base_config, self.allow_pickle = base, base_config, allow_pickle
        self.cuda_graphs, self.compile = cuda_graphs, compile
        self.bases: dict[tuple, BaseRuntime] = {}

    def open(self, folder: Path, manifest: MemeManifest) -> tuple[BaseRuntime, torch.Tensor, dict | None]:
        """What the meme in `folder` runs on: its runtime (shared with the memes of its base), its inversion and
        (torch backend) its adapter tensors, on the device and checked against the base."""
        backend, export_folder = self.backend, None
        if backend == "auto":
            backend, export_folder = choose_backend(folder, manifest, self.device, self.precision)
        if backend in ("ort", "trt"):
            graphs = load_graph_backend(backend, folder, manifest, self.device, self.precision, export_folder)
            s = graphs.manifest.shapes
            shape = (1, s.latent_channels, s.frames, s.latent_side, s.latent_side)
            return BaseRuntime(graphs), load_inversion(folder, shape).to(self.device), None
        # before a runtime is built from what meme.json says
        difference = layout_difference(read_adapter_metadata(folder / ADAPTER), **manifest.layout)
        if difference:
            name, tuned, said = difference
            raise MemeError(
                f"{folder / MEME_JSON} says {name}={said}, but its adapter was tuned with {tuned}: the "
                f"folder is damaged, retrain the meme"
            )
        key = (manifest.base.id, str(self.device), str(self.dtype), *manifest.layout.values())
        runtime = self.bases.get(key) or self._base_runtime(manifest)
        b, video = runtime.backend.base, runtime.video
        _, tensors = read_adapter(video, folder / ADAPTER, b.reference, b.fingerprint)
        self.bases[key] = runtime  # only now: a base whose first meme does not fit it is not kept
        adapter = {name: t.to(self.device, self.dtype) for name, t in tensors.items()}
        side = manifest.size // vae_scale_factor(b.vae)
        inversion = load_inversion(folder, (1, b.vae.config.latent_channels, manifest.frames, side, side))
        return runtime, inversion.to(self.device), adapter

    def _base_runtime(self, manifest: MemeManifest) -> BaseRuntime:
        b = load_base(
            self.base or manifest.base.reference,
            device=self.device,
            dtype=self.dtype,
            config=self.base_config,
            allow_pickle=self.allow_pickle,
        )
        video = VideoUNet(b.unet, **manifest.layout).to(self.dtype).eval()
        return BaseRuntime(
            TorchBackend(b, video, self.device, self.dtype, cuda_graphs=self.cuda_graphs, compile=self.compile), video
        )
