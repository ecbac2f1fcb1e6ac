"""Screenshots of the playground (`meme serve`'s page at `/`) at desktop and phone width, for the README.

    python benchmarks/playground_screens.py [--memes DIR] [--out docs]

Without --memes, tunes two memes on the bundled tiny base the way `make demo` does (a red circle bouncing, a blue
square sliding). Serves them with `meme serve` on loopback, drives the page in headless Chromium (Playwright with
Debian's `chromium`): picks a meme, sends two subjects and asks for three variants, and writes
`playground-desktop.png` (1280x860) and `playground-phone.png` (390x844) to --out.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from memestar.bench.load import ServerProcess  # noqa: E402
from memestar.tiny.demo import DEMO_STEPS  # noqa: E402
from memestar.tiny.evaluate import tune_on_world_clip  # noqa: E402
from memestar.tiny.options import WORLD_LR  # noqa: E402

MEMES = (("bouncing", ("red", "circle")), ("sliding", ("blue", "square")))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def make_memes(root: Path) -> Path:
    for motion, subject in MEMES:
        tune_on_world_clip(
            motion, subject, root, root / "memes" / f"{subject[0]}-{subject[1]}-{motion}", steps=DEMO_STEPS, lr=WORLD_LR
        )
    return root / "memes"


def send(page, text: str, variants: int = 1) -> None:
    page.get_by_label("Variants").fill(str(variants))
    page.locator("#message").fill(text)
    page.locator("#message").press("Enter")
    done = page.locator("#thread li.them:not(.pending)")
    count = done.count()
    page.wait_for_function(f"() => document.querySelectorAll('#thread li.them:not(.pending)').length > {count}")


def screenshots(url: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.set_default_timeout(300_000)
        page.goto(url + "/")
        page.get_by_role("radiogroup", name="Memes").get_by_role("radio").first.wait_for()
        page.get_by_role("radio", name="a red circle bouncing").click()
        page.locator("#settings summary").click()
        page.get_by_label("Guidance").fill("5")
        send(page, "a blue circle")
        send(page, "a green triangle", variants=3)
        page.get_by_role("button", name="Pick 2").click()
        page.locator("#settings summary").click()
        written = [out / "playground-desktop.png", out / "playground-phone.png"]
        page.screenshot(path=written[0])
        page.set_viewport_size({"width": 390, "height": 844})
        page.locator("#thread li").last.scroll_into_view_if_needed()
        page.screenshot(path=written[1])
        browser.close()
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--memes", type=Path, help="a folder of memes (default: tune two on the tiny base)")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        memes = a.memes or make_memes(Path(tmp))
        with ServerProcess(memes, "cpu") as server:
            for path in screenshots(server.url, a.out):
                print(path)


if __name__ == "__main__":
    main()
