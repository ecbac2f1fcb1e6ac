"""The playground page at `/`, driven in a real browser (headless Chromium through Playwright) against a real
`meme serve` on loopback with memes on the bundled tiny base: pick a meme, send a subject and see the clip at the
meme's size, see the server's one-line error inline, pick among variants, train a meme from the page and see it in
the picker, learn a subject from photos and send its name, give the token the server asks for, and use it by
keyboard at desktop and phone width."""

import re
import shutil
from pathlib import Path

import pytest
from chromium import launch, needs_chromium, sync_api
from live_server import running, wait_ready
from PIL import Image

from memestar.media.writers import write_gif
from memestar.serve.options import ServeOptions
from memestar.tiny.evaluate import tune_on_world_clip
from memestar.tiny.world import Sprite, render_clip
from memestar.train.options import SubjectOptions
from memestar.train.subject import learn_subject

pytestmark = needs_chromium
TOKEN = "a-playground-token-0123456789abc"
QUICK_STEPS = "4"
DESKTOP, PHONE = {"width": 1280, "height": 860}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def memes_dir(tmp_path_factory) -> Path:
    """Two memes on the bundled tiny base (16 frames of 64 px), a few tuning steps each."""
    root = tmp_path_factory.mktemp("playground")
    for motion, subject in (("bouncing", ("red", "circle")), ("sliding", ("blue", "square"))):
        tune_on_world_clip(
            motion,
            subject,
            root,
            root / "memes" / f"{subject[0]}-{subject[1]}-{motion}",
            steps=5,
            lr=3e-3,
            inversion_steps=5,
            preview=True,
        )
    return root / "memes"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.set_default_timeout(120_000)
    yield page
    context.close()
    assert not page.problems, page.problems  # no script error on the page


def memes(page):
    """The meme picker's choices."""
    return page.get_by_role("radiogroup", name="Memes").get_by_role("radio")


def open_page(page, client):
    page.goto(str(client.base_url) + "/")
    memes(page).first.wait_for()


def quick_settings(page):
    page.locator("#settings summary").click()
    page.get_by_label("Steps", exact=True).fill(QUICK_STEPS)


def message(page):
    return page.locator("#message")


def test_send_a_subject_and_see_the_clip_at_the_memes_size_and_errors_inline(page, memes_dir):
    with running(ServeOptions(memes=memes_dir)) as client:
        wait_ready(client)
        open_page(page, client)
        assert page.locator("#server-status").inner_text().startswith("ready")
        picker = memes(page).filter(has_text=re.compile("a blue square sliding"))
        picker.click()
        assert picker.get_attribute("aria-checked") == "true"
        assert page.get_by_role("heading", level=2, name="a blue square sliding").is_visible()
        page.wait_for_function("() => [...document.querySelectorAll('.meme img')].every(i => i.naturalWidth === 64)")

        quick_settings(page)
        message(page).fill("a yellow star")
        message(page).press("Enter")
        clip = page.locator("#thread img.clip").first
        clip.wait_for()
        page.wait_for_function("() => document.querySelector('#thread img.clip').naturalWidth > 0")
        assert clip.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [64, 64]  # the meme's size
        assert clip.get_attribute("alt") == "a yellow star sliding"  # the subject in the meme's prompt
        assert page.locator("#thread a[download]").first.get_attribute("download") == "a-yellow-star.gif"

        message(page).press("Enter")  # an empty message: the server's one line, inline
        error = page.locator("#thread li.error").first
        error.wait_for()
        assert "at least 1 character" in error.inner_text()

        page.get_by_label("Variants").fill("3")
        page.get_by_label("Chat app").select_option("slack")
        message(page).fill("a green triangle")
        page.get_by_role("button", name="Send").click()
        figures = page.locator(".variants figure")
        figures.nth(2).wait_for()
        assert figures.count() == 3
        sizes = page.eval_on_selector_all(
            ".variants img",
            "imgs => Promise.all(imgs.map(i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])))",
        )
        assert sizes == [[128, 128]] * 3  # Slack's emoji canvas
        page.get_by_role("button", name="Pick 2").click()
        assert page.get_by_role("button", name="Pick 2").get_attribute("aria-pressed") == "true"
        assert figures.nth(1).locator("a[download]").get_attribute("download").endswith(".gif")

        page.get_by_label("a whole prompt").check()
        page.get_by_label("Prompt", exact=True).evaluate(
            "i => { i.removeAttribute('maxlength'); i.value = 'x'.repeat(1001); }"
        )
        page.get_by_role("button", name="Send").click()
        page.locator("#thread li.error").nth(1).wait_for()
        assert "at most 1000 characters" in page.locator("#thread li.error").nth(1).inner_text()


def test_attach_a_photo_and_its_subject_comes_back_doing_the_meme(page, memes_dir, tmp_path):
    photo = tmp_path / "my cat.png"
    Image.new("RGBA", (40, 40)).save(photo)
    with Image.open(photo) as image:
        image.paste((240, 200, 30, 255), (8, 8, 32, 32))  # a yellow square, cut out
        image.save(photo)
    (tmp_path / "notes.png").write_text("not a photo")
    with running(ServeOptions(memes=memes_dir)) as client:
        wait_ready(client)
        open_page(page, client)
        memes(page).filter(has_text=re.compile("a blue square sliding")).click()
        quick_settings(page)
        page.get_by_label("Attach a photo").set_input_files(str(photo))
        assert page.locator("#photo-name").inner_text() == "my cat.png"
        page.get_by_role("button", name="Send").click()  # no words: the photo alone
        clip = page.locator("#thread li.them img.clip").first
        clip.wait_for()
        page.wait_for_function("() => document.querySelector('#thread li.them img.clip').naturalWidth > 0")
        assert clip.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [64, 64]
        assert clip.get_attribute("alt") == "my cat.png doing “a blue square sliding”"
        assert page.locator("#thread li.me img.photo").count() == 1  # the sent photo in the thread
        assert page.locator("#photo-chip").is_hidden()  # sent: the next message has none

        page.get_by_label("Attach a photo").set_input_files(str(tmp_path / "notes.png"))
        message(page).fill("a cat")
        message(page).press("Enter")
        error = page.locator("#thread li.error").first
        error.wait_for()
        assert "notes.png is not an image" in error.inner_text()


def test_learned_subjects_are_offered_and_a_message_names_one(page, memes_dir, tmp_path):
    photo = tmp_path / "ball.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(photo)
    subjects = tmp_path / "subjects"
    learn_subject(
        SubjectOptions(photos=photo, name="my-ball", base="tiny", out=subjects / "my-ball", steps=3, quiet=True)
    )
    with running(ServeOptions(memes=memes_dir, subjects=subjects)) as client:
        wait_ready(client)
        open_page(page, client)
        memes(page).filter(has_text=re.compile("a blue square sliding")).click()
        quick_settings(page)
        page.wait_for_function("() => document.querySelectorAll('#learned-subjects option').length === 1")
        assert page.locator("#learned-subjects option").get_attribute("value") == "my-ball"
        assert message(page).get_attribute("list") == "learned-subjects"
        message(page).fill("my-ball")
        message(page).press("Enter")
        clip = page.locator("#thread img.clip").first
        clip.wait_for()
        assert clip.get_attribute("alt") == "my-ball sliding"
        page.get_by_label("a whole prompt").check()
        assert message(page).get_attribute("list") is None  # prompts are not subject names


def test_learn_a_subject_from_the_page_and_its_name_is_ready_to_send(page, memes_dir, tmp_path):
    photos = [tmp_path / "ball.png", tmp_path / "ball-again.jpg"]
    for photo in photos:
        Image.new("RGB", (64, 64), (200, 40, 40)).save(photo)
    subjects = tmp_path / "subjects"
    subjects.mkdir()
    with running(ServeOptions(memes=memes_dir, subjects=subjects)) as client:
        wait_ready(client)
        open_page(page, client)
        memes(page).filter(has_text=re.compile("a blue square sliding")).click()
        quick_settings(page)
        page.get_by_text("Learn your own subject").click()
        page.get_by_label("1 to 4 photos of it").set_input_files([str(p) for p in photos])
        page.get_by_label("Its name").fill("my-ball")
        page.get_by_label("Learning steps").fill("3")
        page.get_by_role("button", name="Learn").click()
        page.get_by_text(re.compile("subject my-ball is ready")).wait_for()
        assert (subjects / "my-ball" / "subject.json").is_file()
        assert message(page).input_value() == "my-ball" and message(page).get_attribute("list") == "learned-subjects"
        assert page.locator("#learned-subjects option").get_attribute("value") == "my-ball"
        message(page).press("Enter")
        clip = page.locator("#thread img.clip").first
        clip.wait_for()
        assert clip.get_attribute("alt") == "my-ball sliding"

        page.get_by_label("1 to 4 photos of it").set_input_files(str(photos[0]))
        page.get_by_label("Its name").fill("my-ball")  # the same name: refused
        page.get_by_role("button", name="Learn").click()
        page.get_by_text(re.compile("Learning failed")).wait_for()
        assert "exists" in page.locator("#learn-text").inner_text()


def test_the_learn_panel_shows_only_where_the_server_keeps_subjects(page, memes_dir):
    with running(ServeOptions(memes=memes_dir)) as client:
        wait_ready(client)
        open_page(page, client)
        page.wait_for_load_state("networkidle")  # /subjects answered
        assert page.locator("#learn-panel").is_hidden()


def test_train_a_meme_from_the_page_and_it_joins_the_picker(page, memes_dir, tmp_path):
    served = tmp_path / "memes"
    shutil.copytree(memes_dir, served)
    clip = write_gif(render_clip(Sprite("purple", "triangle"), "growing"), tmp_path / "grow.gif", fps=8)
    with running(ServeOptions(memes=served, train_base="tiny")) as client:
        wait_ready(client)
        open_page(page, client)
        assert memes(page).count() == 2
        page.get_by_text("Train a new meme").click()
        page.get_by_label("Clip (").set_input_files(str(clip))
        page.get_by_label("What the clip shows").fill("{a purple triangle} growing")
        page.get_by_label("Tuning steps").fill("3")
        page.get_by_label("Frames").fill("8")
        page.get_by_label("Size (px)").fill("64")
        page.get_by_role("button", name="Train").click()
        page.get_by_text(re.compile(r"is ready")).wait_for()
        new = memes(page).filter(has_text=re.compile("a purple triangle growing"))
        assert new.get_attribute("aria-checked") == "true"  # picked once trained
        assert memes(page).count() == 3
        assert page.locator("#message").get_attribute("placeholder") == "blueberry-elephant"
        assert "… growing" in page.locator("#chat-hint").inner_text()  # its braces marked the subject

        page.get_by_label("Clip (").set_input_files(str(clip))
        page.get_by_label("What the clip shows").fill("{a purple triangle} growing")  # the same id: refused
        page.get_by_role("button", name="Train").click()
        page.get_by_text(re.compile("Training failed")).wait_for()
        assert "exists" in page.locator("#train-text").inner_text()


def test_a_token_is_asked_for_once_and_the_page_works_by_keyboard_at_phone_width(page, memes_dir):
    with running(ServeOptions(memes=memes_dir, token=TOKEN)) as client:
        wait_ready(client)
        page.set_viewport_size(PHONE)
        page.goto(str(client.base_url) + "/")
        dialog = page.get_by_role("dialog")
        dialog.wait_for()
        page.get_by_label("Token", exact=True).fill("not-the-token-but-long-enough")
        page.keyboard.press("Enter")
        page.get_by_text("That token was refused").wait_for()  # asked again
        page.get_by_label("Token", exact=True).fill(TOKEN)
        page.keyboard.press("Enter")
        memes(page).first.wait_for()
        assert not dialog.is_visible()

        # every control is labelled, and nothing is wider than the phone
        unlabelled = page.eval_on_selector_all(
            "input, select, textarea",
            "els => els.filter(e => e.type !== 'hidden' && !e.labels.length && "
            "!e.getAttribute('aria-label')).map(e => e.outerHTML)",
        )
        assert unlabelled == []
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

        # by keyboard: arrows move through the picker, Enter sends
        memes(page).filter(has_text=re.compile("a red circle bouncing")).focus()
        page.keyboard.press("ArrowDown")
        focused = page.evaluate("document.activeElement.getAttribute('aria-checked')")
        assert focused == "true" and "sliding" in page.evaluate("document.activeElement.textContent")
        page.locator("#settings summary").press("Enter")
        page.get_by_label("Steps", exact=True).fill(QUICK_STEPS)
        message(page).focus()
        page.keyboard.type("a red star")
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#thread img.clip')?.naturalWidth === 64")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert page.evaluate("sessionStorage.getItem('memestar-token')") == TOKEN  # kept for this tab only
