"""`make gpu-check`: every GPU figure meme-star promises, from one command, on a machine with an NVIDIA GPU.

    python benchmarks/gpu_check.py download      # on a machine with a package index: wheels the GPU box lacks -> .whl/
    python benchmarks/gpu_check.py install       # on the GPU box: .whl/ -> .gpu-site/ (a target dir, not site-packages)
    python benchmarks/gpu_check.py run [--step S] # on the GPU box: S = tests, default, compile, bench-256,
                                                  # bench-128, serve, subject, summary or all

The GPU box is expected to hold its own CUDA build of torch and transformers (used as they are) and nothing
else of ours: `download` fetches the pure-Python and cp312 wheels it lacks (diffusers, pydantic, typer, the
ONNX/TensorRT helpers), at the versions pinned in constraints.txt. `run` adds `.gpu-site/` and the checkout to
PYTHONPATH for each step, installing the wheels first where something is missing. Each step stays under ten
minutes on an H100 (about twenty in all):

- tests:     `pytest -m gpu` (CUDA-graph loop against eager in fp16/bf16, compile, training steps with and
             without gradient checkpointing, peak memory, generation through the CLI);
- default:   `benchmarks/default_path.py`: the clip with no flags at 256 and 128 px, cold (the first after
             `Meme.load`, in two fresh processes) and warm, following the subject track and not, GIF written;
- compile:   the same at 256 px with the UNet through `torch.compile`: the first process compiles into an empty
             on-disk cache, the second reads it (what a compiled default would cost cold);
- bench-256, bench-128: `meme bench --preset sd15 --train` at that size: the eager fp32 baseline against torch
             eager bf16, bf16 + CUDA graphs, and + torch.compile;
  (each also times batches of 1, 2, 4 and 8 clips: clips/s, and the adapter swap between two memes);
- serve:     `meme bench --serve --preset sd15`: the server on loopback under 1, 4, 16 and 64 clients;
- subject:   `meme subject learn` on random-sd15 with its defaults (300 steps at 512 px; the emoji atlas as the
             photo: the time is what is measured), its --json summary kept;
- summary:   the benches against DESIGN.md's targets, as a short table, to benchmarks/results/.
Without CUDA it says so in one line and exits 2.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from memestar.bench.targets import GEN_TARGETS_S, TUNE_PEAK_GIB, TUNE_STEPS, TUNE_TARGET_S  # noqa: E402 (no torch)

WHEELS = ROOT / ".whl"
SITE = ROOT / ".gpu-site"
RESULTS = ROOT / "benchmarks" / "results"
PYTHON_VERSION = "3.12"  # the GPU image's Python
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# What the GPU image lacks, by pip name. Not imageio-ffmpeg: its 68 MB wheel is over what one device call can
# carry, and no GPU step reads or writes video (GIFs go through Pillow).
GPU_WHEELS = (
    "diffusers",
    "importlib_metadata",
    "pydantic",
    "pydantic_core",
    "annotated-types",
    "typing-inspection",
    "typer",
    "annotated-doc",
    "onnx-graphsurgeon",
    "polygraphy",
    "fastapi",
    "starlette",
    "uvicorn",
    "python-multipart",
    "opentelemetry-api",
)
NEEDED_MODULES = ("diffusers", "pydantic", "typer", "onnx_graphsurgeon", "fastapi", "uvicorn", "multipart")
STEP_TIMEOUT_S = 570  # under the ten minutes one call may take
TORCH_VARIANTS = "torch,torch-eager,torch-compile"


class CheckError(Exception):
    """One line for the user, exit 2."""


def pinned(name: str, constraints: Path = ROOT / "constraints.txt") -> str:
    """`name==version` as constraints.txt pins it."""
    wanted = re.sub(r"[-_.]+", "-", name).lower()
    for line in constraints.read_text().splitlines():
        package, _, version = line.partition("==")
        if re.sub(r"[-_.]+", "-", package.strip()).lower() == wanted and version:
            return f"{package.strip()}=={version.split('+')[0].strip()}"
    raise CheckError(f"{name} is not pinned in {constraints}: add it there first")


def download_command(python: str = sys.executable) -> list[str]:
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    return [
        python,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        *platforms,
        "-d",
        str(WHEELS),
        *[pinned(n) for n in GPU_WHEELS],
    ]


def install_command(python: str = sys.executable) -> list[str]:
    wheels = sorted(str(w) for w in WHEELS.glob("*.whl"))
    return [
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--upgrade",
        "--target",
        str(SITE),
        *wheels,
    ]


def step_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SITE), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")  # the GPU box reaches no hub; every base here is built from configs
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def cuda_device(python: str = sys.executable) -> str:
    """The GPU's name, or a CheckError saying why there is none."""
    probe = (
        "import torch, sys; ok = torch.cuda.is_available(); "
        "print(torch.cuda.get_device_name(0) if ok else torch.__version__); "
        "sys.exit(0 if ok else 4 if torch.version.cuda is None else 3)"
    )
    try:
        r = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CheckError(f"cannot run {python} to look for a GPU ({e})") from e
    if r.returncode == 4:
        raise CheckError(
            f"no CUDA GPU here: the torch of {python} ({r.stdout.strip()}) is a CPU build; run make "
            f"gpu-check on a machine with an NVIDIA GPU, with GPU_PYTHON set to a Python with CUDA torch"
        )
    if r.returncode == 3:
        raise CheckError(
            "no CUDA GPU here (torch.cuda.is_available() is False): run make gpu-check on a machine "
            "with an NVIDIA GPU and a CUDA build of torch"
        )
    if r.returncode:
        raise CheckError(
            f"{python} has no usable torch ({(r.stderr.strip().splitlines() or ['?'])[-1]}): install "
            f"a CUDA build of torch, or set GPU_PYTHON to a Python that has one"
        )
    return r.stdout.strip()


def ensure_packages(python: str = sys.executable) -> None:
    """Installs the carried wheels into .gpu-site when a module meme-star needs is missing."""
    probe = [python, "-c", "import " + ", ".join(NEEDED_MODULES)]
    if subprocess.run(probe, env=step_env(), capture_output=True).returncode == 0:
        return
    if not list(WHEELS.glob("*.whl")):
        raise CheckError(
            f"{', '.join(NEEDED_MODULES)} are not all importable and {WHEELS} holds no wheels: run "
            f"`make gpu-wheels` on a machine with a package index and bring {WHEELS.name}/ along"
        )
    r = subprocess.run(install_command(python), capture_output=True, text=True)
    if r.returncode:
        raise CheckError(f"installing the wheels failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def report_stem(device: str, date: str | None = None) -> str:
    return f"gpu-check-{slug(device)}-{date or datetime.date.today().isoformat()}"


def plan(python: str, device: str, date: str | None = None) -> dict[str, list[str]]:
    """Each step's command line. The benches write their reports where the summary reads them."""
    stem = RESULTS / report_stem(device, date)
    # only the GPU module: collecting the others would import what the GPU box may lack (imageio-ffmpeg, hypothesis)
    steps = {
        "tests": [
            python,
            "-m",
            "pytest",
            "-m",
            "gpu",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "test_gpu.py"),
        ]
    }
    steps["default"] = [
        python,
        str(ROOT / "benchmarks" / "default_path.py"),
        "--preset",
        "sd15",
        "--json",
        f"{stem}-default.json",
        "--markdown",
        f"{stem}-default.md",
    ]
    steps["compile"] = [
        *steps["default"][:4],
        "--sizes",
        "256",
        "--compile",
        "--json",
        f"{stem}-compile.json",
        "--markdown",
        f"{stem}-compile.md",
    ]
    for size in (256, 128):
        steps[f"bench-{size}"] = [
            python,
            "-m",
            "memestar.cli",
            "bench",
            "--preset",
            "sd15",
            "--size",
            str(size),
            "--train",
            "--backends",
            TORCH_VARIANTS,
            "--json",
            f"{stem}-bench-{size}.json",
            "--markdown",
            f"{stem}-bench-{size}.md",
        ]
    steps["serve"] = [
        python,
        "-m",
        "memestar.cli",
        "bench",
        "--serve",
        "--preset",
        "sd15",
        "--clients",
        "1,4,16,64",
        "--json",
        f"{stem}-serve.json",
        "--markdown",
        f"{stem}-serve.md",
    ]
    steps["subject"] = [
        python,
        "-m",
        "memestar.cli",
        "subject",
        "learn",
        str(ROOT / "memestar" / "tiny" / "emoji" / "atlas.png"),
        "--name",
        "gpu-check",
        "--base",
        "random-sd15",
        "--device",
        "cuda",
        "--out",
        str(Path(tempfile.gettempdir()) / "memestar-gpu-check-subject"),
        "--force",
        "--json",
        "--quiet",
    ]
    return steps


KEEPS_STDOUT = {"tests": "tests.log", "subject": "subject.json"}  # steps whose output is their report


def summary(device: str, date: str | None = None, tests_line: str | None = None) -> str:
    """DESIGN.md's targets against what the two benches measured, as markdown."""
    stem = RESULTS / report_stem(device, date)
    lines = [f"# make gpu-check: {device}, {date or datetime.date.today().isoformat()}", ""]
    if tests_line:
        lines += [f"`pytest -m gpu`: {tests_line}", ""]
    lines += [
        "| size | variant | end to end s | loop s | target s | met | peak memory GiB | % of peak (loop) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tuning = []
    for size in (256, 128):
        report = _report(stem, size)
        if not report:
            lines.append(f"| {size} | (no report: run `make gpu-check STEP=bench-{size}`) | | | | | | |")
            continue
        for name, b in report["backends"].items():
            e2e, loop = b["stages"]["end_to_end"], b["stages"]["loop"]
            met = "-" if name == "baseline" else "yes" if e2e["median_s"] <= GEN_TARGETS_S[size] else "no"
            lines.append(
                f"| {size} | {name} ({b['precision']}) | {e2e['median_s']:.3f} | {loop['median_s']:.3f} | "
                f"{GEN_TARGETS_S[size]} | {met} | {e2e['peak_memory_bytes'] / 2**30:.2f} | "
                f"{100 * loop['peak_share']:.1f} |"
            )
            if "train_step" in b["stages"] or "train_error" in b:
                tuning.append((size, name, b))
    batched = [
        (size, name, b)
        for size in (256, 128)
        for name, b in _report(stem, size).get("backends", {}).items()
        if "throughput" in b
    ]
    if batched:
        lines += [
            "",
            "Batched generation, clips/s (the adapter swap between two memes on one base, ms):",
            "",
            "| size | variant | batch 1 | batch 2 | batch 4 | batch 8 | swap ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for size, name, b in batched:
            cells = [f"{b['throughput'][k]['clips_per_s']:.2f}" if k in b["throughput"] else "" for k in "1248"]
            lines.append(
                f"| {size} | {name} ({b['precision']}) | "
                + " | ".join(cells)
                + f" | {1000 * b.get('swap_s', float('nan')):.2f} |"
            )
    for part in ("default", "compile"):
        path = Path(f"{stem}-{part}.md")
        if path.is_file():
            lines += ["", *path.read_text().splitlines()[2:]]
    serve = Path(f"{stem}-serve.json")
    if serve.is_file():
        t = json.loads(serve.read_text())["target"]
        lines += [
            "",
            f"`meme bench --serve` (256 px): 16 clients on one meme {t['concurrent']['clips_per_s']:.2f} "
            f"clips/s against one client {t['sequential']['clips_per_s']:.2f} ({t['speedup']:.2f}x), "
            f"{t['concurrent']['errors']} errors, {t['concurrent']['lost']} lost.",
        ]
    subject = Path(f"{stem}-subject.json")
    if subject.is_file():
        learned = json.loads(subject.read_text())
        seconds = learned["seconds"]
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
        lines += [
            "",
            f"`meme subject learn` ({learned['steps']} steps, random-sd15 at its 512 px, fp32): "
            f"{sum(seconds.values()):.1f} s in all, {parts} (issue 33: seconds to a few minutes on a GPU).",
        ]
    if tuning:
        lines += [
            "",
            f"Tuning, {TUNE_STEPS} steps (DESIGN.md: <= {TUNE_TARGET_S:g} s with loading at 256 px, peak <= "
            f"{TUNE_PEAK_GIB:g} GiB):",
            "",
            f"| size | variant | step s | load s | {TUNE_STEPS} steps with loading s | peak GiB "
            f"| checkpointing | met |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for size, name, b in tuning:
            if "train_error" in b:
                lines.append(f"| {size} | {name} ({b['precision']}) | {b['train_error']} | | | | | no |")
                continue
            t = b["stages"]["train_step"]
            total = t["load_s"] + TUNE_STEPS * t["median_s"]
            peak = t["peak_memory_bytes"] / 2**30
            met = "-" if name == "baseline" else "yes" if total <= TUNE_TARGET_S and peak <= TUNE_PEAK_GIB else "no"
            lines.append(
                f"| {size} | {name} ({t['precision']}) | {t['median_s']:.3f} | {t['load_s']:.1f} | "
                f"{total:.1f} | {peak:.2f} | {t['gradient_checkpointing']} | {met} |"
            )
    return "\n".join(lines) + "\n"


def _report(stem: Path, size: int) -> dict:
    path = Path(f"{stem}-bench-{size}.json")
    return json.loads(path.read_text()) if path.is_file() else {}


def run(step: str, python: str, date: str | None = None) -> int:
    device = cuda_device(python)
    if step != "summary":
        ensure_packages(python)
    RESULTS.mkdir(parents=True, exist_ok=True)
    steps = plan(python, device, date)
    chosen = list(steps) if step == "all" else [step] if step != "summary" else []
    tests_log = RESULTS / f"{report_stem(device, date)}-{KEEPS_STDOUT['tests']}"
    failed = 0
    for name in chosen:
        print(f"gpu-check: {name} on {device} ...", file=sys.stderr, flush=True)
        try:
            r = subprocess.run(
                steps[name],
                env=step_env(),
                cwd=ROOT,
                timeout=STEP_TIMEOUT_S,
                text=True,
                capture_output=name in KEEPS_STDOUT,
            )
        except subprocess.TimeoutExpired:
            print(f"gpu-check: {name} ran past {STEP_TIMEOUT_S} s", file=sys.stderr)
            if name == "tests":
                tests_log.write_text(f"timed out after {STEP_TIMEOUT_S} s\n")
            failed += 1
            continue
        if name == "tests":
            tests_log.write_text(r.stdout + r.stderr)
            sys.stdout.write(r.stdout[-4000:])
        elif name in KEEPS_STDOUT:
            sys.stderr.write(r.stderr[-4000:])
            if r.returncode == 0:
                (RESULTS / f"{report_stem(device, date)}-{KEEPS_STDOUT[name]}").write_text(r.stdout)
        failed += r.returncode != 0
    tests_line = None
    if tests_log.is_file():
        tail = [
            line
            for line in tests_log.read_text().splitlines()
            if " passed" in line or " failed" in line or "timed out" in line
        ]
        tests_line = tail[-1].strip("= ") if tail else "see the log"
    text = summary(device, date, tests_line=tests_line)
    (RESULTS / f"{report_stem(device, date)}.md").write_text(text)
    print(text)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("download", "install", "run"))
    parser.add_argument(
        "--step",
        default="all",
        choices=("all", "tests", "default", "compile", "bench-256", "bench-128", "serve", "subject", "summary"),
    )
    parser.add_argument(
        "--python",
        default=os.environ.get("GPU_PYTHON") or sys.executable,
        help="The Python with the GPU's CUDA torch (default: this one).",
    )
    parser.add_argument(
        "--date",
        default=None,
        help="The date in the report names (default: today), so steps "
        "run on either side of midnight land in one report.",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "download":
            return subprocess.run(download_command(args.python)).returncode
        if args.action == "install":
            return subprocess.run(install_command(args.python)).returncode
        return run(args.step, args.python, args.date)
    except CheckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
