"""`meme bench`: every stage of generation (and, with --train, tuning) against the eager fp32 baseline.

One run builds an untrained meme on the preset's base (timing does not depend on the values) with a subject track,
so that our backends run the default path (following on, and every work saver `GenSettings` turns on), measures the
device's peak FLOP/s with a large matrix product in each precision used, then times each stage for the baseline and
for each of our backends. FLOPs come from `work.py`: each kind of step counted once on the meta device, times how
many of each the settings run; the work table sets the default's FLOPs per clip beside the previous default's and
each saver's alone.
"""

import datetime
import gc
import importlib.util
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from .. import files
from ..device import compute_dtype, device_name, peak_memory_bytes, pick_device
from ..export.command import ExportOptions, export_meme
from ..files import slug
from ..formats.meme_folder import (
    ADAPTER,
    INVERSION,
    BaseRecord,
    InversionRecord,
    MemeManifest,
    SubjectTrackRecord,
    library_versions,
    load_inversion,
    read_meme,
    save_inversion,
    write_meme_json,
)
from ..media.writers import encode_gif
from ..models.adapter import save_adapter
from ..models.base import load_base
from ..models.text import encode_prompts
from ..models.vae import encode_frames, vae_scale_factor
from ..models.video_unet import VideoUNet
from ..runtime import Meme
from ..runtime.settings import GenRequest, GenSettings
from ..runtime.store import MemeStore
from ..train.options import TuneSettings
from ..train.tune import tune
from .baseline import EagerFP32Baseline
from .measure import count_flops, matmul_peak_flops, quantile, time_stage
from .options import GRAPH_BACKENDS, PRESETS, TORCH_VARIANTS, BenchOptions
from .targets import GEN_TARGETS_S, TUNE_STEPS
from .work import StepCosts, clip_work, count_step_costs, work_table

BATCHED = ("torch", *GRAPH_BACKENDS)  # throughput per batch size (torch-eager and -compile: in the per-call stages)
TRAINED = ("baseline", "torch")  # tuning does not depend on the sampling variant
STAGES = ("text", "unet_step", "loop", "decode", "media", "end_to_end")
PROMPT = "running blueberry-elephant"


def bench_track(frames: int) -> SubjectTrackRecord:
    """A subject sliding across the frame, as a sticker clip's: what the bench's meme follows."""
    x = torch.linspace(-0.5, 0.5, frames)
    return SubjectTrackRecord(x=x.tolist(), y=[0.0] * frames, size=[0.4] * frames)


def make_untrained_meme(base: str, frames: int, size: int, folder: Path) -> Path:
    """A meme folder with the tuned tensors at their initial values, random start latents and a subject track."""
    folder.mkdir(parents=True)
    b = load_base(base)
    video = VideoUNet(b.unet)
    save_adapter(video, folder / ADAPTER, b.reference, b.fingerprint)
    side = size // vae_scale_factor(b.vae)
    latents = torch.randn(
        1, b.vae.config.latent_channels, frames, side, side, generator=torch.Generator().manual_seed(0)
    )
    save_inversion(folder / INVERSION, latents, 50)
    write_meme_json(
        folder,
        prompt="benchmark",
        base=BaseRecord(reference=base, id=b.fingerprint.id),
        frames=frames,
        size=size,
        fps=8.0,
        **video.layout,
        inversion=InversionRecord(steps=50, prompt=""),
        subject_track=bench_track(frames),
        versions=library_versions(),
    )
    return folder


def available_backends(device: torch.device) -> tuple[str, ...]:
    found = ["torch"]
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx_graphsurgeon"):
        import onnxruntime

        if device.type == "cpu" or "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            found.append("ort")
    if device.type == "cuda" and importlib.util.find_spec("tensorrt"):
        found.append("trt")
    return tuple(found)


def _generation_stages(
    backend,
    o: BenchOptions,
    x: torch.Tensor,
    fps: float,
    end_to_end,
    encode_media,
    costs: StepCosts,
    track: torch.Tensor | None,
):
    """Stage name -> (callable, its FLOPs) for one backend: ours sample the default path (`GenSettings` at the
    bench's steps and guidance, following `track`), the baseline every step whole and guided."""
    s = GenSettings(steps=o.steps, guidance=o.guidance)
    baseline = backend.name == "baseline"
    if baseline:
        s = GenSettings(steps=o.steps, guidance=o.guidance, sampler="ddim", guidance_until=0.0, cache_interval=1)
    savers = (
        {}
        if baseline
        else dict(guidance_until=s.guidance_until, cache_interval=s.cache_interval, follow_measure=s.follow_measure)
    )
    text = torch.cat([backend.encode_text([""]), backend.encode_text([PROMPT])])
    t = torch.tensor(500, device=x.device)
    latents = backend.sample(s.sampler, s.steps, x, text, s.guidance, track, **savers)
    frames = backend.decode(latents)[0].numpy()
    calls = {
        "text": lambda: backend.encode_text([PROMPT]),
        "unet_step": lambda: backend.denoise(x, t, text, o.guidance),
        "loop": lambda: backend.sample(s.sampler, s.steps, x, text, s.guidance, track, **savers),
        "decode": lambda: backend.decode(latents),
        "media": lambda: encode_media(frames, fps),
        "end_to_end": end_to_end,
    }
    work = clip_work(
        costs,
        s,
        follows=track is not None,
        caches=backend.caches_deep_features,
        halves_unguided=backend.unet_passes(False) == 1,
    )
    flops = {
        "text": costs.text,
        "unet_step": backend.unet_passes(o.guidance > 1) * costs.unet,
        "loop": work["unet"] + work["follow"],
        "decode": costs.decode,
        "media": 0,
        "end_to_end": work["total"],
    }
    return {name: (calls[name], flops[name]) for name in STAGES}


def _measure(stages: dict, device, repeat: int, peak_flops: float) -> dict:
    out = {}
    for name, (fn, flops) in stages.items():
        m = time_stage(fn, device, repeat)
        m["flops"] = flops
        m["tflops_per_s"] = flops / m["median_s"] / 1e12
        m["peak_share"] = flops / m["median_s"] / peak_flops
        out[name] = m
    return out


def _train_stage(meme: MemeManifest, device, dtype, o: BenchOptions, peak_flops: float) -> dict:
    """One tuning step (median, p10, p90 over `train_steps` steps after one), steps/s, and the time to load and
    encode before the first step. Gradient checkpointing on GPUs, as `meme train` (and Tune-A-Video's configs)."""
    t = time.perf_counter()
    b = load_base(meme.base.reference, device=device, dtype=dtype)
    video = VideoUNet(b.unet, **meme.layout)
    frames = torch.randint(0, 256, (meme.frames, meme.size, meme.size, 3), dtype=torch.uint8)
    latents = encode_frames(b.vae, frames).float()
    text = encode_prompts(b.tokenizer, b.text_encoder, [PROMPT])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    load_s = time.perf_counter() - t
    checkpointing = device.type == "cuda"

    def run(steps, on_step=None, recompute=checkpointing):
        with tempfile.TemporaryDirectory() as tmp:
            tune(
                video,
                latents,
                text,
                b.scheduler_config,
                TuneSettings(steps=steps, lr=1e-5, checkpoint_every=0, gradient_checkpointing=recompute),
                dtype=dtype,
                checkpoint=Path(tmp) / "unused",
                run_key={},
                quiet=True,
                on_step=on_step,
            )

    try:
        flops = count_flops(lambda: run(1, recompute=False))  # the model's FLOPs, not checkpointing's recomputation
        recompute_counted = False
    except torch.cuda.OutOfMemoryError:  # without checkpointing the step may not fit: count it with the recomputation
        _free(device)
        flops, recompute_counted = count_flops(lambda: run(1)), True
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stamps = []

    def stamp(step, loss):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    run(o.train_steps + 1, stamp)
    seconds = [end - start for start, end in zip(stamps, stamps[1:])]
    median = statistics.median(seconds)
    return {
        "median_s": median,
        "p10_s": quantile(seconds, 0.1),
        "p90_s": quantile(seconds, 0.9),
        "steps_per_s": 1 / median,
        "peak_memory_bytes": peak_memory_bytes(device),
        "flops": flops,
        "tflops_per_s": flops / median / 1e12,
        "peak_share": flops / median / peak_flops,
        "precision": str(dtype).removeprefix("torch."),
        "gradient_checkpointing": checkpointing,
        "load_s": load_s,
        "flops_include_recomputation": recompute_counted,
    }


def _time_backend(
    name: str,
    folder: Path,
    meme_manifest: MemeManifest,
    device,
    o: BenchOptions,
    peak_flops: float,
    costs: StepCosts,
    log,
) -> tuple[dict, dict]:
    """Loads one backend (or the baseline), times its stages and, for `BATCHED` backends, its batches on the same
    store; lets it go when it returns. Returns the stages and the batch figures (empty when not timed)."""
    if name == "baseline":
        backend = EagerFP32Baseline(folder, meme_manifest, device)
        x = load_inversion(folder).to(device)

        def end_to_end():
            text = backend.encode_text(["", PROMPT])
            return backend.encode_media(
                backend.decode(backend.sample("ddim", o.steps, x, text, o.guidance))[0].numpy(), 8.0
            )

        encode_media, track = backend.encode_media, None
    else:
        precision = "auto" if name in GRAPH_BACKENDS else o.precision  # graph backends: the bench's export
        store = MemeStore(
            device=str(device),
            precision=precision,
            backend="torch" if name in TORCH_VARIANTS else name,
            **TORCH_VARIANTS.get(name, {}),
        )
        meme = store.load(folder)
        backend, x = meme.backend, meme.inversion.float()

        def end_to_end():
            meme.runtime.clear_text_cache()  # a new prompt each time
            return meme.generate(PROMPT, steps=o.steps, guidance=o.guidance).encode("gif")

        encode_media = encode_gif
        track = meme.manifest.subject_track.tensor().to(device)[None]  # 1 f 3
    stages = _generation_stages(backend, o, x, 8.0, end_to_end, encode_media, costs, track)
    measured = _measure(stages, device, o.repeat, peak_flops)
    if name not in BATCHED or not o.batch_sizes:
        return measured, {}
    log(f"timing batches of {', '.join(map(str, o.batch_sizes))} ({name}) ...")
    return measured, _throughput(store, meme, folder, device, o)


def _throughput(store: MemeStore, meme: Meme, folder: Path, device, o: BenchOptions) -> dict:
    """Clips per second of `generate_batch` (text, denoising, decoding; no media) per batch size, and the time a
    second meme on the same base takes to swap its adapter in."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batches = {}
    for size in o.batch_sizes:
        requests = [
            GenRequest(PROMPT, GenSettings(steps=o.steps, guidance=o.guidance, seed=i, variation=0.3))
            for i in range(size)
        ]
        meme.generate_batch(requests)  # warm-up: the batch's CUDA graph is captured here
        seconds = []
        for _ in range(max(1, min(o.repeat, 3))):
            sync()
            t = time.perf_counter()
            meme.generate_batch(requests)
            sync()
            seconds.append(time.perf_counter() - t)
        median = statistics.median(seconds)
        batches[str(size)] = {
            "median_s": median,
            "clips_per_s": size / median,
            "peak_memory_bytes": peak_memory_bytes(device),
        }
    result = {"throughput": batches}
    if meme.adapter is not None:  # a second meme on the same base: the swap between the two
        other = Path(tempfile.mkdtemp(dir=folder.parent)) / "other"
        shutil.copytree(folder, other)
        second = store.load(other)
        swaps = []
        for m in (second, meme) * 3:
            meme.runtime.activate(m)
            swaps.append(meme.runtime.last_swap_s)
        result["swap_s"] = statistics.median(swaps)
        result["bases_loaded"] = len(store.bases)
    return result


def _free(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_bench(o: BenchOptions, log=print) -> dict:
    o.check()
    preset = PRESETS[o.preset]
    frames, size = o.frames or preset["frames"], o.size or preset["size"]
    device = pick_device(o.device)
    dtype = compute_dtype(o.precision, device)
    backends = available_backends(device) if "auto" in o.backends else o.backends
    report = {
        "benchmark": "meme bench",
        "preset": o.preset,
        "base": preset["base"],
        "device": device_name(device),
        "date": datetime.date.today().isoformat(),
        "frames": frames,
        "size": size,
        "steps": o.steps,
        "guidance": o.guidance,
        "repeat": o.repeat,
        "versions": library_versions(),
        "backends": {},
    }
    log(f"counting the work per clip ({preset['base']}, {frames} frames, {size} px) ...")
    costs = count_step_costs(preset["base"], frames, size)
    report["step_flops"] = {k: v for k, v in vars(costs).items() if k != "scheduler_config"}
    report["work"] = work_table(costs)
    if o.work_only:
        return report
    graph_dtype = torch.float32 if dtype == torch.float32 else torch.float16  # exports are fp32 or fp16
    graphs = set(backends) & set(GRAPH_BACKENDS)
    peaks = {
        str(t).removeprefix("torch."): matmul_peak_flops(device, t)
        for t in {dtype, torch.float32} | ({graph_dtype} if graphs else set())
    }
    report["peak_tflops_per_s"] = {k: v / 1e12 for k, v in peaks.items()}
    log(f"device {report['device']}: matmul peak " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in peaks.items()))

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_untrained_meme(preset["base"], frames, size, Path(tmp) / "meme")
        meme = read_meme(folder)
        if graphs:
            log("exporting the meme (ONNX" + (", TensorRT engines" if "trt" in backends else "") + ") ...")
            report["export"] = export_meme(
                ExportOptions(
                    meme=folder,
                    trt="trt" in backends,
                    precision="fp32" if graph_dtype == torch.float32 else "fp16",
                    device=str(device),
                    quiet=True,
                )
            )
        runs = [(name, graph_dtype if name in GRAPH_BACKENDS else dtype) for name in backends]
        for name, run_dtype in runs + ([("baseline", torch.float32)] if o.baseline else []):
            precision = str(run_dtype).removeprefix("torch.")
            log(f"timing {name} ({precision}) ...")
            stages, batches = _time_backend(name, folder, meme, device, o, peaks[precision], costs, log)
            report["backends"][name] = {"precision": precision, "stages": stages, **batches}
            _free(device)
            if o.train and name in TRAINED:
                log(f"timing tuning steps ({name}) ...")
                try:
                    report["backends"][name]["stages"]["train_step"] = _train_stage(
                        meme, device, run_dtype, o, peaks[precision]
                    )
                except torch.cuda.OutOfMemoryError as e:  # the other figures still stand
                    report["backends"][name]["train_error"] = f"out of memory: {str(e).splitlines()[0]}"
                _free(device)

    if "baseline" in report["backends"]:
        base_stages = report["backends"]["baseline"]["stages"]
        for name in backends:
            ours = report["backends"][name]["stages"]
            report["backends"][name]["speedup"] = {
                s: base_stages[s]["median_s"] / ours[s]["median_s"] for s in ours if s in base_stages
            }
    return report


def work_markdown(r: dict) -> list[str]:
    """The work table: FLOPs per clip of the default path (following on) beside the previous default's."""
    lines = [
        "",
        f"Work per clip ({r['base']}, {r['frames']} frames, {r['size']} px, following a subject track; "
        f"FLOPs of matrix products, convolutions and attention, counted per step kind on the meta device):",
        "",
        "| settings | GFLOP per clip | UNet | follow decodes | share of the previous default |",
        "|---|---|---|---|---|",
    ]
    for name, w in r["work"].items():
        lines.append(
            f"| {name} | {w['total'] / 1e9:.1f} | {w['unet'] / 1e9:.1f} | {w['follow'] / 1e9:.1f} | "
            f"{w['share_of_previous']:.3f} |"
        )
    return lines


def markdown(r: dict) -> str:
    if "peak_tflops_per_s" not in r:  # --work-only
        return (
            "\n".join(
                [
                    f"# meme bench --work-only: {r['base']}, {r['frames']} frames, {r['size']} px",
                    "",
                    f"Date: {r['date']}.",
                ]
                + work_markdown(r)
            )
            + "\n"
        )
    peaks = ", ".join(f"{k} {v:.2f}" for k, v in r["peak_tflops_per_s"].items())
    lines = [
        f"# meme bench: {r['base']}, {r['frames']} frames, {r['size']} px, {r['steps']} steps, "
        f"guidance {r['guidance']}",
        "",
        f"Device: {r['device']}. Date: {r['date']}. Median, p10 and p90 of {r['repeat']} runs after one "
        f"warm-up. Device peak (matmul, TFLOP/s): {peaks}.",
        "",
        "| backend | stage | median s | p10 s | p90 s | peak memory MiB | GFLOP | TFLOP/s | % of peak | speedup |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, b in r["backends"].items():
        for stage, m in b["stages"].items():
            speedup = b.get("speedup", {}).get(stage)
            lines.append(
                f"| {name} ({b['precision']}) | {stage} | {m['median_s']:.4f} | {m['p10_s']:.4f} | "
                f"{m['p90_s']:.4f} | {m['peak_memory_bytes'] / 2**20:.0f} | {m['flops'] / 1e9:.2f} | "
                f"{m['tflops_per_s']:.3f} | {100 * m['peak_share']:.1f} | "
                f"{f'{speedup:.2f}x' if speedup else '-'} |"
            )
    if "export" in r:
        e = r["export"]
        errors = ", ".join(f"{n} {g['relative_error']:.1e}" for n, g in e["graphs"].items())
        lines.append(
            f"\nExport for ort/trt: {e['precision']}, opset {e['opset']}, {e['seconds']} s; ONNX Runtime "
            f"against torch on the same inputs, relative error: {errors}."
        )
    throughput = [(name, b) for name, b in r["backends"].items() if "throughput" in b]
    if throughput:
        sizes = list(throughput[0][1]["throughput"])
        lines += [
            "",
            "Batched generation (text, denoising and decoding of a batch; clips/s, and the batch's median seconds):",
            "",
            "| backend | " + " | ".join(f"batch {s}" for s in sizes) + " | adapter swap ms |",
            "|---|" + "---|" * (len(sizes) + 1),
        ]
        for name, b in throughput:
            cells = [f"{t['clips_per_s']:.2f} ({t['median_s']:.3f} s)" for t in b["throughput"].values()]
            swap = f"{1000 * b['swap_s']:.2f}" if "swap_s" in b else "-"
            lines.append(f"| {name} ({b['precision']}) | " + " | ".join(cells) + f" | {swap} |")
    for name, b in r["backends"].items():
        if "train_step" in b["stages"]:
            t = b["stages"]["train_step"]
            lines.append(
                f"\nTuning ({name}): {t['steps_per_s']:.2f} steps/s after {t['load_s']:.1f} s of loading; "
                f"{TUNE_STEPS} steps with loading {t['load_s'] + TUNE_STEPS * t['median_s']:.1f} s."
            )
        if "train_error" in b:
            lines.append(f"\nTuning ({name}): {b['train_error']}.")
    lines += work_markdown(r)
    target = GEN_TARGETS_S.get(r["size"]) if r["preset"] == "sd15" else None
    for name, b in r["backends"].items():
        if target is None or name == "baseline":
            continue
        total = b["stages"]["end_to_end"]["median_s"]
        parts = {s: b["stages"][s]["median_s"] for s in ("text", "loop", "decode", "media")}
        slowest = max(parts, key=parts.get)
        verdict = "met" if total <= target else f"missed by {total - target:.3f} s ({total / target:.1f}x)"
        lines.append(
            f"\nTarget ({name}): end to end <= {target} s: {verdict}; the largest stage is {slowest} "
            f"({parts[slowest]:.3f} s)."
        )
    return "\n".join(lines) + "\n"


def write_report(report: dict, json_path: Path | None, markdown_path: Path | None) -> tuple[Path, Path]:
    shape = f"{report['preset']}-{report['frames']}f-{report['size']}px"
    stem = (
        f"work-{shape}-{report['date']}"
        if "peak_tflops_per_s" not in report
        else f"bench-{shape}-{slug(report['device'])}-{report['date']}"
    )  # FLOPs are the same on every device
    return files.write_report(report, markdown(report), stem, json_path, markdown_path)
