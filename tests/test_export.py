import dataclasses
import errno
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import memestar.export.command as export_stage
import memestar.export.onnx as export_onnx
from memestar.errors import ExportFailed, MemeError
from memestar.export.command import ExportOptions, export_meme
from memestar.export.trt import engine_profiles
from memestar.formats.export_folder import (
    EXPORT_JSON,
    EngineIdentity,
    EnginesInputs,
    EnginesManifest,
    ExportManifest,
    list_exports,
    stale_reason,
)
from memestar.formats.meme_folder import read_meme
from memestar.graph_runtimes import INSTALL_HINT, ort_session
from memestar.media.writers import write_gif
from memestar.models.graphs import GRAPH_SPECS, Shapes
from memestar.models.layout import DEFAULT_FRAME_ATTENTION, FRAME_ATTENTION_MODES
from memestar.runtime import GenSettings, Meme
from memestar.runtime.backends.choice import choose_backend
from memestar.sampling.batch import BATCH_BUCKETS, MAX_BATCH
from memestar.train.command import train_meme
from memestar.train.options import SubjectOptions
from memestar.train.subject import learn_subject

PROMPT = "a blue circle sliding"
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def meme_dir(tmp_path_factory, make_small_meme):
    return make_small_meme(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def exported(meme_dir):
    return export_meme(ExportOptions(meme=meme_dir, precision="fp32", device="cpu", quiet=True))


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_export_checks_itself_and_a_repeat_is_a_cache_hit(meme_dir, exported, monkeypatch):
    assert not exported["cached"]
    folder = meme_dir / "export" / exported["key"]
    manifest = ExportManifest.from_json(folder / EXPORT_JSON)
    for name in ("text_encoder", "unet", "vae_decoder"):
        assert (folder / f"{name}.onnx").is_file()
        assert manifest.graphs[name].check.relative_error < 1e-3
    assert manifest.built_from.opset == 18 and manifest.shapes.frames == 8
    monkeypatch.setattr(export_stage, "load_base", None)  # a cache hit loads no model
    again = export_meme(ExportOptions(meme=meme_dir, precision="fp32", device="cpu", quiet=True))
    assert again["cached"] and again["key"] == exported["key"]


def test_a_meme_with_the_other_frame_attention_exports_and_checks_itself(tmp_path, make_small_meme):
    meme = make_small_meme(
        tmp_path, frame_attention=next(m for m in FRAME_ATTENTION_MODES if m != DEFAULT_FRAME_ATTENTION)
    )
    result = export_meme(ExportOptions(meme=meme, precision="fp32", device="cpu", quiet=True))
    manifest = ExportManifest.from_json(meme / "export" / result["key"] / EXPORT_JSON)
    assert manifest.graphs["unet"].check.relative_error < 1e-3  # against the torch UNet with the same attention


def test_ort_generation_matches_torch_from_the_same_latents(meme_dir, exported):
    ours = Meme.load(meme_dir, backend="ort", device="cpu")
    reference = Meme.load(meme_dir, backend="torch", device="cpu")
    assert ours.backend.name == "ort"
    texts = [torch.cat([m.text_embedding(""), m.text_embedding(PROMPT)]) for m in (ours, reference)]
    assert relative(*texts) < 1e-3
    track = reference.manifest.subject_track.tensor()[None]
    for guidance, text_rows, follow in (
        (5.0, slice(None), None),
        (1.0, slice(1, None), None),
        (5.0, slice(None), track),
    ):  # with and without guidance, and following
        a, b = (
            m.backend.sample("ddim", 4, reference.inversion.float(), t[text_rows], guidance, follow)
            for m, t in zip((ours, reference), texts)
        )
        assert relative(a, b) < 1e-3, (guidance, follow is not None)
    a, b = (
        m.backend.sample("ddim", 4, reference.inversion.float(), t, 5.0, track, guidance_until=0.5)
        for m, t in zip((ours, reference), texts)
    )  # the unguided steps: guidance 1 in the graph
    assert relative(a, b) < 1e-3
    # the exported UNet is whole: a clip there is the torch backend's without deep-feature reuse, and says so
    g_ours = ours.generate(PROMPT, steps=4, guidance=5.0)
    g_ref = reference.generate(PROMPT, steps=4, guidance=5.0, cache_interval=1)
    assert g_ours.settings["backend"] == "ort" and g_ours.settings["cache_interval"] == 1
    assert np.abs(g_ours.frames.astype(int) - g_ref.frames.astype(int)).max() <= 2


def test_an_animated_still_through_ort_matches_torch_and_an_export_before_the_encoder_says_re_export(
    meme_dir, exported, tmp_path
):
    ours = Meme.load(meme_dir, backend="ort", device="cpu")
    reference = Meme.load(meme_dir, backend="torch", device="cpu")
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 8, 64, 64, 3), dtype=np.uint8))
    assert relative(ours.backend.encode_pixels(frames), reference.backend.encode_pixels(frames)) < 1e-3
    still = np.zeros((24, 24, 4), np.uint8)
    still[4:20, 4:20] = (250, 200, 20, 255)  # a yellow square, cut out
    a, b = (m.generate(image=still, steps=4, strength=0.5, cache_interval=1) for m in (ours, reference))
    assert a.settings["strength"] == 0.5 and np.abs(a.frames.astype(int) - b.frames.astype(int)).max() <= 2

    older = tmp_path / "meme"
    shutil.copytree(meme_dir, older)
    for folder, manifest in list_exports(older, read_meme(older).adapter_sha256):
        del manifest.graphs["vae_encoder"]
        manifest.to_json(folder / EXPORT_JSON)
        (folder / "vae_encoder.onnx").unlink()
    meme = Meme.load(older, backend="ort", device="cpu")
    assert meme.generate(PROMPT, steps=2).frames.shape == (8, 64, 64, 3)  # text clips as before
    with pytest.raises(MemeError, match=r"no VAE encoder.*meme export MEME --force"):
        meme.generate(image=still, steps=2)


def test_a_learned_subject_runs_on_the_export_as_on_torch_and_an_older_export_says_re_export(
    meme_dir, exported, tmp_path
):
    photo = tmp_path / "ball.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(photo)
    subject = tmp_path / "my-ball"
    base = read_meme(meme_dir).base.reference
    learn_subject(SubjectOptions(photos=photo, name="my-ball", base=base, out=subject, steps=3, quiet=True))
    prompt = "a <my-ball> sliding"
    as_words = Meme.load(meme_dir, backend="torch", device="cpu").text_embedding(prompt)  # before it is learned

    ours = Meme.load(meme_dir, backend="ort", device="cpu")
    reference = Meme.load(meme_dir, backend="torch", device="cpu")
    assert ours.prompt_with_learned(subject) == reference.prompt_with_learned(subject) == prompt
    learned = [m.text_embedding(prompt) for m in (ours, reference)]
    assert relative(*learned) < 1e-3
    assert relative(learned[0], as_words) > 1e-2  # the token's row, not its characters as words
    twice = ours.text_embedding("a <my-ball> and a <my-ball> sliding")
    assert relative(twice, reference.text_embedding("a <my-ball> and a <my-ball> sliding")) < 1e-3
    assert ours.generate(prompt, steps=2).frames.shape == (8, 64, 64, 3)

    older = tmp_path / "meme"
    shutil.copytree(meme_dir, older)
    for folder, manifest in list_exports(older, read_meme(older).adapter_sha256):
        manifest.graphs["text_encoder"].inputs = manifest.graphs["text_encoder"].inputs[:1]  # the ids alone
        manifest.to_json(folder / EXPORT_JSON)
    meme = Meme.load(older, backend="ort", device="cpu")
    with pytest.raises(MemeError, match=r"made before learned subjects.*meme export MEME --force"):
        meme.prompt_with_learned(subject)


def test_exported_graphs_take_a_batch_and_each_clip_comes_out_as_alone(meme_dir, exported, monkeypatch):
    ours = Meme.load(meme_dir, backend="ort", device="cpu")
    backend, manifest = ours.backend, ours.backend.manifest
    assert manifest.built_from.max_batch == MAX_BATCH
    assert backend.max_batch == 1  # on a CPU the UNet's session is pinned to one clip (faster there)
    backend.sessions["unet"] = ort_session(backend.folder / "unet.onnx")  # its dynamic axis, as on a GPU
    backend.pinned["unet"] = None
    assert backend.max_batch == MAX_BATCH
    assert manifest.graphs["unet"].inputs[2].shape[:2] == ["batch", 2]  # text: (unconditional, conditional) per clip
    assert manifest.graphs["unet"].inputs[1].shape == [1]  # one timestep for the batch
    reference = Meme.load(meme_dir, backend="torch", device="cpu")
    prompts = [PROMPT, "a green star sliding", "a red square sliding"]
    x = torch.cat([reference.start_latents(GenSettings(seed=s, variation=0.4)) for s in range(3)])  # n c f h w
    text = torch.cat(
        [reference.text_embedding("").expand(3, -1, -1), torch.cat([reference.text_embedding(p) for p in prompts])]
    )
    guidance = [3.0, 5.0, 8.0]
    batched = backend.sample("ddim", 3, x, text, guidance)
    for i in range(3):
        alone = backend.sample("ddim", 3, x[i : i + 1], text[[i, 3 + i]], guidance[i])
        assert relative(batched[i : i + 1], alone) < 1e-5, i
        assert (
            relative(
                batched[i : i + 1], reference.backend.sample("ddim", 3, x[i : i + 1], text[[i, 3 + i]], guidance[i])
            )
            < 1e-3
        ), i
    assert not torch.allclose(batched[0], batched[1])
    unguided = backend.sample("ddim", 3, x, text[3:], 1.0)
    assert relative(unguided[1:2], backend.sample("ddim", 3, x[1:2], text[4:5], 1.0)) < 1e-5
    monkeypatch.setattr(type(backend), "max_batch", 2)  # more clips than one call takes: two calls
    assert relative(backend.sample("ddim", 3, x, text, guidance), batched) < 1e-5


def test_an_exporter_that_fixes_the_batch_size_is_refused(tmp_path):
    class OneRowAtATime(torch.nn.Module):  # a Python loop over the batch: the exporter can only unroll it
        def forward(self, latents):
            return torch.stack([row * 2 for row in latents])

    with pytest.raises(ExportFailed, match="fixed axis 0 of .*input latents to 2"):
        export_onnx.export_graph(
            OneRowAtATime().eval(),
            {"latents": torch.randn(2, 3)},
            ["out"],
            tmp_path / "loop.onnx",
            18,
            ({0: torch.export.Dim("batch", min=1, max=8)},),
        )


def test_tensorrt_profiles_are_one_static_shape_per_batch_bucket():
    shapes = Shapes(
        frames=8, latent_channels=4, latent_side=8, text_length=16, text_width=32, vocab_size=99, pixel_side=64
    )
    unet = engine_profiles(GRAPH_SPECS["unet"], shapes, ["latents", "timestep", "text", "guidance"])
    assert [p["latents"][0] for p in unet] == list(BATCH_BUCKETS)
    assert unet[-1] == {"latents": (8, 4, 8, 8, 8), "text": (8, 2, 16, 32), "guidance": (8,)}  # no timestep: static
    assert engine_profiles(GRAPH_SPECS["vae_decoder"], shapes, ["latents"]) == [{"latents": (1, 4, 8, 8, 8)}]
    text = GRAPH_SPECS["text_encoder"]
    assert engine_profiles(text, shapes, ["input_ids", "learned"]) == [{"input_ids": (1, 16), "learned": (1, 4, 32)}]
    assert engine_profiles(text, shapes, ["input_ids"]) == [{"input_ids": (1, 16)}]  # an export made before learned


def test_fp16_export_is_within_its_tolerance_and_is_chosen_by_precision(meme_dir, exported):
    summary = export_meme(ExportOptions(meme=meme_dir, precision="fp16", device="cpu", quiet=True))
    assert summary["key"] != exported["key"]
    assert all(g["relative_error"] < 1e-2 for g in summary["graphs"].values())
    half = Meme.load(meme_dir, backend="ort", precision="fp16", device="cpu")
    assert half.backend.manifest.built_from.precision == "fp16"
    reference = Meme.load(meme_dir, backend="torch", device="cpu")
    text = torch.cat([reference.text_embedding(""), reference.text_embedding(PROMPT)])
    a = half.backend.sample("ddim", 4, reference.inversion.float(), text, 5.0)
    assert relative(a, reference.backend.sample("ddim", 4, reference.inversion.float(), text, 5.0)) < 1e-2
    on_cpu = Meme.load(meme_dir, backend="ort", device="cpu")  # auto precision: the CPU's own, fp32
    assert on_cpu.backend.manifest.built_from.precision == "fp32"


def _snapshot(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_a_failed_self_check_keeps_the_previous_export(meme_dir, exported, monkeypatch):
    folder = meme_dir / "export" / exported["key"]
    before = _snapshot(folder)
    monkeypatch.setitem(export_onnx.TOLERANCE, "fp32", 1e-12)
    with pytest.raises(ExportFailed, match="failed its self-check"):
        export_meme(ExportOptions(meme=meme_dir, precision="fp32", force=True, device="cpu", quiet=True))
    assert _snapshot(folder) == before
    assert not [p for p in (meme_dir / "export").iterdir() if p.name.startswith(".")]


def test_a_full_disk_says_so_and_keeps_the_previous_export(meme_dir, exported, monkeypatch):
    folder = meme_dir / "export" / exported["key"]
    before = _snapshot(folder)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_stage, "export_graph", disk_full)
    with pytest.raises(MemeError, match="disk .* is full"):
        export_meme(ExportOptions(meme=meme_dir, precision="fp32", force=True, device="cpu", quiet=True))
    assert _snapshot(folder) == before


def test_force_rebuilds_in_place(meme_dir, exported, tmp_path):
    copy = tmp_path / "meme"
    shutil.copytree(meme_dir, copy)
    adapter = read_meme(copy).adapter_sha256
    exports_before = len(list_exports(copy, adapter))
    dead_run = copy / "export" / ".building-0123-999999999"  # a run killed half way (no such process)
    dead_run.mkdir()
    summary = export_meme(ExportOptions(meme=copy, precision="fp32", force=True, device="cpu", quiet=True))
    assert not summary["cached"] and summary["key"] == exported["key"]
    assert [p.name for p in (copy / "export").iterdir() if p.name.startswith(".")] == []
    assert len(list_exports(copy, adapter)) == exports_before  # replaced, not added


def test_graphs_over_the_protobuf_limit_keep_their_weights_in_external_data(meme_dir, tmp_path, monkeypatch):
    copy = _copy_without_exports(meme_dir, tmp_path)
    monkeypatch.setattr(export_onnx, "PROTOBUF_LIMIT", 4096)  # every graph counts as large
    summary = export_meme(ExportOptions(meme=copy, precision="fp32", device="cpu", quiet=True))
    folder = copy / "export" / summary["key"]
    manifest = ExportManifest.from_json(folder / EXPORT_JSON)
    for name, graph in manifest.graphs.items():
        data, graph_file = folder / f"{name}.onnx.data", folder / f"{name}.onnx"
        assert graph.external_data and data.stat().st_size > 2 * graph_file.stat().st_size, name
        assert data.stat().st_mode & 0o044 == graph_file.stat().st_mode & 0o044, name  # not private
    assert Meme.load(copy, backend="ort", device="cpu").generate(PROMPT, steps=2).frames.shape == (8, 64, 64, 3)


def test_auto_picks_ort_on_a_cpu_only_when_the_export_measured_it_faster(meme_dir, exported, tmp_path):
    copy = tmp_path / "meme"
    shutil.copytree(meme_dir, copy)
    meta = read_meme(copy)
    for path in (copy / "export").glob(f"*/{EXPORT_JSON}"):
        manifest = ExportManifest.from_json(path)
        for g in manifest.graphs.values():
            g.check.ort_s, g.check.torch_s = 2.0, 1.0
        manifest.to_json(path)
    assert choose_backend(copy, meta, torch.device("cpu")) == ("torch", None)
    for g in manifest.graphs.values():
        g.check.ort_s = 0.5
    manifest.to_json(path)
    for other in (copy / "export").glob(f"*/{EXPORT_JSON}"):
        if other != path:
            shutil.rmtree(other.parent)
    assert choose_backend(copy, meta, torch.device("cpu")) == ("ort", path.parent)
    assert choose_backend(copy, meta, torch.device("cpu"), "bf16") == ("torch", None)  # no export holds bf16


def test_engines_for_another_gpu_or_tensorrt_say_why_they_cannot_run():
    a100 = EngineIdentity(gpu="NVIDIA A100-SXM4-80GB", compute_capability="8.0", tensorrt="10.3.0")
    built = EnginesManifest(
        key="k",
        built_from=EnginesInputs(export="e", **dataclasses.asdict(a100)),
        how={},
        seconds={},
        build_seconds={},
        created="2026-11-25T00:00:00",
    )
    here = EngineIdentity(gpu="NVIDIA H100 80GB HBM3", compute_capability="9.0", tensorrt="10.3.0")
    assert "gpu NVIDIA A100-SXM4-80GB" in stale_reason(built, here)
    newer = dataclasses.replace(a100, tensorrt="10.9.0")
    assert "tensorrt 10.3.0, this machine has 10.9.0" in stale_reason(built, newer)
    assert stale_reason(built, a100) is None


BAD = {
    "not a meme": (lambda m, t: ["export", t], "is not a meme folder"),
    "opset too low": (lambda m, t: ["export", m, "--opset", "17"], "--opset 17 cannot be written"),
    "opset too high": (lambda m, t: ["export", m, "--opset", "99"], "--opset 99 cannot be written"),
    "bad precision": (lambda m, t: ["export", m, "--precision", "int4"], "--precision must be"),
    "export is a file": (lambda m, t: ["export", _export_is_a_file(m, t)], "is not a folder"),
    "gen ort, no export": (
        lambda m, t: ["gen", "x", "--meme", _copy_without_exports(m, t), "--backend", "ort"],
        "run `meme export",
    ),
}


def _copy_without_exports(meme_dir, tmp_path):
    copy = tmp_path / "bare"
    shutil.copytree(meme_dir, copy, ignore=shutil.ignore_patterns("export"))
    return copy


def _export_is_a_file(meme_dir, tmp_path):
    copy = _copy_without_exports(meme_dir, tmp_path)
    (copy / "export").write_text("not a folder")
    return copy


@pytest.mark.parametrize("case", list(BAD))
def test_cli_bad_input_exits_2_with_one_line(case, meme_dir, exported, tmp_path, run_meme):
    make, message = BAD[case]
    r = run_meme(*make(meme_dir, tmp_path))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: a read-only folder cannot be shown")
def test_unwritable_meme_folder_is_refused(meme_dir, tmp_path, run_meme):
    copy = _copy_without_exports(meme_dir, tmp_path)
    copy.chmod(0o555)
    try:
        r = run_meme("export", copy)
    finally:
        copy.chmod(0o755)
    assert r.returncode == 2 and "is not writable" in r.stderr, r.stderr


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
@pytest.mark.parametrize("args", [["export", "{m}", "--trt"], ["gen", "x", "--meme", "{m}", "--backend", "trt"]])
def test_trt_without_tensorrt_says_what_to_install(args, meme_dir, exported, run_meme):
    r = run_meme(*[a.format(m=meme_dir) for a in args])
    assert r.returncode == 2 and INSTALL_HINT in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_gen_through_ort_writes_the_gif(meme_dir, exported, tmp_path, run_meme):
    out = tmp_path / "ort.gif"
    r = run_meme(
        "gen", PROMPT, "--meme", meme_dir, "--backend", "ort", "--device", "cpu", "--steps", "3", "--json", "-o", out
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["backend"] == "ort" and out.read_bytes().startswith(b"GIF89a") and info["frames"] == 8


def test_cli_export_json(meme_dir, exported, run_meme):
    r = run_meme("export", meme_dir, "--precision", "fp32", "--device", "cpu", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (
        info["cached"]
        and info["key"] == exported["key"]
        and set(info["graphs"]) == {"text_encoder", "unet", "vae_encoder", "vae_decoder"}
    )


@pytest.mark.skipif(
    not (HAS_TENSORRT and torch.cuda.is_available()),
    reason=INSTALL_HINT if not HAS_TENSORRT else "TensorRT engines need an NVIDIA GPU",
)
def test_tensorrt_engines_match_torch_and_a_second_meme_refits(meme_dir, tmp_path, sliding_square, train_options):
    summary = export_meme(ExportOptions(meme=meme_dir, precision="fp16", trt=True, device="cuda", quiet=True))
    engine, reference = (Meme.load(meme_dir, backend=b, device="cuda", precision="fp16") for b in ("trt", "torch"))
    text = torch.cat([reference.text_embedding(""), reference.text_embedding(PROMPT)])
    a, b = (m.backend.sample("ddim", 4, reference.inversion.float(), text.float(), 5.0) for m in (engine, reference))
    assert relative(a, b) < 1e-2
    unet = engine.backend.engines["unet"]
    assert sorted(unet.profiles) == [1, 2, 4, 8]  # one static profile per batch bucket
    x = torch.cat([reference.start_latents(GenSettings(seed=s, variation=0.4)) for s in range(3)])
    texts = torch.cat([text[:1].expand(3, -1, -1), text[1:].expand(3, -1, -1)]).float()
    batched = engine.backend.sample("ddim", 4, x, texts, [3.0, 5.0, 8.0])  # the profile of 4, padded
    for i, g in enumerate([3.0, 5.0, 8.0]):
        assert relative(batched[i : i + 1], engine.backend.sample("ddim", 4, x[i : i + 1], texts[[i, 3 + i]], g)) < 1e-2
    assert unet.profiles[4].graph and unet.profiles[1].graph and unet.profiles[8].graph is None
    photo, subject = tmp_path / "ball.png", tmp_path / "my-ball"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(photo)
    learn_subject(SubjectOptions(photos=photo, name="my-ball", base="random-tiny", out=subject, steps=3, quiet=True))
    prompt = engine.prompt_with_learned(subject)
    assert prompt == reference.prompt_with_learned(subject)  # a subject learned after the engines were built
    assert relative(engine.text_embedding(prompt), reference.text_embedding(prompt).float()) < 1e-2
    other = tmp_path / "other"
    clip = write_gif(sliding_square()[::-1].copy(), tmp_path / "back.gif", fps=8)
    train_meme(train_options(clip, other, steps=3, inversion_steps=4, device="cuda"))
    second = export_meme(ExportOptions(meme=other, precision="fp16", trt=True, device="cuda", quiet=True))
    assert second["engines"]["how"]["unet"] == "refit", (summary["engines"], second["engines"])
