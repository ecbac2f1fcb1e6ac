"""Hostile media (issue 30): files that declare far more than their bytes hold, and damaged files, wherever a
file from a user is read (training clips, `meme clip`, `meme check`; the server's uploads in test_serve.py).

Each is refused in one line naming the file and what is wrong, before its declared size is decoded."""

import resource
import subprocess
import sys

import pytest

from memestar.errors import MemeError
from memestar.media.check import probe
from memestar.media.clips import read_clip

REFUSED = {
    "bomb-30000.gif": "declares a canvas of 900,000,000 pixels, over the cap",
    "bomb-9000x20.gif": "declares a canvas of 81,000,000 pixels, over the cap",
    "warn-4100.gif": "declares a canvas of 16,810,000 pixels, over the cap",
    "decode-2000x300.gif": r"would decode to 1\.2 G pixels \(300 frames of 2000x2000\)",
    "timeline.gif": "s of display time, over the cap of 600 s",
    "timeline.webp": "s of display time, over the cap of 600 s",
    "wide-frame.png": "is damaged",
    "wide-frame.webp": "is damaged",
    "many-frames.png": "declares 2,147,483,647 frames, over the cap",
    "half.webm": "is damaged",
    "cut-2000.webm": "is damaged|not a video ffmpeg can read",
    "garbage.webm": "is damaged",
}


def one_line(error: MemeError) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    return text


@pytest.mark.parametrize("name", [name for name in REFUSED if not name.endswith(".png")])  # APNG is no clip
def test_hostile_clip_is_refused_in_one_line(name, hostile_media):
    with pytest.raises(MemeError, match=REFUSED[name]) as e:
        read_clip(hostile_media[name], 4, 16)
    assert one_line(e.value).startswith(name) or f" {name} " in one_line(e.value)


@pytest.mark.parametrize("name", list(REFUSED))
def test_hostile_file_fails_meme_check(name, hostile_media):
    with pytest.raises(MemeError, match=REFUSED[name]) as e:
        probe(hostile_media[name])
    one_line(e.value)


@pytest.mark.parametrize("name", ["fine.gif", "fine.webp", "whole.webm"])
def test_sound_files_still_read(name, hostile_media):
    """The caps refuse what is hostile, not what is ordinary: the same files whole read and probe."""
    assert read_clip(hostile_media[name], 4, 16).frames.shape == (4, 16, 16, 3)
    report = probe(hostile_media[name])
    assert report.frames in (8, 16) and report.width in (16, 64)


def test_half_a_webm_is_damaged_not_within_limits(hostile_media, run_meme):
    """A WebM cut in half keeps its header: `meme check` decodes it whole and reports the damage, exit 2, where it
    once passed it as meeting Telegram's limits."""
    whole = run_meme("check", hostile_media["whole.webm"], "--preset", "telegram")
    assert "breaks" in whole.stdout or "meets" in whole.stdout, whole.stderr
    half = run_meme("check", hostile_media["half.webm"], "--preset", "telegram")
    assert half.returncode == 2 and half.stdout == "", (half.stdout, half.stderr)
    assert half.stderr.startswith("error: half.webm is damaged") and len(half.stderr.splitlines()) == 1


@pytest.mark.parametrize("name", ["warn-4100.gif", "wide-frame.webp"])  # the rest: read in-process above
def test_cli_refuses_with_one_line_and_no_warning(name, hostile_media, run_meme, tmp_path):
    """Exit 2 and one `error:` line on stderr: no internal error, no Pillow DecompressionBombWarning (which Pillow
    prints, in two lines, for a canvas between the cap and twice it)."""
    for args in (
        ["check", hostile_media[name], "--preset", "telegram"],
        ["clip", hostile_media[name], "-o", tmp_path / "out.gif", "--frames", "4"],
    ):
        r = run_meme(*args)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1, r.stderr
        assert "Warning" not in r.stderr and "internal error" not in r.stderr


LIMIT = 1 << 30  # bytes of address space: the review's bombs took 1.3 to 1.9 GB


@pytest.mark.parametrize(
    "name",
    ["bomb-30000.gif", "bomb-9000x20.gif", "timeline.gif", "timeline.webp", "many-frames.png", "decode-2000x300.gif"],
)
def test_refused_within_a_small_memory_limit(name, hostile_media):
    """Refusing costs the file's bytes, not what it declares: the reader runs under a 1 GiB address-space limit."""
    code = (
        f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT}))\n"
        "from memestar.errors import MemeError\nfrom memestar.media.check import probe\n"
        "try:\n    probe(sys.argv[1])\nexcept MemeError as e:\n    print('refused:', e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(hostile_media[name])], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and r.stdout.startswith("refused:"), (r.stdout, r.stderr[-500:])
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != LIMIT  # the limit was the child's alone


def test_a_concealed_decoder_error_lets_a_training_clip_through_not_meme_check(hostile_media, monkeypatch):
    """A phone clip trimmed without re-encoding starts mid-GOP: H.264 complains while it decodes every frame. A clip
    to tune on goes through; a file about to be sent (`meme check`) is reported. A container error never passes."""
    import memestar.media.source as source

    real_run = subprocess.run

    def run(args, said, **kw):
        if "-progress" not in args:  # the header: as it is
            return real_run(args, **kw)
        return subprocess.CompletedProcess(args, 0, "frame=16\nprogress=end\n", said)

    for said, tuned in [
        ("[h264 @ 0x55d1c0] mmco: unref short failure\n", True),
        ("[in#0/matroska,webm @ 0x55d1c0] Element at 0x8dc2 exceeds its master\n", False),
    ]:
        monkeypatch.setattr(source.subprocess, "run", lambda args, said=said, **kw: run(args, said=said, **kw))
        with pytest.raises(MemeError, match="whole.webm is damaged: ffmpeg says"):
            probe(hostile_media["whole.webm"])
        if tuned:
            assert read_clip(hostile_media["whole.webm"], 4, 16).frames.shape == (4, 16, 16, 3)
        else:
            with pytest.raises(MemeError, match="Element at 0x8dc2"):
                read_clip(hostile_media["whole.webm"], 4, 16)
