"""`meme bench`'s options (and those of `meme bench --serve`), declared once (`options.py`): light, so that the CLI
reads them without torch."""

from dataclasses import dataclass

from ..checks import (
    MAX_FRAMES,
    MAX_GUIDANCE,
    MAX_SIZE,
    MAX_STEPS,
    check_choice,
    check_device,
    check_frames,
    check_guidance,
    check_int,
    check_size,
    check_steps,
)
from ..device import DEFAULT_DEVICE, PRECISIONS
from ..errors import MemeError
from ..options import option
from ..runtime.settings import GenSettings
from ..sampling.batch import MAX_BATCH

PRESETS = {"tiny": dict(base="random-tiny", frames=8, size=64), "sd15": dict(base="random-sd15", frames=16, size=256)}


# torch: CUDA graphs of the loop on a GPU (the default); torch-eager: without them; torch-compile: the UNet through
# torch.compile, in a CUDA graph. The same work in each.
TORCH_VARIANTS = {"torch": {}, "torch-eager": {"cuda_graphs": False}, "torch-compile": {"compile": True}}


GRAPH_BACKENDS = ("ort", "trt")  # run the meme's export


OUR_BACKENDS = (*TORCH_VARIANTS, *GRAPH_BACKENDS)


@dataclass
class BenchOptions:
    preset: str = option(
        "tiny", "tiny (random-tiny, CPU-sized) or sd15 (SD1.5 architecture, for GPUs).", choices=tuple(PRESETS)
    )
    frames: int | None = option(None, "Frames (default: 8 for tiny, 16 for sd15).", low=1, high=MAX_FRAMES)
    size: int | None = option(None, "Square side in pixels (default: 64 for tiny, 256 for sd15).", low=8, high=MAX_SIZE)
    steps: int = option(GenSettings.steps, "Denoising steps.", low=1, high=MAX_STEPS)
    guidance: float = option(GenSettings.guidance, "Guidance scale.", low=1, high=MAX_GUIDANCE)
    backends: tuple[str, ...] = option(
        ("auto",),
        "Backends to time, comma-separated: torch (CUDA graphs on a GPU), "
        "torch-eager, torch-compile, ort, trt; auto: torch plus ort and trt where "
        "installed (the baseline runs too unless --no-baseline).",
        choices=("auto", *OUR_BACKENDS),
    )
    train: bool = option(False, "Also time tuning steps.", flags=("--train",))
    train_steps: int = 5
    repeat: int = option(5, "Timed runs per stage, after one warm-up.", low=1, high=1000)
    device: str = option(DEFAULT_DEVICE, "auto, cpu, cuda or cuda:N.")
    precision: str = option("auto", "Our precision: auto, bf16, fp16 or fp32.", choices=PRECISIONS)
    baseline: bool = option(
        True,
        "Also time the eager fp32 baseline (how a Tune-A-Video user runs a meme).",
        flags=("--baseline/--no-baseline",),
    )
    batch_sizes: tuple[int, ...] = option(
        (1, 2, 4, 8), "Batch sizes whose throughput (clips/s) to time per backend; empty: none.", low=1, high=MAX_BATCH
    )
    # only the work table (FLOPs per clip), no timing: seconds on a CPU, SD1.5 included
    work_only: bool = option(
        False,
        "Only the work per clip (FLOPs of the default path beside the previous "
        "default's), counted in seconds on any machine.",
        flags=("--work-only",),
    )

    def check(self) -> None:
        check_choice("--preset", self.preset, tuple(PRESETS))
        if self.frames is not None:
            check_frames(self.frames)
        if self.size is not None:
            check_size(self.size)
        check_steps(self.steps)
        check_guidance(self.guidance)
        check_int("--repeat", self.repeat, 1, 1000)
        check_choice("--precision", self.precision, PRECISIONS)
        check_device(self.device)
        for b in self.batch_sizes:
            check_int("--batch-sizes", b, 1, MAX_BATCH)
        unknown = sorted(set(self.backends) - {"auto", *OUR_BACKENDS})
        if unknown:
            raise MemeError(f"unknown backend(s) {', '.join(unknown)}: use {', '.join(OUR_BACKENDS)}")


MAX_CLIENTS, MAX_MEMES, MAX_REQUESTS_PER_CLIENT = 256, 64, 100  # a load test stays bounded


@dataclass
class LoadOptions:
    preset: str = "tiny"
    clients: tuple[int, ...] = option((1, 4, 16, 64), "With --serve: client counts.", low=1, high=MAX_CLIENTS)
    memes: int = option(3, "With --serve: memes the clients take in turn.", low=1, high=MAX_MEMES)
    requests_per_client: int = option(
        3, "With --serve: requests each client sends, one after another.", low=1, high=MAX_REQUESTS_PER_CLIENT
    )
    steps: int = BenchOptions.steps
    device: str = "auto"
    quiet: bool = False

    def check(self) -> "LoadOptions":
        check_choice("--preset", self.preset, tuple(PRESETS))
        for c in self.clients:
            check_int("--clients", c, 1, MAX_CLIENTS)
        check_int("--memes", self.memes, 1, MAX_MEMES)
        check_int("--requests-per-client", self.requests_per_client, 1, MAX_REQUESTS_PER_CLIENT)
        check_steps(self.steps)
        return self
