"""Learned subjects at generation time (`meme gen --subject NAME`): found by name in a subjects folder, checked to
belong to the meme's base, and named in the meme's prompt by their token ("{subject} popping" -> "a <my-cat>
popping", the article kept as the meme's own subject had one). `meme subject learn` makes them
(`train/subject.py`); `formats/subject_file.py` is their folder."""

from pathlib import Path

import torch

from ..checks import SUBJECT_NAME_PATTERN
from ..errors import MemeError
from ..formats.meme_folder import MemeManifest
from ..formats.subject_file import SUBJECT_JSON, SubjectManifest, read_subject, same_base
from ..prompts import ARTICLES, subject_of, subject_prompt


def find_subject(subjects: Path | None, name: str) -> Path | None:
    """The folder of the learned subject `name` in `subjects`, or None (then `name` is plain words)."""
    if subjects is None or not SUBJECT_NAME_PATTERN.fullmatch(name):
        return None
    folder = Path(subjects) / name
    return folder if (folder / SUBJECT_JSON).is_file() else None


def subject_for(meme: MemeManifest, folder: Path, meme_name: str) -> tuple[SubjectManifest, torch.Tensor]:
    """The learned subject at `folder` (manifest, embedding), refused in one line when it belongs to another base."""
    manifest, embedding = read_subject(folder)
    check_subject_base(meme, manifest, meme_name)
    return manifest, embedding


def check_subject_base(meme: MemeManifest, manifest: SubjectManifest, meme_name: str) -> None:
    """A one-line error when the learned subject `manifest` belongs to another base than meme `meme_name`'s."""
    if not same_base(manifest.base, meme.base):
        raise MemeError(
            f"subject {manifest.name} was learned on base {manifest.base.reference} ({manifest.base.id}), meme "
            f"{meme_name} is on {meme.base.reference} ({meme.base.id}): learn it on the meme's base "
            f"(`meme subject learn PHOTOS --name {manifest.name} --base {meme.base.reference}`)"
        )


def learned_words(meme: MemeManifest, subject: SubjectManifest) -> str:
    """What takes the place of the meme's subject: the learned subject's token, with an article if the meme's own
    subject has one ("a cat face" -> "a <my-cat>")."""
    own = (subject_of(meme.prompt, meme.template) or "").split()
    return f"a {subject.token}" if own and own[0].lower() in ARTICLES else subject.token


def learned_prompt(meme: MemeManifest, subject: SubjectManifest) -> str:
    """The meme's prompt with the learned subject in its place: "{subject} popping" -> "a <my-cat> popping"."""
    return subject_prompt(meme.prompt, meme.template, learned_words(meme, subject))
