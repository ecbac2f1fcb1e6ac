"""Subjects and styles: a meme keeps its action for a new subject, and style presets fill in the prompt, negative,
guidance, chat-app preset and look wherever the user left them alone."""

import json
import os
from pathlib import Path

import pytest

from memestar.errors import MemeError
from memestar.formats.meme_folder import read_meme
from memestar.media.look import Look
from memestar.prompts import split_subject, subject_prompt
from memestar.runtime.command import GenOptions, with_style
from memestar.runtime.settings import GenSettings
from memestar.runtime.styles import get_style, load_styles
from memestar.train.command import train_meme


@pytest.mark.parametrize(
    "text, prompt, template",
    [
        ("running {apple-cat}", "running apple-cat", "running {subject}"),
        ("running apple-cat", "running apple-cat", "running {subject}"),
        ("a red circle bouncing", "a red circle bouncing", "{subject} bouncing"),
        ("a cat running on the beach", "a cat running on the beach", "{subject} running on the beach"),
        ("{a dog} dancing in the rain", "a dog dancing in the rain", "{subject} dancing in the rain"),
    ],
)
def test_the_subject_is_marked_or_guessed(text, prompt, template):
    assert split_subject(text) == (prompt, template)
    assert subject_prompt(prompt, None, "blueberry-elephant") == template.replace("{subject}", "blueberry-elephant")


@pytest.mark.parametrize(
    "text, words",
    [("{a} {b}", "one pair of braces"), ("running {apple-cat", "one pair"), ("running {  }", "hold no subject")],
)
def test_bad_subject_marks_are_refused(text, words):
    with pytest.raises(MemeError, match=words):
        split_subject(text)


def test_a_meme_trained_with_a_marked_subject_takes_a_new_one(slide_gif, train_options, tmp_path, meme_main):
    out = tmp_path / "meme"
    train_meme(train_options(slide_gif, out, prompt="sliding {a red square}", steps=1, inversion_steps=2))
    manifest = read_meme(out)
    assert (manifest.prompt, manifest.template) == ("sliding a red square", "sliding {subject}")
    code, stdout, stderr = meme_main(
        "gen", "--meme", out, "--subject", "a blue circle", "--steps", "2", "--json", "-o", tmp_path / "new.gif"
    )
    assert code == 0, stderr
    assert json.loads(stdout)["prompt"] == "sliding a blue circle"
    code, _, stderr = meme_main("gen", "x", "--meme", out, "--subject", "y")
    assert code == 2 and "not more than one" in stderr


def test_styles_fill_in_only_what_the_user_left_alone(tmp_path):
    sticker = get_style("sticker")
    assert "{prompt}" in sticker.prompt and sticker.preset == "telegram" and sticker.sticker
    plain = GenOptions(meme=tmp_path)
    styled = with_style(plain, get_style("emoji"))
    assert (styled.preset, styled.settings.guidance, styled.look.sticker) == ("slack", 9.0, True)
    assert styled.settings.negative.startswith("text")
    mine = GenOptions(
        meme=tmp_path, format="webp", settings=GenSettings(guidance=5.0, negative="cats"), look=Look(loop="forward")
    )
    kept = with_style(mine, get_style("emoji"))
    assert (kept.preset, kept.settings.guidance, kept.settings.negative) == (None, 5.0, "cats")
    assert with_style(plain, get_style("pixel")).look.pixel == 16
    assert get_style("pixel").prompt_for("running kiwi") == (
        "running kiwi, pixel art, 16-bit video game sprite, limited palette"
    )


def test_a_users_styles_file_adds_and_overrides_and_is_checked(tmp_path):
    mine = tmp_path / "styles.toml"
    mine.write_text('[neon]\nprompt = "{prompt}, neon glow"\nloop = "pingpong"\n\n[sticker]\nprompt = "{subject}"\n')
    styles = load_styles(mine)
    assert styles["neon"].loop == "pingpong" and styles["sticker"].prompt == "{subject}" and "pixel" in styles
    for text, words in [
        ('[x]\nprompt = "{prompt}"\ncolour = "red"\n', "unknown key 'colour'"),
        ('[x]\nprompt = "no placeholder"\n', "must hold {prompt} or {subject}"),
        ('[x]\npreset = "myspace"\n', "'myspace' is not one of"),
        ('[x]\nguidance = "high"\n', "guidance: 'high' is not a"),
        ("[x]\nsticker = 1\n", "sticker: 1 is not a"),
        ("[x\n", "is not TOML"),
    ]:
        mine.write_text(text)
        with pytest.raises(MemeError, match=words):
            load_styles(mine)
    with pytest.raises(MemeError, match="--style 'vapor' is not a style: use one of plain"):
        get_style("vapor")


@pytest.mark.parametrize(
    "template",
    [
        "{prompt:{subject}}",
        "{subject:{prompt}} {prompt}",
        "{prompt:>99999999999}",
        "{prompt.__init__.__globals__}",
        "{prompt[0]}",
        "{prompt!r}",
        "{0}",
        "{}",
        "{prompt",
        "x }",
    ],
)
def test_templates_take_only_prompt_and_subject(template, tmp_path):
    """Issue 30, 9: a format spec, conversion, attribute or index in a template could read the process's memory
    or build a string of gigabytes; only {prompt} and {subject} are filled, and a brace is {{ or }}."""
    mine = tmp_path / "styles.toml"
    mine.write_text(f'[x]\nprompt = "{template}"\n')
    with pytest.raises(MemeError, match="is not allowed|do not pair|single '}'") as e:
        load_styles(mine)
    assert "\n" not in str(e.value)
    mine.write_text('[x]\nprompt = "{{literal}} {subject}, not {prompt}"\n')
    assert get_style("x", mine).prompt_for("a {prompt} cat", "{subject}") == "{literal} {subject}, not a {prompt} cat"


def test_styles_file_must_be_a_small_regular_file(tmp_path):
    """A FIFO would hang, /dev/zero would fill memory, a TOML nested 50,000 deep would overflow the parser: each is
    one line, at once."""
    os.mkfifo(tmp_path / "fifo.toml")
    (tmp_path / "deep.toml").write_text("a = " + "[" * 50_000)
    (tmp_path / "big.toml").write_text("# padding\n" * 30_000)
    for path, words in [
        (tmp_path / "fifo.toml", "not a regular file"),
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path, "not a regular file"),
        (tmp_path / "deep.toml", "nests too deep"),
        (tmp_path / "big.toml", "over the cap of 262,144"),
        (tmp_path / "none.toml", "cannot read"),
    ]:
        with pytest.raises(MemeError, match=words):
            load_styles(path)


def test_cli_style_writes_its_preset(small_meme_dir, tmp_path, meme_main, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = meme_main(
        "gen", "a blue circle sliding", "--meme", small_meme_dir, "--style", "sticker", "--steps", "2", "--json"
    )
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["output"] == "a-blue-circle-sliding.webm" and "die-cut sticker" in result["prompt"]
    code, stdout, _ = meme_main("check", result["output"], "--preset", "telegram")
    assert code == 0
