"""Headless Chromium for the browser tests: Debian's package driven by Playwright (its own browser download is not
reachable), each test module skipped where either is missing."""

import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[browser]' (Playwright)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium: apt-get install -y chromium (Debian's package; Playwright's own browser download is not used)",
)
# As root, without a sandbox; no background connections (the machine has no network to give them).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def launch(playwright):
    """Chromium through a running `sync_playwright()`."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
