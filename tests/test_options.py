"""Each option is declared once (`memestar/options.py`): the CLI's options and the server's body are derived from
the declarations, and the ranges they carry are the ones each stage's `check()` refuses beyond."""

import dataclasses

import pytest
import typer
from pydantic import ValidationError

from memestar.cli import app
from memestar.errors import MemeError
from memestar.export.command import ExportOptions
from memestar.media.look import Look
from memestar.options import declared, from_cli
from memestar.runtime.command import GenOptions
from memestar.runtime.settings import GenSettings
from memestar.serve.app import GenBody
from memestar.serve.options import ServeOptions
from memestar.tiny.evaluate import EvalOptions
from memestar.train.command import TrainOptions

COMMANDS = typer.main.get_command(app).commands
BY_COMMAND = {
    "gen": (GenOptions, GenSettings, Look),
    "train": (TrainOptions,),
    "export": (ExportOptions,),
    "serve": (ServeOptions,),
    "eval": (EvalOptions,),
}


@pytest.mark.parametrize("command", list(BY_COMMAND))
def test_the_cli_takes_every_declared_option_with_its_default(command):
    params = {p.name: p for p in COMMANDS[command].params}
    for cls in BY_COMMAND[command]:
        for d in declared(cls):
            if not d.spec.cli:
                continue
            p = params[d.name]
            assert (d.name if d.spec.argument else d.flag) in p.opts + p.secondary_opts, (command, d.name, p.opts)
            if d.default is not dataclasses.MISSING and not isinstance(d.default, tuple):
                assert p.default == d.default, (command, d.name)
            assert p.help.startswith(d.spec.help), (command, d.name)


def test_the_body_takes_the_declared_gen_options_and_nothing_else():
    body = {d.name for cls in (GenOptions, GenSettings, Look) for d in declared(cls) if d.spec.body}
    assert set(GenBody.model_fields) == body
    assert GenBody().steps == GenSettings.steps and GenBody().format == "gif"  # the body's own default


@pytest.mark.parametrize("d", [d for d in declared(GenSettings) if d.spec.high is not None], ids=lambda d: d.name)
def test_a_setting_beyond_its_declared_range_is_refused_by_the_body_and_by_check(d):
    """The body's range (pydantic) and the settings' check (checks.py) are the same range."""
    over = d.spec.high + (1 if d.type is int or d.type == int | None else 0.5)
    with pytest.raises(ValidationError):
        GenBody(prompt="a cat", **{d.name: over})
    with pytest.raises(MemeError):
        GenSettings(**{d.name: over}).check()
    GenSettings(**{d.name: d.spec.high}).check()  # the end itself is in


def test_a_word_the_declaration_does_not_list_is_refused_by_the_body():
    with pytest.raises(ValidationError):
        GenBody(prompt="a cat", sampler="euler")
    with pytest.raises(ValidationError):
        GenBody(prompt="a cat", loop="backwards")


def test_lists_come_from_one_word_and_a_bad_one_is_one_line():
    o = from_cli(
        EvalOptions,
        {
            "gen_steps": "4, 8,12",
            "guidances": "3,5",
            "losses": "mse;mse=1,debiased=1",
            "positions": "on,off",
            "motions": "bouncing",
        },
    )
    assert o.gen_steps == (4, 8, 12) and o.guidances == (3.0, 5.0) and o.positions == (True, False)
    assert o.losses == ("mse", "mse=1,debiased=1") and o.motions == ("bouncing",)
    with pytest.raises(MemeError, match=r"--gen-steps '4,x' is not a comma-separated list of whole numbers"):
        from_cli(EvalOptions, {"gen_steps": "4,x"})


def test_serve_refuses_beyond_the_declared_ranges(tmp_path):
    for d in declared(ServeOptions):
        if d.spec.high is None:
            continue
        with pytest.raises(MemeError, match=f"^{d.flag} is "):
            ServeOptions(memes=tmp_path, **{d.name: d.spec.high * 2 + 1}).check()
