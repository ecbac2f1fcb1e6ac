"""Dynamic batch against static graphs: what the exported UNet's batch axis costs and gains in ONNX Runtime.

    python benchmarks/export_batch.py [--preset tiny] [--repeat 15]

Exports the guided UNet graph of an untrained meme (the bench's preset) twice: with the batch axis dynamic (as
`meme export` writes it) and static at one clip (as exports of format 2 were). Times one denoising step of n
clips in ONNX Runtime three ways: the static graph clip by clip (n calls), the dynamic graph in one call, and the
dynamic graph in one call of a session that pins its batch axis to n (`add_free_dimension_override_by_name`,
which lets ONNX Runtime optimise it as a static graph). Rounds alternate so that drift hits every way alike.
Writes benchmarks/results/export-batch-<preset>-<date>.{json,md}.
"""

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from memestar import files  # noqa: E402
from memestar.bench.command import PRESETS, make_untrained_meme  # noqa: E402
from memestar.device import device_name  # noqa: E402
from memestar.export.command import ExportOptions, _load  # noqa: E402
from memestar.export.onnx import export_graph  # noqa: E402
from memestar.formats.meme_folder import read_meme  # noqa: E402
from memestar.graph_runtimes import ort_session  # noqa: E402
from memestar.models.graphs import EXPORT_BATCH, GRAPH_SPECS, UNET  # noqa: E402
from memestar.sampling.batch import BATCH_BUCKETS  # noqa: E402


def timed(run, repeat: int) -> float:
    run()  # warm: the first run plans and allocates
    seconds = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t)
    return statistics.median(seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    preset, spec = PRESETS[args.preset], GRAPH_SPECS[UNET]
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_untrained_meme(preset["base"], preset["frames"], preset["size"], Path(tmp) / "meme")
        base, video, shapes = _load(read_meme(folder), folder, ExportOptions(meme=folder), torch.device("cpu"))
        module = spec.module(base, video).eval()
        paths = {"dynamic": Path(tmp) / "dynamic.onnx", "static": Path(tmp) / "static.onnx"}
        export_graph(
            module,
            spec.random_inputs(shapes, EXPORT_BATCH),
            ["model_output"],
            paths["dynamic"],
            18,
            spec.dynamic_shapes(),
        )
        export_graph(module, spec.random_inputs(shapes, 1), ["model_output"], paths["static"], 18)
        static = ort_session(paths["static"])
        dynamic = {None: ort_session(paths["dynamic"])} | {
            n: ort_session(paths["dynamic"], batch=n) for n in BATCH_BUCKETS
        }
        feeds = {n: {k: v.numpy() for k, v in spec.random_inputs(shapes, n).items()} for n in BATCH_BUCKETS}
        rows = []
        for n in BATCH_BUCKETS:
            ways = {
                "static_clip_by_clip_s": lambda: [static.run(None, feeds[1]) for _ in range(n)],
                "dynamic_s": lambda: dynamic[None].run(None, feeds[n]),
                "dynamic_pinned_s": lambda: dynamic[n].run(None, feeds[n]),
            }
            rounds = [{k: timed(run, args.repeat) for k, run in ways.items()} for _ in range(2)]
            rows.append({"clips": n} | {k: statistics.mean(r[k] for r in rounds) for k in ways})
    date = datetime.date.today().isoformat()
    report = {
        "benchmark": "export batch",
        "preset": args.preset,
        "base": preset["base"],
        "frames": preset["frames"],
        "size": preset["size"],
        "device": device_name(torch.device("cpu")),
        "date": date,
        "threads": torch.get_num_threads(),
        "repeat": args.repeat,
        "rows": rows,
    }
    lines = [
        f"# The exported UNet's batch axis in ONNX Runtime: {preset['base']}, {preset['frames']} frames, "
        f"{preset['size']} px",
        "",
        f"Device: {report['device']}. Date: {date}. "
        f"One guided denoising step; medians of {args.repeat} runs after a warm one, two alternating rounds.",
        "",
        "| clips | static graph, clip by clip s | dynamic graph, one call s | dynamic, pinned to the "
        "batch, one call s | batch gain (pinned against clip by clip) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['clips']} | {r['static_clip_by_clip_s']:.4f} | {r['dynamic_s']:.4f} | {r['dynamic_pinned_s']:.4f} "
        f"| {r['static_clip_by_clip_s'] / r['dynamic_pinned_s']:.2f}x |"
        for r in rows
    ]
    out = ROOT / "benchmarks" / "results" / f"export-batch-{args.preset}-{date}"
    files.write_report(report, "\n".join(lines) + "\n", out.name, out.with_suffix(".json"), out.with_suffix(".md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
