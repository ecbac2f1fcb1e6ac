"""The manual cannot drift from the CLI: every `meme COMMAND --option` the README and docs/ show is a command and
an option of it, and every link between the pages lands on a file."""

import re
from pathlib import Path

import pytest
import typer

from memestar.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS = typer.main.get_command(app).commands


def options_of(name: str) -> set[str]:
    """The options of command `name` ("gen", or a group's command: "subject learn")."""
    command = COMMANDS[name.split()[0]]
    for sub in name.split()[1:]:
        command = command.commands[sub]
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def shown_commands(text: str) -> list[tuple[str, list[str]]]:
    """(command, its options) for each `meme ...` the text shows: in code spans, table cells and code blocks,
    up to the end of the span, line, pipe or shell comment."""
    spans = re.findall(r"`(meme [^`]*)`", text)
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        spans += [line.split("#")[0] for line in block.splitlines() if line.strip().startswith("meme ")]
        spans += [m for line in block.splitlines() for m in re.findall(r"\$\((meme [^)]*)\)", line)]
    shown = []
    for span in spans:
        words = span.split()
        if len(words) < 2 or not re.fullmatch(r"[a-z]+", words[1]):
            continue  # "meme star", a placeholder: not a call
        group = getattr(COMMANDS.get(words[1]), "commands", {})
        name, rest = (
            (f"{words[1]} {words[2]}", words[3:]) if len(words) > 2 and words[2] in group else (words[1], words[2:])
        )
        shown.append((name, re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", " ".join(rest))))
    return shown


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_and_option_shown_exists(page):
    shown = shown_commands(page.read_text())
    wrong = []
    for command, options in shown:
        if command.split()[0] not in COMMANDS:
            wrong.append(f"meme {command}: no such command")
            continue
        known = options_of(command) | {"--help"}
        wrong += [f"meme {command} {o}: no such option" for o in options if o not in known]
    assert not wrong, f"{page.name}: " + "; ".join(sorted(set(wrong)))


# options the pages show that belong to other programs
OTHER_PROGRAMS = {
    "--index-url": "pip",
    "--date": "benchmarks/gpu_check.py",
    "--min-snr": "memestar.tiny.train",
    "--vae": "memestar.tiny.train",
    "--stop-after": "memestar.tiny.emoji_train",
    "--resume": "memestar.tiny.emoji_train",
    "--work": "memestar.tiny.emoji_train",
    "--extend": "memestar.tiny.emoji_train",
    "--extend-lr": "memestar.tiny.emoji_train",
    "--atlas": "memestar.tiny.emoji_world",
    "--help": "every command",
}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_option_named_anywhere_exists(page):
    """Options in prose (`--follow auto|on|off`) name no command: each must be some command's."""
    text = page.read_text()
    spans = re.findall(r"`([^`]+)`", text) + re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    named = {o for span in spans for o in re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", span)}
    names = [f"{c} {sub}" if sub else c for c in COMMANDS for sub in getattr(COMMANDS[c], "commands", {None: 0})]
    every = set().union(*(options_of(c) for c in names)) | set(OTHER_PROGRAMS)
    assert named <= every, f"{page.name} names options no command has: {sorted(named - every)}"


def test_the_pages_show_every_command():
    shown = {c.split()[0] for page in PAGES for c, _ in shown_commands(page.read_text())}
    assert set(COMMANDS) <= shown, f"commands no page shows: {sorted(set(COMMANDS) - shown)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_between_pages_land(page):
    links = re.findall(r"\]\(([^)#\s]+)[^)]*\)", page.read_text())
    missing = [link for link in links if "://" not in link and not (page.parent / link).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_the_checker_refuses_what_does_not_exist():
    text = "Run `meme gen PROMPT --meme M --no-such-flag` or `meme fly --high`.\n```\nmeme bench --frames 8\n```"
    shown = shown_commands(text)
    assert ("gen", ["--meme", "--no-such-flag"]) in shown and ("fly", ["--high"]) in shown
    assert ("bench", ["--frames"]) in shown
    assert "--no-such-flag" not in options_of("gen") and "fly" not in COMMANDS and "--frames" in options_of("bench")


def test_the_manual_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
