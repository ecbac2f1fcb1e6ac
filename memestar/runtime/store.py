"""Many memes on one base: the base in memory once per (fingerprint, device, precision), memes loaded on demand.

A meme is only its adapter (the tuned tensors) and its inversion, so a `MemeStore` keeps one `BaseRuntime` per
base and an LRU of memes bounded by count and bytes. Switching memes copies the adapter's tensors into the shared
video UNet in place: the base is never reloaded, and captured CUDA graphs stay valid (they read the parameters'
memory). ONNX Runtime and TensorRT memes carry their weights in their export, so each gets a runtime of its own.

```python
store = MemeStore(device="cuda")
for folder in ("memes/running-apple-cat", "memes/dancing-pear"):
    store.load(folder).generate("running blueberry-elephant")
```
"""

import threading
import time
from collections import OrderedDict
from pathlib import Path

import torch

from ..checks import check_choice, check_device, check_int
from ..device import DEFAULT_DEVICE, PRECISIONS, compute_dtype, pick_device
from ..errors import MemeError
from ..meme_folder import ADAPTER, MEME_JSON, MemeManifest, load_inversion, read_meme
from ..models.adapter import layout_difference, read_adapter, read_adapter_metadata
from ..models.base import load_base
from ..models.vae import vae_scale_factor
from ..models.video_unet import VideoUNet
from .backend import Backend
from .meme import BACKENDS, Meme, choose_backend, load_graph_backend
from .torch_backend import TorchBackend

DEFAULT_MAX_MEMES = 64
DEFAULT_MAX_BYTES = 4 * 2 ** 30  # adapters and inversions held on the device
TEXT_CACHE_SIZE = 256


def _stamp(folder: Path) -> tuple | None:
    """What tells that meme.json changed: its inode, size and modification time (None: no meme.json)."""
    try:
        st = (folder / MEME_JSON).stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class BaseRuntime:
    """A backend in memory and what the memes on it share: a lock (one batch at a time), the text embeddings of
    recent prompts, and, for the torch backend, which meme's adapter is in its video UNet."""

    def __init__(self, backend: Backend, video: VideoUNet | None = None):
        self.backend, self.video = backend, video
        self.lock = threading.RLock()
        self.active: Meme | None = None
        self.swaps, self.last_swap_s = 0, 0.0
        self._text: OrderedDict[str, torch.Tensor] = OrderedDict()

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

    def activate(self, meme: Meme) -> None:
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


class MemeStore:
    """Memes by folder, on shared bases; `load` is safe to call from many threads."""

    def __init__(self, *, device: str = DEFAULT_DEVICE, precision: str = "auto", backend: str = "auto",
                 base: str | None = None, base_config: str | None = None, allow_pickle: bool = False,
                 cuda_graphs: bool = True, compile: bool = False, max_memes: int = DEFAULT_MAX_MEMES,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        check_choice("--backend", backend, BACKENDS)
        check_choice("--precision", precision, PRECISIONS)
        check_device(device)
        check_int("--max-memes", max_memes, 1, 100_000)
        check_int("--max-bytes", max_bytes, 1, 2 ** 50)
        self.device, self.precision, self.backend = pick_device(device), precision, backend
        self.dtype = compute_dtype(precision, self.device)  # of the torch backend's bases
        self.base, self.base_config, self.allow_pickle = base, base_config, allow_pickle
        self.cuda_graphs, self.compile = cuda_graphs, compile
        self.max_memes, self.max_bytes = max_memes, max_bytes
        self.bases: dict[tuple, BaseRuntime] = {}
        self._memes: OrderedDict[Path, Meme] = OrderedDict()  # by absolute folder
        self._lock = threading.RLock()  # held while loading: two requests for one base load it once
        self.loads = self.evictions = 0

    def load(self, folder: str | Path) -> Meme:
        """The meme in `folder`, from the LRU while its meme.json is unchanged on disk (a retrained meme is loaded
        again; an unchanged one costs a stat, not a hash of its files)."""
        folder = Path(folder).absolute()
        with self._lock:
            cached, stamp = self._memes.get(folder), _stamp(folder)
            if cached is not None and cached.stamp == stamp:
                self._memes.move_to_end(folder)
                return cached
            manifest = read_meme(folder)
            if cached is not None and cached.manifest.adapter_sha256 == manifest.adapter_sha256 \
                    and cached.manifest.files == manifest.files:
                cached.stamp = stamp
                self._memes.move_to_end(folder)
                return cached
            meme = self._load(folder, manifest)
            meme.stamp = stamp
            self._memes.pop(folder, None)
            self._memes[folder] = meme
            self.loads += 1
            while len(self._memes) > 1 and (len(self._memes) > self.max_memes or self.nbytes > self.max_bytes):
                _, evicted = self._memes.popitem(last=False)
                self.evictions += 1
                if evicted.runtime.active is evicted:
                    evicted.runtime.active = None  # the next meme copies its own tensors in anyway
            return meme

    @property
    def memes(self) -> list[Meme]:
        """Loaded memes, least recently used first."""
        with self._lock:
            return list(self._memes.values())

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self._memes.values())

    def _load(self, folder: Path, manifest: MemeManifest) -> Meme:
        backend, export_folder = self.backend, None
        if backend == "auto":
            backend, export_folder = choose_backend(folder, manifest, self.device, self.precision)
        if backend in ("ort", "trt"):
            graphs = load_graph_backend(backend, folder, manifest, self.device, self.precision, export_folder)
            s = graphs.manifest.shapes
            shape = (1, s.latent_channels, s.frames, s.latent_side, s.latent_side)
            return Meme(folder, manifest, BaseRuntime(graphs), load_inversion(folder, shape).to(self.device))
        # before a runtime is built from what meme.json says
        difference = layout_difference(read_adapter_metadata(folder / ADAPTER), manifest.group_norm,
                                       manifest.frame_positions)
        if difference:
            name, tuned, said = difference
            raise MemeError(f"{folder / MEME_JSON} says {name}={said}, but its adapter was tuned with {tuned}: the "
                            f"folder is damaged, retrain the meme")
        key = (manifest.base.id, str(self.device), str(self.dtype), manifest.group_norm, manifest.frame_positions)
        runtime = self.bases.get(key) or self._base_runtime(manifest)
        b, video = runtime.backend.base, runtime.video
        _, tensors = read_adapter(video, folder / ADAPTER, b.reference, b.fingerprint)
        self.bases[key] = runtime  # only now: a base whose first meme does not fit it is not kept
        adapter = {name: t.to(self.device, self.dtype) for name, t in tensors.items()}
        side = manifest.size // vae_scale_factor(b.vae)
        inversion = load_inversion(folder, (1, b.vae.config.latent_channels, manifest.frames, side, side))
        return Meme(folder, manifest, runtime, inversion.to(self.device), adapter)

    def _base_runtime(self, manifest: MemeManifest) -> BaseRuntime:
        b = load_base(self.base or manifest.base.reference, device=self.device, dtype=self.dtype,
                      config=self.base_config, allow_pickle=self.allow_pickle)
        video = VideoUNet(b.unet, manifest.group_norm, manifest.frame_positions).to(self.dtype).eval()
        return BaseRuntime(TorchBackend(b, video, self.device, self.dtype, cuda_graphs=self.cuda_graphs,
                                        compile=self.compile), video)
