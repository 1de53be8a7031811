"""Render a run's report.html (and each figure) in headless Chromium, to PNG screenshots or to its rendered DOM.

Chromium is Debian's package (`apt-get install chromium`); `find_chromium()` returns None where it is absent so
that callers (tests, `benchmarks/screenshot_report.py`) can say so and skip.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from hubport.errors import HubportError

NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, NAMES) if path), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    browser = find_chromium()
    if browser is None:
        raise HubportError("no Chromium found", "apt-get install chromium (Debian) to render the report")
    with tempfile.TemporaryDirectory(prefix="hubport-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise HubportError(f"chromium failed ({done.returncode}): {done.stderr.strip()[-200:]}")
    return done


def rendered_dom(html: Path, timeout: float = 60) -> str:
    """The DOM after Chromium loaded and laid out the page (images decoded inline)."""
    return _run(["--virtual-time-budget=5000", "--dump-dom", Path(html).resolve().as_uri()], timeout).stdout


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2400, timeout: float = 60) -> Path:
    """A PNG of `page` (an HTML file or an image) at width x height pixels."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={out.resolve()}", f"--window-size={width},{height}", "--virtual-time-budget=5000",
          Path(page).resolve().as_uri()], timeout)
    if not out.is_file():
        raise HubportError(f"chromium wrote no screenshot to {out}")
    return out


def screenshot_run(run_dir: Path, out_dir: Path, height: int = 2400) -> list[Path]:
    """report.png (the report's first `height` pixels) and one PNG per figure, as a browser shows them."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    shots = [screenshot(run_dir / "report.html", out_dir / "report.png", height=height)]
    with tempfile.TemporaryDirectory(prefix="hubport-figures-") as tmp:
        for figure in sorted((run_dir / "figures").glob("*.png")):
            page = Path(tmp) / f"{figure.stem}.html"
            page.write_text(_figure_page(figure), encoding="utf-8")
            shots.append(screenshot(page, out_dir / f"figure-{figure.name}", width=1280, height=1000))
    return shots


def _figure_page(figure: Path) -> str:
    """One figure with its caption, on a white page, as the report shows it."""
    import html

    from harness.report.figures import caption

    return ('<!DOCTYPE html><html><body style="margin:16px;font-family:sans-serif;background:#fff">'
            f'<figure><img style="max-width:100%" src="{figure.resolve().as_uri()}">'
            f'<figcaption style="max-width:60em;color:#444">{html.escape(caption(figure))}</figcaption></figure>'
            '</body></html>')
