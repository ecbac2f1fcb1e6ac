"""Many memes on shared bases: each base in memory once (`runtimes.py`), memes loaded on demand into an LRU bounded by
count and bytes. ONNX Runtime and TensorRT memes carry their weights in their export, so each has a runtime of its own.

```python
store = MemeStore(device="cuda")
for folder in ("memes/running-apple-cat", "memes/dancing-pear"):
    store.load(folder).generate("running blueberry-elephant")
```
"""

import threading
from collections import OrderedDict
from pathlib import Path

from ..checks import check_int
from ..device import DEFAULT_DEVICE
from ..formats.meme_folder import MEME_JSON, read_meme
from .meme import Meme
from .options import DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMES
from .runtimes import Runtimes


def _stamp(folder: Path) -> tuple | None:
    """What tells that meme.json changed: its inode, size and modification time (None: no meme.json)."""
    try:
        st = (folder / MEME_JSON).stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class MemeStore:
    """Memes by folder, on shared bases; `load` is safe to call from many threads."""

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
        max_memes: int = DEFAULT_MAX_MEMES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        self.runtimes = Runtimes(
            device=device,
            precision=precision,
            backend=backend,
            base=base,
            base_config=base_config,
            allow_pickle=allow_pickle,
            cuda_graphs=cuda_graphs,
            compile=compile,
        )
        self.device, self.bases = self.runtimes.device, self.runtimes.bases
        check_int("--max-memes", max_memes, 1, 100_000)
        check_int("--max-bytes", max_bytes, 1, 2**50)
        self.max_memes, self.max_bytes = max_memes, max_bytes
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
            if (
                cached is not None
                and cached.manifest.adapter_sha256 == manifest.adapter_sha256
                and cached.manifest.files == manifest.files
            ):
                cached.stamp = stamp
                self._memes.move_to_end(folder)
                return cached
            meme = Meme(folder, manifest, *self.runtimes.open(folder, manifest))
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
