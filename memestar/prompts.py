"""A meme's prompt as an action and a subject, so a new subject keeps the action: "running {apple-cat}" is
"running apple-cat" with the template "running {subject}", and `meme gen --subject blueberry-elephant` asks for
"running blueberry-elephant".

Braces mark the subject. Without them the subject is guessed: the last run of words that holds no "-ing" word
and does not start with a preposition ("running apple-cat": apple-cat; "a red circle bouncing": a red circle;
"a cat running on the beach": a cat).
"""

import re

from .errors import MemeError

SUBJECT = "{subject}"
PREPOSITIONS = {
    "on",
    "in",
    "at",
    "into",
    "onto",
    "over",
    "under",
    "across",
    "through",
    "around",
    "with",
    "from",
    "to",
    "towards",
    "along",
    "near",
    "by",
    "behind",
    "above",
    "below",
    "past",
    "off",
    "up",
    "down",
}


def split_subject(text: str) -> tuple[str, str]:
    """`(prompt, template)`: the prompt without braces, and it with its subject as `{subject}`."""
    marked = re.findall(r"\{([^{}]*)\}", text)
    if len(marked) > 1 or text.count("{") != text.count("}") or text.count("{") > 1:
        raise MemeError(f'mark one subject with one pair of braces, e.g. "running {{apple-cat}}", not {text!r}')
    if marked:
        if not marked[0].strip():
            raise MemeError('the braces hold no subject: write it inside them, e.g. "running {apple-cat}"')
        prompt = text.replace("{", "").replace("}", "")
        return " ".join(prompt.split()), " ".join(re.sub(r"\{[^{}]*\}", SUBJECT, text).split())
    return text, guess_template(text)


def guess_template(prompt: str) -> str:
    """The prompt with its guessed subject as `{subject}` (see the module's docstring)."""
    words = prompt.split()
    runs, run = [], []
    for i, word in enumerate(words):
        bare = re.sub(r"\W+$", "", word.lower())
        if bare.endswith("ing") and len(bare) > 4:
            if run:
                runs.append(run)
            run = []
        else:
            run.append(i)
    if run:
        runs.append(run)
    runs = [r for r in runs if words[r[0]].lower() not in PREPOSITIONS] or runs
    if not runs:  # every word an action: the subject is added after them
        return f"{prompt} {SUBJECT}"
    first, last = runs[-1][0], runs[-1][-1]
    return " ".join(words[:first] + [SUBJECT] + words[last + 1 :])


def with_subject(template: str, subject: str) -> str:
    if not subject.strip() or "{" in subject or "}" in subject:
        raise MemeError(f"--subject {subject!r} must be plain words, e.g. blueberry-elephant")
    return template.replace(SUBJECT, subject.strip())


def subject_prompt(prompt: str, template: str | None, subject: str) -> str:
    """A meme's prompt (its stored template, else the guessed one) with a new subject."""
    return with_subject(template or guess_template(prompt), subject)


ARTICLES = ("a", "an", "the")


def action_alone(template: str) -> str:
    """The template's words without its subject (and the subject's article): "a {subject} running" -> "running",
    what an animated still is prompted with when its subject is not named; "" if nothing is left."""
    words = template.split()
    at = next(i for i, w in enumerate(words) if SUBJECT in w)
    before = words[: at - 1] if at and words[at - 1].lower() in ARTICLES else words[:at]
    return " ".join(w for w in before + [words[at].replace(SUBJECT, "")] + words[at + 1 :] if w)


def subject_of(prompt: str, template: str | None) -> str | None:
    """The subject a prompt holds in its template's place: "a cat face popping" with "{subject} popping" -> "a cat
    face"; None where the prompt does not fit the template."""
    before, _, after = (template or guess_template(prompt)).partition(SUBJECT)
    found = re.fullmatch(re.escape(before) + r"(.+?)" + re.escape(after), prompt)
    return found.group(1).strip() if found else None
