"""Open a report.html in headless Chromium and confirm it renders whole: every image loaded and
decoded.

    python scripts/check_report.py runs/gsm8k-demo/report.html

The page sets `data-images="loaded/total"` on <body> once loaded; Chromium's --dump-dom shows it.
Exit 0 when all images (at least 3: loss, learning rate, gradient norm) loaded, 1 otherwise. Debian:
apt-get install chromium.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def rendered_images(report: Path) -> tuple[int, int]:
    """(images loaded, images on the page) as Chromium saw them."""
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        raise FileNotFoundError("no Chromium found (Debian: apt-get install chromium)")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
           "--dump-dom", report.resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'data-images="(\d+)/(\d+)"', dom)
    if not found:
        raise RuntimeError("the page did not finish loading (no data-images on <body>)")
    return int(found.group(1)), int(found.group(2))


def main() -> int:
    report = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/gsm8k-demo/report.html")
    loaded, total = rendered_images(report)
    print(f"{report}: {loaded} of {total} images rendered in headless Chromium")
    return 0 if loaded == total >= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
