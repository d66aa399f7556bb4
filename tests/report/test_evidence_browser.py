"""The HTML report in a real browser: headless Chromium renders it to a PNG that is neither missing nor blank."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from shared.evidence.html import render_html
from tests.report.documents import check_document, remediate_document
from tests.support.report_tools import require_chromium

pytestmark = pytest.mark.slow  # headless Chromium renders the report

WIDTH, HEIGHT = 1280, 2000
# The badge backgrounds of the stylesheet: seeing them proves the inline CSS was applied.
NON_COMPLIANT_BG = (0xFD, 0xE2, 0xE1)
COMPLIANT_BG = (0xDF, 0xF3, 0xE4)


def screenshot(html: str, workdir: Path) -> Path:
    """Chromium, headless and off the network, renders the file and writes a PNG of the first 1280×2000 pixels."""
    chromium = require_chromium()
    page, png = workdir / "report.html", workdir / "report.png"
    page.write_text(html, encoding="utf-8")
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={workdir / 'profile'}",
        f"--screenshot={png}",
        f"--window-size={WIDTH},{HEIGHT}",
        page.as_uri(),
    ]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={"HOME": str(workdir), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, f"chromium exited {run.returncode}: {run.stderr[-2000:]}"
    assert png.is_file(), f"chromium wrote no screenshot: {run.stderr[-2000:]}"
    return png


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 6) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


@pytest.mark.parametrize("build", [check_document, remediate_document], ids=["check", "remediate"])
def test_chromium_renders_the_report(build, tmp_path):
    png = screenshot(render_html(build()), tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        assert image.size == (WIDTH, HEIGHT)
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=WIDTH * HEIGHT)
    assert colours is not None
    assert len(colours) > 200, "a page of text, tables and badges has many colours (anti-aliasing)"
    counts = {colour: count for count, colour in colours}
    white = sum(count for colour, count in counts.items() if min(colour) >= 250)
    assert 0.02 < 1 - white / (WIDTH * HEIGHT) < 0.6, "neither blank nor a solid block"
    assert sum(count for colour, count in counts.items() if near(colour, NON_COMPLIANT_BG)) > 200
    assert sum(count for colour, count in counts.items() if near(colour, COMPLIANT_BG)) > 200
    # Text reaches the right half of the page: the tables use the width instead of collapsing into a column.
    right = rgb.crop((WIDTH // 2, 0, WIDTH, HEIGHT)).getcolors(maxcolors=WIDTH * HEIGHT)
    assert right is not None and len(right) > 50
