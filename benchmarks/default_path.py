"""The clip a chat app gets with no flags, timed as it gets it: cold (the first clip after `Meme.load`, in a fresh
process, twice, so that the second process shows what on-disk caches save) and warm, following the meme's subject
track and not, GIF written.

    python benchmarks/default_path.py [--preset sd15] [--sizes 256,128] [--device cuda] [--json F] [--markdown F]

Each (size) gets an untrained meme on the preset's base with a subject track (`meme bench`'s), then two worker
processes in turn load it and time: load, the first clip (end to end, GIF bytes in hand), three warm clips with the
defaults (median), three without following. `make gpu-check STEP=default` runs it at SD1.5 size.
"""

import argparse
import datetime
import json
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


def worker(folder: str, device: str) -> dict:
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
    meme = Meme.load(folder, device=device)
    sync()
    load_s = time.perf_counter() - t
    first = clip()
    warm = [clip() for _ in range(WARM_RUNS)]
    last = generations[-1]  # a warm clip with no flags
    clip(follow="off")  # its own loop: captured here, not timed
    unfollowed = [clip(follow="off") for _ in range(WARM_RUNS)]
    return {"load_s": load_s, "first_clip_s": first, "warm_s": statistics.median(warm),
            "warm_follow_off_s": statistics.median(unfollowed), "seconds": last.seconds, "settings": last.settings}


def measure(preset: str, size: int, device: str, log) -> dict:
    from memestar.bench.run import PRESETS, make_untrained_meme

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_untrained_meme(PRESETS[preset]["base"], 16, size, Path(tmp) / "meme")
        runs = []
        for n in (1, 2):
            log(f"default path, {size} px, process {n} ...")
            r = subprocess.run([sys.executable, __file__, "worker", str(folder), "--device", device],
                               capture_output=True, text=True, cwd=ROOT)
            if r.returncode:
                raise SystemExit(f"error: the worker failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return {"size": size, "processes": runs}


def markdown(report: dict) -> str:
    from memestar.bench.targets import FIRST_CLIP_EXTRA_S, GEN_TARGETS_S

    lines = [f"# The default path: {report['preset']}, 16 frames, {report['device']}, {report['date']}", "",
             "No flags: `Meme.load` then `generate(prompt).encode('gif')`, following the meme's subject track (the "
             f"default wherever it has one). Warm: median of {WARM_RUNS}. Each size in two fresh processes.", "",
             "| size | process | load s | first clip s | warm s | target s | first - warm s (<= "
             f"{FIRST_CLIP_EXTRA_S:g}) | warm, follow off s |", "|---|---|---|---|---|---|---|---|"]
    for r in report["sizes"]:
        for n, p in enumerate(r["processes"], 1):
            target = GEN_TARGETS_S.get(r["size"], float("nan")) if report["preset"] == "sd15" else float("nan")
            lines.append(f"| {r['size']} | {n} | {p['load_s']:.2f} | {p['first_clip_s']:.3f} | {p['warm_s']:.3f} | "
                         f"{target:g} | {p['first_clip_s'] - p['warm_s']:.3f} | {p['warm_follow_off_s']:.3f} |")
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
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.action == "worker":
        print(json.dumps(worker(args.folder, args.device)))
        return 0
    from memestar.device import device_name, pick_device

    report = {"benchmark": "default path", "preset": args.preset, "device": device_name(pick_device(args.device)),
              "date": datetime.date.today().isoformat(),
              "sizes": [measure(args.preset, int(s), args.device, lambda m: print(m, file=sys.stderr, flush=True))
                        for s in args.sizes.split(",")]}
    text = markdown(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
