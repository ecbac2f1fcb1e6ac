"""Loading a base Stable Diffusion 1.x model, and telling one base from another.

A base is named by one string:
- `tiny` / `emoji`: the bundled models trained on the synthetic shapes / emoji world (memestar/tiny);
- `random-tiny` / `random-sd15`: built-in random-weight models, built once into the cache folder;
- a local diffusers folder (`unet/ vae/ text_encoder/ tokenizer/ scheduler/`);
- one `.safetensors` SD checkpoint (diffusers' single-file loading; `config` names a diffusers folder
  for the configs, else diffusers fetches SD's from the Hub);
- anything else is a Hugging Face Hub id.
Pickled weights (`.ckpt`, `.bin`, `.pt`, `.pth`) run code when loaded: refused unless `allow_pickle`.
"""

import hashlib
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from ..errors import MemeError
from .random_base import RANDOM_BASES, build_random_base

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
BUNDLED_TINY = Path(__file__).resolve().parents[1] / "tiny" / "weights"  # `--base tiny`, shipped in the package
BUNDLED_EMOJI = Path(__file__).resolve().parents[1] / "tiny" / "emoji" / "weights"  # `--base emoji`, likewise
# the bundled bases: name -> (folder, the recipe that trains it)
BUNDLED = {
    "tiny": (BUNDLED_TINY, "python -m memestar.tiny.train"),
    "emoji": (BUNDLED_EMOJI, "python -m memestar.tiny.emoji_train"),
}
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
PROBE_VALUES_PER_TENSOR = 4


def cache_dir() -> Path:
    return Path(os.environ.get("MEMESTAR_CACHE", Path.home() / ".cache" / "memestar"))


@dataclass
class BaseFingerprint:
    """Which base weights these are, whatever file, folder or precision they were loaded from.

    `arch` hashes the tensor names and shapes; `probe` holds a few values of every tensor (in fp32).
    Two bases match when the architecture is the same and the probes agree to half precision; `id` is
    for people to read and may differ between precisions of the same base.
    """

    arch: str
    probe: torch.Tensor = field(repr=False)

    @property
    def id(self) -> str:
        values = self.probe.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        return f"{self.arch}-{hashlib.sha256(values).hexdigest()[:8]}"

    def matches(self, other: "BaseFingerprint") -> bool:
        return (
            self.arch == other.arch
            and self.probe.shape == other.probe.shape
            and torch.allclose(self.probe, other.probe, rtol=1e-2, atol=1e-3)
        )

    def to_dict(self) -> dict:
        return {"arch": self.arch, "probe": self.probe.numpy().tobytes().hex()}

    @classmethod
    def from_dict(cls, d: dict) -> "BaseFingerprint":
        probe = torch.frombuffer(bytearray(bytes.fromhex(d["probe"])), dtype=torch.float32)
        return cls(arch=d["arch"], probe=probe)


def fingerprint_modules(modules: dict[str, torch.nn.Module]) -> BaseFingerprint:
    arch = hashlib.sha256()
    probes = []
    for prefix, module in sorted(modules.items()):
        for name, t in sorted(module.state_dict().items()):
            arch.update(f"{prefix}.{name}:{tuple(t.shape)};".encode())
            flat = t.detach().reshape(-1)
            step = max(1, flat.numel() // PROBE_VALUES_PER_TENSOR)
            probes.append(flat[::step][:PROBE_VALUES_PER_TENSOR].float().cpu())
    return BaseFingerprint(arch=arch.hexdigest()[:12], probe=torch.cat(probes))


@dataclass
class BaseModel:
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler_config: dict
    reference: str
    fingerprint: BaseFingerprint

    def to(self, device=None, dtype=None) -> "BaseModel":
        for model in (self.unet, self.vae, self.text_encoder):
            model.to(device=device, dtype=dtype)
        return self


LOAD_LOCK = threading.Lock()


def load_base(
    reference: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config: str | None = None,
    allow_pickle: bool = False,
) -> BaseModel:
    """Loads every component of base `reference`, in eval mode with gradients off. One load at a time per process:
    diffusers and transformers build models under a process-wide patch (weights on the meta device, then filled),
    and a second thread loading meanwhile gets empty tensors (a server warming up while a resumed job starts)."""
    with LOAD_LOCK:
        source = _resolve(str(reference), allow_pickle)
        if isinstance(source, Path) and source.is_file():
            parts = _load_single_file(source, config, dtype, allow_pickle)
        else:
            parts = _load_diffusers(source, dtype, allow_pickle, local=isinstance(source, Path))
    models = {k: parts[k] for k in ("unet", "vae", "text_encoder")}
    for model in models.values():
        model.requires_grad_(False).eval().to(device)
    named = str(reference) in RANDOM_BASES or str(reference) in BUNDLED or not isinstance(source, Path)
    reference = str(reference) if named else str(source.resolve())  # a path that works from any folder
    return BaseModel(**parts, reference=reference, fingerprint=fingerprint_modules(models))


def bundled_missing(name: str) -> str | None:
    """Why bundled base `name` cannot load (its weights are not in this install; the recipe that writes them), or
    None when they are."""
    folder, recipe = BUNDLED[name]
    if (folder / "model_index.json").exists():
        return None
    return f"the bundled {name} model is missing from this install ({folder}): train it with `{recipe}`"


def _resolve(reference: str, allow_pickle: bool) -> Path | str:
    if reference in RANDOM_BASES:
        return _random_base_folder(reference)
    if reference in BUNDLED:
        missing = bundled_missing(reference)
        if missing:
            raise MemeError(missing)
        return BUNDLED[reference][0]
    path = Path(reference).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
            raise MemeError(
                f"{path} is a pickled checkpoint, and loading it can run arbitrary code: convert it "
                f"to .safetensors, or pass --allow-pickle if you trust its source"
            )
        if path.suffix.lower() not in PICKLE_SUFFIXES + (".safetensors",):
            raise MemeError(
                f"{path} is not a model file: pass a diffusers folder, a .safetensors checkpoint "
                f"or a Hugging Face Hub id"
            )
        return path
    if reference.startswith((".", "/", "~")) or reference.endswith(PICKLE_SUFFIXES + (".safetensors",)):
        raise MemeError(
            f"base model {reference} not found: check the path (a meme whose base moved takes --base NEW_PATH)"
        )
    return reference


def _random_base_folder(name: str) -> Path:
    folder = cache_dir() / "bases" / name
    if not (folder / "model_index.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
        dtype = torch.float16 if name == "random-sd15" else torch.float32
        build_random_base(name, tmp, dtype=dtype)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


def _load_diffusers(source: Path | str, dtype, allow_pickle: bool, local: bool) -> dict:
    if local:
        missing = [c for c in COMPONENTS if not (Path(source) / c).is_dir()]
        if missing:
            raise MemeError(
                f"{source} is not a diffusers model folder: it lacks {', '.join(missing)}/ "
                f"(expected {' '.join(c + '/' for c in COMPONENTS)})"
            )
    offline = not local and not hub_reachable()  # then only the local Hub cache can serve it, at once
    kw = dict(use_safetensors=None if allow_pickle else True, local_files_only=local or offline)
    try:
        parts = {
            "unet": UNet2DConditionModel.from_pretrained(source, subfolder="unet", dtype=dtype, **kw),
            "vae": AutoencoderKL.from_pretrained(source, subfolder="vae", dtype=dtype, **kw),
            "text_encoder": CLIPTextModel.from_pretrained(source, subfolder="text_encoder", dtype=dtype, **kw),
            "tokenizer": CLIPTokenizer.from_pretrained(
                source, subfolder="tokenizer", local_files_only=kw["local_files_only"]
            ),
            "scheduler_config": dict(
                DDIMScheduler.load_config(source, subfolder="scheduler", local_files_only=kw["local_files_only"])
            ),
        }
    except MemeError:
        raise
    except Exception as e:  # the Hub client and the loaders raise many types; the user needs one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if offline:
            raise MemeError(
                f"could not load base model {source}: it is not in the local Hugging Face cache, and the "
                f"Hub at {hub_endpoint()} cannot be reached; download it on a connected machine, or pass "
                f"a local diffusers folder"
            ) from e
        where = "the local folder" if local else "the Hugging Face Hub"
        pickled = local and not allow_pickle and any(Path(source).glob(f"*/*{PICKLE_SUFFIXES[1]}"))
        hint = " (only pickled weights there? pass --allow-pickle if you trust them)" if pickled else ""
        raise MemeError(f"could not load base model {source} from {where}: {reason}{hint}") from e
    return parts


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub can be reached now: offline, the Hub client would retry for half a minute per file."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True  # through a proxy a direct probe says nothing: let the Hub client try
    url = urlparse(hub_endpoint())
    try:
        socket.create_connection(
            (url.hostname, url.port or (80 if url.scheme == "http" else 443)), timeout=timeout
        ).close()
    except OSError:
        return False
    return True


def _load_single_file(path: Path, config: str | None, dtype, allow_pickle: bool) -> dict:
    from diffusers import StableDiffusionPipeline

    if config is None and not hub_reachable():
        raise MemeError(
            f"{path} is a single-file checkpoint and its configs would come from the Hub, which cannot be "
            f"reached: pass a diffusers folder with the SD configs as --base-config"
        )
    kw = dict(torch_dtype=dtype, local_files_only=config is not None)
    if config is not None:
        kw["config"] = str(config)
    try:
        pipe = StableDiffusionPipeline.from_single_file(str(path), safety_checker=None, **kw)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = "" if config else " (offline, pass a diffusers folder with the SD configs as --base-config)"
        raise MemeError(f"could not load single-file checkpoint {path}: {reason}{hint}") from e
    for part in ("unet", "vae", "text_encoder"):  # diffusers leaves weights the file lacks on the meta device
        missing = [n for n, t in getattr(pipe, part).state_dict().items() if t.is_meta]
        if missing:
            raise MemeError(
                f"{path} lacks {len(missing)} {part} weights (e.g. {missing[0]}): it is not a complete "
                f"SD 1.x checkpoint"
            )
    return {
        "unet": pipe.unet,
        "vae": pipe.vae,
        "text_encoder": pipe.text_encoder,
        "tokenizer": pipe.tokenizer,
        "scheduler_config": dict(pipe.scheduler.config),
    }
