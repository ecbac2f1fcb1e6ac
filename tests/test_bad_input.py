"""What a hostile user found (issue 11), each held here: bad numbers, damaged meme folders, outputs that are not
files, full or read-only disks, two runs on one folder, and files that differ between identical runs. Every
case ends in exit 0 with a valid file, or exit 2 with one `error:` line, and nothing already written is lost."""

import errno
import fcntl
import json
import os
import shutil
import time

import pytest
import torch
from safetensors.torch import load_file

import memestar.files as files_module
from memestar.errors import MemeError
from memestar.files import check_target
from memestar.formats.meme_folder import MEME_JSON, read_meme, sha256
from memestar.models.layout import DEFAULT_FRAME_ATTENTION, FRAME_ATTENTION_MODES
from memestar.train.command import locked_folder, train_meme

PROMPT = "a blue circle sliding"


def one_error_line(code, err, message=""):
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert "Traceback" not in err and "internal error" not in err, err


def copy_meme(meme_dir, tmp_path):
    copy = tmp_path / "meme"
    shutil.copytree(meme_dir, copy, ignore=shutil.ignore_patterns("export"))
    return copy


def rehash(folder):
    """Updates meme.json's sha256 table to the files as they are now (what a careful attacker would do)."""
    meta = json.loads((folder / MEME_JSON).read_text())
    meta["files"] = {name: sha256(folder / name) for name in meta["files"]}
    (folder / MEME_JSON).write_text(json.dumps(meta))


# 1: one step, and one inversion step
@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
def test_one_denoising_step_runs(meme_main, small_meme_dir, tmp_path, sampler):
    code, out, err = meme_main(
        "gen",
        PROMPT,
        "--meme",
        small_meme_dir,
        "--steps",
        1,
        "--sampler",
        sampler,
        "-o",
        tmp_path / "one.gif",
        "--quiet",
    )
    assert code == 0, err
    assert (tmp_path / "one.gif").read_bytes().startswith(b"GIF89a")


def test_one_inversion_step_makes_a_whole_meme(meme_main, slide_gif, tmp_path):
    code, _, err = meme_main(
        "train",
        slide_gif,
        "--text",
        PROMPT,
        "--base",
        "random-tiny",
        "--frames",
        4,
        "--size",
        64,
        "--steps",
        1,
        "--inversion-steps",
        1,
        "--out",
        tmp_path / "m",
        "--quiet",
    )
    assert code == 0, err
    assert read_meme(tmp_path / "m").inversion.steps == 1


# 2, 7, 8, 9, 10, 13: numbers out of range, refused before anything loads
NUMBERS = {
    "fps -1": ("gen", ["--fps", "-1"], "--fps is -1"),
    "fps nan": ("gen", ["--fps", "nan"], "--fps is nan"),
    "fps tiny": ("gen", ["--fps", "1e-9"], "--fps is 1e-09"),
    "guidance inf": ("gen", ["--guidance", "inf"], "--guidance is inf"),
    "guidance 1e30": ("gen", ["--guidance", "1e30"], "--guidance is 1e+30"),
    "guidance nan": ("gen", ["--guidance", "nan"], "--guidance is nan"),
    "seed 2**70": ("gen", ["--seed", str(2**70)], "--seed is"),
    "seed negative": ("gen", ["--seed", "-1"], "--seed is -1"),
    "device tpu": ("gen", ["--device", "tpu"], "--device 'tpu'"),
    "max-kb nan": ("gen", ["--max-kb", "nan"], "--max-kb is nan"),
    "lr nan": ("train", ["--lr", "nan"], "--lr is nan"),
    "lr inf": ("train", ["--lr", "inf"], "--lr is inf"),
    "train seed 2**70": ("train", ["--seed", str(2**70)], "--seed is"),
    "train device tpu": ("train", ["--device", "tpu"], "--device 'tpu'"),
    "train size huge": ("train", ["--size", "100000"], "size 100000"),
    "train frames huge": ("train", ["--frames", "100000"], "--frames is 100000"),
    "clip size huge": ("clip", ["--size", "100000"], "size 100000"),
    "clip fps nan": ("clip", ["--fps", "nan"], "--fps is nan"),
    "clip fps -1": ("clip", ["--fps", "-1"], "--fps is -1"),
}


@pytest.mark.parametrize("case", list(NUMBERS))
def test_numbers_out_of_range_are_one_line(case, meme_main, small_meme_dir, slide_gif, tmp_path, monkeypatch):
    import memestar.runtime.runtimes as runtime_module
    import memestar.train.command as train_module

    for module in (runtime_module, train_module):  # refused before any model loads
        monkeypatch.setattr(module, "load_base", None)
    command, extra, message = NUMBERS[case]
    if command == "gen":
        args = ["gen", PROMPT, "--meme", small_meme_dir, "-o", tmp_path / "x.gif"]
    elif command == "train":
        args = [
            "train",
            slide_gif,
            "--text",
            PROMPT,
            "--base",
            "random-tiny",
            "--out",
            tmp_path / "m",
            "--frames",
            4,
            "--size",
            64,
        ]
    else:
        args = ["clip", slide_gif, "-o", tmp_path / "x.gif", "--frames", 4]
    t = time.perf_counter()
    one_error_line(*meme_main(*args, *extra)[::2], message)
    assert time.perf_counter() - t < 30  # no 30 GB allocation, no model load
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("option", ["--frame-positions", "--follow"])
@pytest.mark.parametrize("value", ["maybe", "", "on,sideways"])
def test_eval_switches_take_on_off_or_both(option, value, meme_main):
    from memestar.options import from_cli
    from memestar.tiny.evaluate import EvalOptions

    one_error_line(*meme_main("eval", option, value)[::2], "use on, off, or on,off")
    assert from_cli(EvalOptions, {"positions": "on, off"}).positions == (True, False)
    assert from_cli(EvalOptions, {"follows": "off,off"}).follows == (False,)


def test_steps_beyond_the_bases_schedule_are_one_line(meme_main, slide_gif, small_meme_dir, tmp_path):
    """SD's schedule (steps_offset 1) takes 999 DDIM steps and 500 DPM-Solver++ steps: within the general limits,
    beyond the base's; refused before tuning, with nothing written."""
    one_error_line(
        *meme_main(
            "train",
            slide_gif,
            "--text",
            PROMPT,
            "--base",
            "random-tiny",
            "--frames",
            4,
            "--size",
            64,
            "--inversion-steps",
            1000,
            "--out",
            tmp_path / "m",
            "--quiet",
        )[::2],
        "DDIM takes 1 to 999 steps, not 1000",
    )
    assert not (tmp_path / "m").exists()
    code, _, err = meme_main(
        "gen",
        PROMPT,
        "--meme",
        small_meme_dir,
        "--sampler",
        "dpm++",
        "--steps",
        500,
        "-o",
        tmp_path / "x.gif",
        "--quiet",
    )
    assert code == 0, err


# 3, 14: outputs that are not regular files
def test_outputs_that_are_not_files_are_refused(meme_main, small_meme_dir, slide_gif, tmp_path):
    folder = tmp_path / "a-folder.gif"
    folder.mkdir()
    fifo = tmp_path / "pipe.gif"
    os.mkfifo(fifo)
    real = tmp_path / "real.gif"
    real.write_bytes(b"kept")
    link = tmp_path / "link.gif"
    link.symlink_to(real)
    for target, message in ((folder, "is a folder"), (fifo, "not a regular file"), (link, "symbolic link")):
        one_error_line(*meme_main("clip", slide_gif, "-o", target, "--frames", 4, "--size", 32)[::2], message)
        one_error_line(*meme_main("gen", PROMPT, "--meme", small_meme_dir, "-o", target, "--steps", 1)[::2], message)
    assert folder.is_dir() and fifo.is_fifo() and link.is_symlink() and real.read_bytes() == b"kept"
    with pytest.raises(MemeError, match="not a regular file"):
        check_target("/dev/null")  # a device node: refused without being touched


def test_prompts_output_over_an_existing_file_is_refused(meme_main, small_meme_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red star\na green square\n")
    taken = tmp_path / "outs"
    taken.write_text("a file, not a folder")
    one_error_line(*meme_main("gen", "--prompts", prompts, "--meme", small_meme_dir, "-o", taken)[::2], "is a file")
    assert taken.read_text() == "a file, not a folder"


# 11
def test_binary_prompts_file_is_one_line(meme_main, small_meme_dir, tmp_path):
    binary = tmp_path / "prompts.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    one_error_line(*meme_main("gen", "--prompts", binary, "--meme", small_meme_dir)[::2], "not UTF-8 text")


# 4: full disk and read-only file system, in every command that writes
def failing_write(code):
    """Every atomic write fails as the disk would, after the temporary file was written."""

    def fail(path):
        raise OSError(code, os.strerror(code), str(path))

    return fail


@pytest.mark.parametrize("code, message", [(errno.ENOSPC, "is full"), (errno.EROFS, "read-only")])
def test_full_or_read_only_disk_is_one_line_and_keeps_files(
    code, message, meme_main, small_meme_dir, slide_gif, tmp_path, monkeypatch
):
    earlier = tmp_path / "out.gif"
    earlier.write_bytes(b"earlier output")
    monkeypatch.setattr(files_module, "make_ordinary", failing_write(code))
    one_error_line(*meme_main("clip", slide_gif, "-o", earlier, "--frames", 4, "--size", 32)[::2], message)
    one_error_line(*meme_main("gen", PROMPT, "--meme", small_meme_dir, "-o", earlier, "--steps", 1)[::2], message)
    one_error_line(
        *meme_main(
            "train",
            slide_gif,
            "--text",
            PROMPT,
            "--base",
            "random-tiny",
            "--frames",
            4,
            "--size",
            64,
            "--steps",
            4,
            "--checkpoint-every",
            2,
            "--out",
            tmp_path / "m",
            "--quiet",
        )[::2],
        message,
    )
    assert earlier.read_bytes() == b"earlier output"
    assert not [p for p in tmp_path.rglob(".*tmp*")]  # no temporary files left behind
    assert not (tmp_path / "m" / MEME_JSON).exists()


# 5, 6: damaged meme.json
def drop(key):
    def change(meta):
        del meta[key]
        return meta

    return change


def replace(key, value):
    def change(meta):
        meta[key] = value
        return meta

    return change


OTHER_FRAME_ATTENTION = next(m for m in FRAME_ATTENTION_MODES if m != DEFAULT_FRAME_ATTENTION)

DAMAGED = {
    "a list": (lambda meta: [], "a JSON array"),
    "null": (lambda meta: None, "a JSON null"),
    "files a list": (replace("files", []), "field files"),
    "files missing": (drop("files"), "field files"),
    "files empty": (replace("files", {}), "field files"),
    "no base": (drop("base"), "field base"),
    "no group_norm": (drop("group_norm"), "field group_norm"),
    "no fps": (drop("fps"), "field fps"),
    "frames a string": (replace("frames", "8"), "field frames"),
    "fps negative": (replace("fps", -3), "field fps"),
    "size not a multiple of 8": (replace("size", 60), "field size"),
    "base a number": (replace("base", 3), "field base"),
    "unknown format": (replace("format", "memestar-meme/99"), "memestar-meme/99"),
    "unknown group norm": (replace("group_norm", "sideways"), "field group_norm"),
    "inversion steps 0": (replace("inversion", {"steps": 0, "prompt": ""}), "field inversion.steps"),
    "frame_positions a string": (replace("frame_positions", "yes"), "field frame_positions"),
    # read as a meme from before frame positions, which its adapter contradicts
    "frame_positions dropped": (drop("frame_positions"), "tuned with true"),
    "group_norm not the adapter's": (replace("group_norm", "frames"), "tuned with per-frame"),
    "unknown frame attention": (replace("frame_attention", "all"), "field frame_attention"),
    "frame_attention not the adapter's": (
        replace("frame_attention", OTHER_FRAME_ATTENTION),
        "tuned with first-previous",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_meme_json_is_refused_naming_the_field(case, meme_main, small_meme_dir, tmp_path):
    folder = copy_meme(small_meme_dir, tmp_path)
    change, message = DAMAGED[case]
    (folder / MEME_JSON).write_text(json.dumps(change(json.loads((folder / MEME_JSON).read_text()))))
    one_error_line(*meme_main("gen", PROMPT, "--meme", folder, "-o", tmp_path / "x.gif", "--steps", 1)[::2], message)
    assert str(folder / MEME_JSON) in meme_main("gen", PROMPT, "--meme", folder, "-o", tmp_path / "x.gif")[2]
    assert not (tmp_path / "x.gif").exists()


def test_a_number_too_long_for_python_is_a_damaged_field_not_a_crash(meme_main, small_meme_dir, tmp_path):
    folder = copy_meme(small_meme_dir, tmp_path)
    text = (folder / MEME_JSON).read_text()
    (folder / MEME_JSON).write_text(text.replace('"frames": 8', '"frames": 1' + "0" * 5000, 1))
    one_error_line(*meme_main("gen", PROMPT, "--meme", folder, "-o", tmp_path / "x.gif")[::2], "not valid JSON")


def test_ctrl_c_is_one_line_with_exit_130(meme_main, small_meme_dir, tmp_path, monkeypatch):
    import memestar.runtime.command as gen_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gen_module.Meme, "load", interrupted)
    code, out, err = meme_main("gen", PROMPT, "--meme", small_meme_dir, "-o", tmp_path / "x.gif")
    assert code == 130 and err.strip().splitlines() == ["error: interrupted"], err


def test_a_nan_adapter_cannot_hide_behind_a_rehashed_meme_json(meme_main, small_meme_dir, tmp_path):
    from memestar.files import save_safetensors

    folder = copy_meme(small_meme_dir, tmp_path)
    tensors = load_file(folder / "adapter.safetensors")
    from safetensors import safe_open

    with safe_open(folder / "adapter.safetensors", framework="pt") as f:
        metadata = f.metadata()
    save_safetensors(
        {k: torch.full_like(t, float("nan")) for k, t in tensors.items()}, folder / "adapter.safetensors", metadata
    )
    one_error_line(*meme_main("gen", PROMPT, "--meme", folder, "--steps", 1)[::2], "changed since meme.json")
    rehash(folder)
    one_error_line(*meme_main("gen", PROMPT, "--meme", folder, "--steps", 1)[::2], "non-finite")


# 12: re-hashed tensors of the wrong shape
def test_wrong_shaped_adapter_and_inversion_are_refused(meme_main, small_meme_dir, tmp_path):
    from safetensors import safe_open

    from memestar.files import save_safetensors
    from memestar.formats.meme_folder import save_inversion

    adapter_case = copy_meme(small_meme_dir, tmp_path / "a")
    tensors = load_file(adapter_case / "adapter.safetensors")
    with safe_open(adapter_case / "adapter.safetensors", framework="pt") as f:
        metadata = f.metadata()
    name = sorted(tensors)[0]
    tensors[name] = torch.zeros(3, 5, dtype=tensors[name].dtype)
    save_safetensors(tensors, adapter_case / "adapter.safetensors", metadata)
    rehash(adapter_case)
    one_error_line(*meme_main("gen", PROMPT, "--meme", adapter_case, "--steps", 1)[::2], "does not fit this UNet")

    inversion_case = copy_meme(small_meme_dir, tmp_path / "i")
    save_inversion(inversion_case / "inversion.safetensors", torch.zeros(1, 4, 3, 5, 5), 4)
    rehash(inversion_case)
    one_error_line(
        *meme_main("gen", PROMPT, "--meme", inversion_case, "--steps", 1, "-o", tmp_path / "x.gif")[::2],
        "shape (1, 4, 3, 5, 5)",
    )
    assert not (tmp_path / "x.gif").exists()


# 15: one-line usage errors, and a fast failure offline
def test_usage_errors_are_one_line(meme_main):
    one_error_line(*meme_main("gen", PROMPT, "--meme", "m", "--stepz", 1)[::2], "No such option: --stepz")
    one_error_line(*meme_main("gen", PROMPT, "--meme", "m", "--steps", "many")[::2], "--steps")
    one_error_line(*meme_main("no-such-command")[::2], "No such command")


def test_an_unknown_hub_base_fails_fast_offline(run_meme, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens there: the Hub is unreachable at once
    env["HF_HOME"] = str(tmp_path / "hf")
    t = time.perf_counter()
    r = run_meme("base", "someone/no-such-model", env=env)
    seconds = time.perf_counter() - t
    one_error_line(r.returncode, r.stderr, "cannot be reached")
    assert seconds < 20, seconds  # was ~27 s of Hub retries before the error


# 16: one run per output folder
def test_a_second_train_on_the_same_folder_is_refused(run_meme, slide_gif, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    with locked_folder(out):  # what a running `meme train --out busy` holds
        r = run_meme(
            "train",
            slide_gif,
            "--text",
            PROMPT,
            "--base",
            "random-tiny",
            "--frames",
            4,
            "--size",
            64,
            "--steps",
            1,
            "--out",
            out,
        )
        one_error_line(r.returncode, r.stderr, "another `meme train` is writing to")
    assert list(out.iterdir()) == []
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the process that held it
    finally:
        os.close(fd)


# 17: identical runs, identical bytes
@pytest.mark.slow  # trains twice and exports
def test_identical_runs_write_identical_files_and_export_keys(slide_gif, tmp_path, train_options):
    from memestar.export.command import ExportOptions, export_meme
    from memestar.formats.export_folder import EXPORT_DIR

    runs = []
    for name in ("a", "b"):
        train_meme(train_options(slide_gif, tmp_path / name, steps=3, inversion_steps=3))
        runs.append(read_meme(tmp_path / name))
    assert runs[0].files == runs[1].files
    for file in ("adapter.safetensors", "inversion.safetensors"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    first = export_meme(ExportOptions(meme=tmp_path / "a", precision="fp32", device="cpu", quiet=True))
    # b's key, from its own meme.json, must find a's export: one build, not two
    shutil.copytree(tmp_path / "a" / EXPORT_DIR, tmp_path / "b" / EXPORT_DIR)
    second = export_meme(ExportOptions(meme=tmp_path / "b", precision="fp32", device="cpu", quiet=True))
    assert not first["cached"] and second["cached"] and second["key"] == first["key"]


def test_safetensors_bytes_do_not_depend_on_the_process(tmp_path, run_meme):
    """safetensors writes metadata in a per-process hash order; ours is sorted. Two processes, same bytes."""
    script = (
        "import sys, torch; from memestar.files import save_safetensors; "
        "save_safetensors({'b': torch.ones(2), 'a': torch.zeros(3)}, sys.argv[1], "
        "{'format': 'x', 'group_norm': 'y', 'base_reference': 'z', 'base_fingerprint': 'w'})"
    )
    import subprocess
    import sys

    for i in range(3):
        subprocess.run([sys.executable, "-c", script, tmp_path / f"{i}.safetensors"], check=True)
    data = [(tmp_path / f"{i}.safetensors").read_bytes() for i in range(3)]
    assert data[0] == data[1] == data[2]
    loaded = load_file(tmp_path / "0.safetensors")
    assert torch.equal(loaded["a"], torch.zeros(3)) and torch.equal(loaded["b"], torch.ones(2))


# issue 30, 8: text that is not UTF-8 (a shell's $'a cat \xff' reaches Python as a lone surrogate)
@pytest.mark.parametrize(
    "args, what",
    [
        (["a cat \udcff"], "the prompt is not valid UTF-8 (character 7)"),
        (["--subject", "cat \udcff"], "is not valid UTF-8"),
        ([PROMPT, "--negative", "bad \udcfe"], "the negative prompt is not valid UTF-8"),
        ([PROMPT, "--top", "hi \udcfe"], "the top caption is not valid UTF-8"),
        ([PROMPT, "--bottom", "x\x00"], "the bottom caption holds a NUL"),
    ],
)
def test_text_that_is_not_utf8_is_one_line(args, what, meme_main, small_meme_dir, tmp_path):
    code, _, err = meme_main("gen", *args, "--meme", small_meme_dir, "-o", tmp_path / "x.gif", "--quiet")
    one_error_line(code, err, what)
    assert not (tmp_path / "x.gif").exists()


def test_a_prompt_of_raw_bytes_from_the_shell_is_one_line(small_meme_dir, tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "memestar.cli",
            "gen",
            b"a cat \xff",
            "--meme",
            str(small_meme_dir),
            "-o",
            str(tmp_path / "x.gif"),
        ],
        capture_output=True,
    )
    one_error_line(r.returncode, r.stderr.decode(), "the prompt is not valid UTF-8")
