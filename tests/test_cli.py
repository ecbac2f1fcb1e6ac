import json

from memestar.media.clips import read_clip
from memestar.media.writers import write_mp4


def test_help_lists_the_commands(run_meme):
    r = run_meme("--help")
    assert r.returncode == 0
    for command in ("train", "gen", "bench", "demo", "eval", "clip", "base"):
        assert command in r.stdout


def test_base_reports_fingerprint_and_trainable_count(run_meme):
    r = run_meme("base", "random-tiny", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["trainable_parameters"] > info["temporal_parameters"] > 0
    assert info["unet_parameters"] > info["trainable_parameters"]
    assert len(info["fingerprint"]) == 21
    again = json.loads(run_meme("base", "random-tiny", "--json").stdout)
    assert again["fingerprint"] == info["fingerprint"]


def test_base_refuses_pickle_with_exit_2(tmp_path, run_meme):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x04not really a pickle")
    r = run_meme("base", ckpt)
    assert r.returncode == 2 and "--allow-pickle" in r.stderr and "Traceback" not in r.stderr


def test_clip_writes_the_frames_train_will_see(tmp_path, numbered_frames, run_meme):
    src = write_mp4(numbered_frames(20, 48, 64), tmp_path / "in.mp4", fps=10)
    r = run_meme("clip", src, "-o", tmp_path / "out.mp4", "--frames", 5, "--size", 32, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["indices"] == [0, 4, 8, 12, 16] and info["fps"] == 2.5
    assert read_clip(tmp_path / "out.mp4", 5, 32, stride=1).frames.shape == (5, 32, 32, 3)
    r = run_meme("clip", src, "-o", tmp_path / "out.avi")
    assert r.returncode == 2 and "suffix" in r.stderr
