"""Regenerate the screenshots in docs/images/ (the HTML view of `archspec graph`).

Needs Chromium and the playwright package (both in the test set-up of .ci/run):

    python docs/screenshots.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no Chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "googlenet.html"
        subprocess.run([sys.executable, "-m", "archspec", "graph", "specs/googlenet.arch",
                        "--depth", "1", "-o", str(page_file)], check=True, cwd=ROOT)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 820})
            page.goto(page_file.as_uri())
            page.click('g.node[data-id="inception3a"]')
            page.fill("#search", "branch2")
            page.evaluate("window.scrollTo(0, 380)")
            page.locator('g.node[data-id="inception3a.branch2"]').hover()
            page.screenshot(path=str(ROOT / "docs" / "images" / "graph_html.png"))
            browser.close()


if __name__ == "__main__":
    main()
