"""Fuzzing the CLI's numeric and path options and `meme.json` (hypothesis, bounded in examples and time).

Whatever comes in: exit 0 with a valid file, or exit 2 with one `error:` line; never a traceback, never an
internal error. The suite runs a fixed, derandomized sample; `MEMESTAR_FUZZ=20 pytest tests/test_fuzz.py` runs
twenty times as many random examples.
"""

import copy
import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from memestar.errors import MemeError
from memestar.formats.meme_folder import MEME_JSON, read_meme
from memestar.media.clips import read_clip

SCALE = int(os.environ.get("MEMESTAR_FUZZ", "1"))
PROMPT = "a blue circle sliding"


def fuzz(examples: int):
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


WEIRD = st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "0x10", "", " ", "1_000", "3.5", "abc", "9" * 40])


def number(small: st.SearchStrategy, valid_up_to: int = 1000) -> st.SearchStrategy:
    """A command-line number: mostly `small` (near the valid range), else beyond `valid_up_to` or negative (so the
    fuzz never asks for hours of valid work), non-finite or not a number."""
    far = st.integers(valid_up_to + 1, 2**80) | st.integers(-(2**80), -1)
    floats = st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0 <= v <= valid_up_to)
    return st.one_of(small, small, small, far, floats, WEIRD).map(str)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Output paths of every kind: a new file, an existing file, a folder, a FIFO, a symlink, a missing folder,
    an unknown suffix."""
    root = tmp_path_factory.mktemp("outputs")
    (root / "existing.gif").write_bytes(b"old")
    (root / "folder.gif").mkdir()
    os.mkfifo(root / "fifo.gif")
    (root / "link.gif").symlink_to(root / "existing.gif")
    return root, ["new.gif", "new.webp", "new.mp4", "existing.gif"] * 3 + [
        "folder.gif",
        "fifo.gif",
        "link.gif",
        "missing/x.gif",
        "new.avi",
        "noext",
    ]


def draw_args(data, option_values: dict) -> tuple[list[str], list[str]]:
    """One to three of the options, each with a drawn value: (the options chosen, the command-line words)."""
    chosen = data.draw(st.lists(st.sampled_from(sorted(option_values)), min_size=1, max_size=3, unique=True))
    return chosen, [word for name in chosen for word in (name, data.draw(option_values[name]))]


def check_outcome(code: int, out: str, err: str, written=None):
    event(f"exit {code}")
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    elif written is not None:  # a valid slide_gif, decoded back (by its bytes: a path without a suffix gets a GIF)
        data = written.read_bytes()
        kind = "gif" if data[:6] == b"GIF89a" else "webp" if data[8:12] == b"WEBP" else "mp4"
        decoded = written.with_name(f"decoded.{kind}")
        decoded.write_bytes(data)
        assert read_clip(decoded, 1, 8).frames.shape == (1, 8, 8, 3)


@fuzz(30)
@given(data=st.data())
def test_fuzz_gen_options(data, meme_main, small_meme_dir, outputs):
    root, names = outputs
    option_values = {
        "--steps": number(st.integers(-3, 6), valid_up_to=500),
        "--guidance": number(st.floats(0, 60)),
        "--fps": number(st.floats(-1, 120)),
        "--seed": number(st.integers(-3, 2**33)),
        "--max-kb": number(st.floats(-1, 200)),
        "--sampler": st.sampled_from(["ddim", "dpm++", "euler", ""]),
        "--start": st.sampled_from(["inversion", "layout", "mix", "noise", "x"]),
    }
    chosen, args = draw_args(data, option_values)
    if "--steps" not in chosen:
        args += ["--steps", "2"]
    target = root / data.draw(st.sampled_from(names))
    code, out, err = meme_main("gen", PROMPT, "--meme", small_meme_dir, "-o", target, "--quiet", *args)
    check_outcome(code, out, err, target if code == 0 else None)


@fuzz(25)
@given(data=st.data())
def test_fuzz_clip_options(data, meme_main, slide_gif, outputs):
    root, names = outputs
    option_values = {
        "--frames": number(st.integers(-2, 10), valid_up_to=128),
        "--size": number(
            st.one_of(st.sampled_from([8, 16, 32, 48]), st.integers(-16, 80), st.just(1032)), valid_up_to=1024
        ),
        "--start": number(st.integers(-2, 10)),
        "--stride": number(st.integers(-2, 10)),
        "--fps": number(st.floats(-1, 120)),
    }
    chosen, args = draw_args(data, option_values)
    defaults = [] if "--frames" in chosen else ["--frames", "4"]
    defaults += [] if "--size" in chosen else ["--size", "32"]
    target = root / data.draw(st.sampled_from(names))
    code, out, err = meme_main("clip", slide_gif, "-o", target, *defaults, *args)
    check_outcome(code, out, err, target if code == 0 else None)


@fuzz(12)
@given(data=st.data())
def test_fuzz_train_options(data, meme_main, slide_gif, tmp_path_factory):
    option_values = {
        "--lr": number(st.floats(-1, 2)),
        "--seed": number(st.integers(-3, 2**33)),
        "--checkpoint-every": number(st.integers(-2, 3), valid_up_to=100_000),
        "--inversion-steps": number(st.integers(-2, 3)),
        "--frames": number(st.integers(-2, 6), valid_up_to=128),
        "--size": number(st.sampled_from([0, 8, 16, 60, 64]), valid_up_to=1024),
        "--group-norm": st.sampled_from(["frames", "per-frame", "x"]),
        "--precision": st.sampled_from(["auto", "fp32", "int8"]),
    }
    chosen, args = draw_args(data, option_values)
    defaults = [
        a
        for name, value in (("--frames", "4"), ("--size", "32"), ("--inversion-steps", "2"))
        if name not in chosen
        for a in (name, value)
    ]
    out = tmp_path_factory.mktemp("train") / "meme"
    code, stdout, err = meme_main(
        "train",
        slide_gif,
        "--text",
        PROMPT,
        "--base",
        "random-tiny",
        "--steps",
        "1",
        "--out",
        out,
        "--quiet",
        *defaults,
        *args,
    )
    check_outcome(code, stdout, err)
    if code == 0:
        read_meme(out)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def key_paths(value, prefix=()):
    """Every path into a JSON value, e.g. ("base", "fingerprint", "arch")."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from key_paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for i, inner in enumerate(value[:3]):
            yield from key_paths(inner, prefix + (i,))


def mutate(meta, path, new, delete: bool):
    if not path:
        return new
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return meta


@fuzz(150)
@given(data=st.data())
def test_fuzz_meme_json(data, meme_main, small_meme_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("json") / "meme"
    shutil.copytree(small_meme_dir, folder, ignore=shutil.ignore_patterns("export", "preview.gif"))
    meta = json.loads((folder / MEME_JSON).read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(key_paths(meta))
        path = data.draw(st.sampled_from(paths))
        meta = mutate(copy.deepcopy(meta), path, data.draw(JSON_VALUES), delete=bool(path) and data.draw(st.booleans()))
        if not isinstance(meta, (dict, list)):
            break
    (folder / MEME_JSON).write_text(json.dumps(meta))
    try:
        read_meme(folder)
    except MemeError as e:
        event("refused by read_meme")
        assert "\n" not in str(e) and str(folder) in str(e), str(e)
        return
    code, out, err = meme_main("gen", PROMPT, "--meme", folder, "-o", folder / "out.gif", "--steps", "1", "--quiet")
    check_outcome(code, out, err, folder / "out.gif" if code == 0 else None)


# issue 30: container bytes and declared sizes, for `meme check` and the server's upload endpoint
SEEDS = ("fine.gif", "fine.webp", "whole.webm", "wide-frame.png", "bomb-9000x20.gif")
SIZE_FIELDS = {".gif": [(6, "<H"), (8, "<H")], ".png": [(16, ">I"), (20, ">I")], ".webp": [(24, "<I")]}


@st.composite
def container_bytes(draw, hostile_media) -> tuple[str, bytes]:
    """A real file's bytes, bent: declared sizes rewritten (canvas, frame header), bytes flipped or spliced,
    the file cut short; (its name, the bytes)."""
    import struct

    name = draw(st.sampled_from(SEEDS))
    data = bytearray(hostile_media[name].read_bytes())
    suffix = "." + name.rsplit(".", 1)[1]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["size", "flip", "splice", "cut"]))
        if kind == "size" and suffix in SIZE_FIELDS:
            at, fmt = draw(st.sampled_from(SIZE_FIELDS[suffix]))
            big = 0xFFFF if fmt.endswith("H") else 0xFFFFFFFF
            data[at : at + struct.calcsize(fmt)] = struct.pack(fmt, draw(st.integers(0, 64) | st.integers(0, big)))
        elif kind == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
        elif kind == "splice":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "cut":
            data = data[: draw(st.integers(0, len(data)))]
    return name, bytes(data)


@fuzz(60)
@given(data=st.data())
def test_fuzz_meme_check_over_container_bytes(data, hostile_media, tmp_path_factory):
    """`meme check` reads any bytes into a report or refuses them in one line; never another exception."""
    from memestar.media.check import probe

    name, content = data.draw(container_bytes(hostile_media))
    path = tmp_path_factory.mktemp("check") / name
    path.write_bytes(content)
    try:
        report = probe(path)
    except MemeError as e:
        event("refused")
        assert "\n" not in str(e) and "internal error" not in str(e), str(e)
        return
    event("read")
    assert report.width * report.height <= 4096 * 4096 and report.frames >= 1


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory):
    from live_server import running

    from memestar.serve.options import ServeOptions

    with running(ServeOptions(memes=tmp_path_factory.mktemp("uploads"), train_base="no-such-base")) as client:
        yield client


@fuzz(30)
@given(data=st.data())
def test_fuzz_upload_endpoint(data, hostile_media, upload_server):
    """POST /memes with bent container bytes: 202 (a job, which fails on its missing base) or a 4xx with a
    one-line JSON error, never a 500, on a connection that stays open."""
    name, content = data.draw(container_bytes(hostile_media))
    form = {
        "prompt": "a red square sliding",
        "id": f"fuzz-{data.draw(st.integers(0, 10**9))}",
        "steps": "1",
        "frames": str(data.draw(st.integers(1, 8))),
        "size": "16",
    }
    r = upload_server.post("/memes", data=form, files={"clip": (name, content, "application/octet-stream")})
    event(f"{r.status_code}")
    assert r.status_code in (202, 409, 413, 415, 422), (r.status_code, r.text)
    if r.status_code != 202:
        body = r.json()
        assert set(body) == {"error"} and "\n" not in body["error"] and "internal error" not in body["error"], body
        assert "/.jobs/" not in body["error"]
    assert upload_server.get("/healthz").status_code == 200
