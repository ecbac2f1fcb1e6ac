"""The parts of `make gpu-check` a CPU machine can hold: it refuses in one line without CUDA, the wheels it
carries are the pinned ones, `-m gpu` selects exactly the GPU tests, and its steps cover what the issue asks."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_cuda_it_says_so_in_one_line_and_exits_2():
    for command in (
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "run"],
        ["make", "-s", "--no-print-directory", "gpu-check", f"GPU_PYTHON={sys.executable}"],
    ):
        r = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, (command, r.stderr)
        ours = [line for line in r.stderr.splitlines() if not line.startswith("make")]
        assert ours == [ours[0]] and ours[0].startswith("error: no CUDA GPU here"), r.stderr


def test_a_python_without_torch_is_one_line_too(tmp_path):
    no_torch = tmp_path / "python"  # this Python, with torch hidden
    no_torch.write_text(
        f'#!/bin/sh\nexec {sys.executable} -c "import sys; sys.modules[\'torch\'] = None; exec(sys.argv[1])" "$2"\n'
    )
    no_torch.chmod(0o755)
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "run", "--python", no_torch],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"error: {no_torch} has no usable torch"), r.stderr


def test_the_wheels_are_the_pinned_versions_for_the_gpu_python():
    command = gpu_check.download_command("python")
    assert command[:4] == ["python", "-m", "pip", "download"]
    assert "--no-deps" in command and "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[command.index("-d") + 1] == str(ROOT / ".whl")
    pins = {c.split("==")[0].lower().replace("_", "-"): c.split("==")[1] for c in command if "==" in c}
    constraints = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    assert {"diffusers", "pydantic", "pydantic-core", "typer", "onnx-graphsurgeon", "polygraphy"} <= set(pins)
    for name, version in pins.items():
        assert constraints[name] == version, name
    assert "torch" not in pins and "transformers" not in pins  # the GPU box keeps its own
    with pytest.raises(gpu_check.CheckError, match="not pinned"):
        gpu_check.pinned("no-such-package")


def test_install_goes_to_a_target_folder_without_the_index():
    command = gpu_check.install_command("python")
    assert "--no-index" in command and "--no-deps" in command
    assert command[command.index("--target") + 1] == str(ROOT / ".gpu-site")
    env = gpu_check.step_env()
    assert env["PYTHONPATH"].split(":")[:2] == [str(ROOT / ".gpu-site"), str(ROOT)]
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/.whl/" in ignored and "/.gpu-site/" in ignored


def test_the_steps_cover_the_gpu_tests_the_default_path_and_both_bench_sizes():
    steps = gpu_check.plan("python", "NVIDIA H100 80GB HBM3", "2026-11-25")
    assert list(steps) == ["tests", "default", "compile", "bench-256", "bench-128", "serve", "subject"]
    subject = steps["subject"]
    assert subject[3:5] == ["subject", "learn"] and subject[subject.index("--base") + 1] == "random-sd15"
    assert Path(subject[5]).is_file() and "--json" in subject
    assert steps["default"][1].endswith("default_path.py") and "sd15" in steps["default"]
    assert steps["compile"][1].endswith("default_path.py") and "--compile" in steps["compile"]
    assert steps["compile"][steps["compile"].index("--sizes") + 1] == "256" and "sd15" in steps["compile"]
    assert steps["compile"][steps["compile"].index("--json") + 1].endswith("-compile.json")
    assert steps["serve"][steps["serve"].index("--preset") + 1] == "sd15" and "--serve" in steps["serve"]
    assert steps["tests"][:5] == ["python", "-m", "pytest", "-m", "gpu"]
    for size in (256, 128):
        bench = steps[f"bench-{size}"]
        assert bench[bench.index("--size") + 1] == str(size) and "--train" in bench
        assert bench[bench.index("--preset") + 1] == "sd15"
        assert bench[bench.index("--backends") + 1].split(",") == ["torch", "torch-eager", "torch-compile"]
        assert "gpu-check-nvidia-h100-80gb-hbm3-2026-11-25" in bench[bench.index("--json") + 1]
    assert gpu_check.STEP_TIMEOUT_S < 600


def collected(*args) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return [line for line in r.stdout.splitlines() if "::" in line]


def test_the_gpu_marker_selects_exactly_the_gpu_tests():
    gpu = collected("-m", "gpu", "tests/test_gpu.py", "tests/test_gen.py")
    assert gpu and all(line.startswith("tests/test_gpu.py::") for line in gpu)
    assert collected("tests/test_gpu.py") == []  # the default run leaves them out


def test_the_summary_compares_with_the_targets(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(gpu_check, "RESULTS", tmp_path)
    stage = {"median_s": 0.2, "peak_memory_bytes": 3 * 2**30, "peak_share": 0.25}
    train = {
        "median_s": 0.2,
        "peak_memory_bytes": 6 * 2**30,
        "precision": "bfloat16",
        "gradient_checkpointing": True,
        "load_s": 15.0,
    }
    batches = {k: {"clips_per_s": 2.0 * int(k), "median_s": 0.5} for k in "1248"}
    report = {
        "backends": {
            "torch": {
                "precision": "bfloat16",
                "stages": {"end_to_end": stage, "loop": stage, "train_step": train},
                "throughput": batches,
                "swap_s": 0.004,
            }
        }
    }
    stem = gpu_check.report_stem("GPU X", "2026-11-25")
    (tmp_path / f"{stem}-bench-256.json").write_text(json.dumps(report))
    learned = {"steps": 300, "seconds": {"load": 6.0, "encode": 0.5, "learn": 40.0}}
    (tmp_path / f"{stem}-subject.json").write_text(json.dumps(learned))
    text = gpu_check.summary("GPU X", "2026-11-25", tests_line="9 passed")
    assert "(300 steps, random-sd15 at its 512 px, fp32): 46.5 s in all, load 6.0 s, encode 0.5 s, learn 40.0 s" in text
    assert "| 256 | torch (bfloat16) | 0.200 | 0.200 | 0.25 | yes |" in text
    assert "| 256 | torch (bfloat16) | 0.200 | 15.0 | 55.0 | 6.00 | True | yes |" in text
    assert "STEP=bench-128" in text and "9 passed" in text
    assert "| 256 | torch (bfloat16) | 2.00 | 4.00 | 8.00 | 16.00 | 4.00 |" in text


def test_the_default_path_times_cold_and_warm_clips_in_two_processes(tmp_path):
    """`benchmarks/default_path.py` on the CPU with the tiny preset: each process loads the meme, times its first
    clip and warm ones with following on and off, and the report holds both processes."""
    import json

    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "default_path.py"),
            "--preset",
            "tiny",
            "--sizes",
            "32",
            "--device",
            "cpu",
            "--json",
            tmp_path / "d.json",
            "--markdown",
            tmp_path / "d.md",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "d.json").read_text())
    processes = report["sizes"][0]["processes"]
    assert len(processes) == 2
    for p in processes:
        assert p["first_clip_s"] > 0 and p["warm_s"] > 0 and p["warm_follow_off_s"] > 0 and p["load_s"] > 0
        assert p["settings"]["follow"] is True  # the bench's meme has a track: no flags follow it
    assert "| 32 | 2 |" in (tmp_path / "d.md").read_text()
