"""The clip a chat app gets with no flags, timed as it gets it: cold (the first clip after `Meme.load`, in a fresh
process, twice, so that the second process shows what on-disk caches save) and warm, following the meme's subject
track and not, GIF written; with `--compile`, the same with the UNet through `torch.compile`, whose kernels the
first process compiles into an empty on-disk cache and the second finds there (`runtime/backends/compile_cache.py`).

    python benchmarks/default_path.py [--preset sd15] [--sizes 256,128] [--device cuda] [--compile] [--json F]
                                      [--markdown F]

Each (size) gets an untrained meme on the preset's base with a subject track (`meme bench`'s), then two worker
processes in turn load it and time: load, the first clip (end to end, GIF bytes in hand), three warm clips with the
defaults (median), three without following. `make gpu-check STEP=default` runs it at SD1.5 size, and
`STEP=compile` with `--compile` at 256 px.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "running blueberry-elephant"
WARM_RUNS = 3


def worker(folder: str, device: str, compile: bool) -> dict:
    """One process's figures for the meme in `folder`."""
    import torch

    from memestar.runtime import Meme

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    generations = []

    def clip(**settings) -> float:
        sync()
        t = time.perf_counter()
        generations.append(meme.generate(PROMPT, **settings))
        generations[-1].encode("gif")
        return time.perf_counter() - t

    t = time.perf_counter()
    meme = Meme.load(folder, device=device, compile=compile)
    sync()
    load_s = time.perf_counter() - t
    first = clip()
    warm = [clip() for _ in range(WARM_RUNS)]
    last = generations[-1]  # a warm clip with no flags
    clip(follow="off")  # its own loop: captured here, not timed
    unfollowed = [clip(follow="off") for _ in range(WARM_RUNS)]
    return {
        "load_s": load_s,
        "first_clip_s": first,
        "warm_s": statistics.median(warm),
        "warm_follow_off_s": statistics.median(unfollowed),
        "seconds": last.seconds,
        "settings": last.settings,
    }


def measure(preset: str, size: int, device: str, compile: bool, log) -> dict:
    from memestar.bench.command import PRESETS, make_untrained_meme

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_untrained_meme(PRESETS[preset]["base"], 16, size, Path(tmp) / "meme")
        env = dict(os.environ)
        if compile:  # an empty compile cache for the first process, the one it filled for the second
            env["MEMESTAR_CACHE"] = str(Path(tmp) / "cache")
            env.pop("TORCHINDUCTOR_CACHE_DIR", None), env.pop("TRITON_CACHE_DIR", None)
        runs = []
        for n in (1, 2):
            log(f"default path{', compiled' if compile else ''}, {size} px, process {n} ...")
            r = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "worker",
                    str(folder),
                    "--device",
                    device,
                    *(["--compile"] if compile else []),
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=env,
            )
            if r.returncode:
                raise SystemExit(f"error: the worker failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return {"size": size, "processes": runs}


def markdown(report: dict) -> str:
    from memestar.bench.targets import FIRST_CLIP_EXTRA_S, GEN_TARGETS_S

    compiled = report.get("compile", False)
    lines = [
        f"# The default path{', compiled' if compiled else ''}: {report['preset']}, 16 frames, "
        f"{report['device']}, {report['date']}",
        "",
        f"{'`Meme.load(compile=True)`' if compiled else 'No flags: `Meme.load`'} then "
        "`generate(prompt).encode('gif')`, following the meme's subject track (the default wherever it has one). "
        f"Warm: median of {WARM_RUNS}. Each size in two fresh processes"
        f"{' (the first compiles into an empty cache, the second reads it)' if compiled else ''}.",
        "",
        "| size | process | load s | first clip s | warm s | target s | first - warm s (<= "
        f"{FIRST_CLIP_EXTRA_S:g}) | warm, follow off s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["sizes"]:
        for n, p in enumerate(r["processes"], 1):
            target = GEN_TARGETS_S.get(r["size"], float("nan")) if report["preset"] == "sd15" else float("nan")
            lines.append(
                f"| {r['size']} | {n} | {p['load_s']:.2f} | {p['first_clip_s']:.3f} | {p['warm_s']:.3f} | "
                f"{target:g} | {p['first_clip_s'] - p['warm_s']:.3f} | {p['warm_follow_off_s']:.3f} |"
            )
    settings = report["sizes"][0]["processes"][0]["settings"]
    lines += ["", f"Settings of the default clip: {settings}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", default="run", choices=("run", "worker"))
    parser.add_argument("folder", nargs="?", help="(worker) the meme folder")
    parser.add_argument("--preset", default="sd15", choices=("tiny", "sd15"))
    parser.add_argument("--sizes", default="256,128")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--compile", action="store_true", help="the UNet through torch.compile, cached on disk")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.action == "worker":
        print(json.dumps(worker(args.folder, args.device, args.compile)))
        return 0
    from memestar.device import device_name, pick_device

    report = {
        "benchmark": "default path",
        "preset": args.preset,
        "device": device_name(pick_device(args.device)),
        "date": datetime.date.today().isoformat(),
        "compile": args.compile,
        "sizes": [
            measure(args.preset, int(s), args.device, args.compile, lambda m: print(m, file=sys.stderr, flush=True))
            for s in args.sizes.split(",")
        ],
    }
    text = markdown(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
