"""Take a headless-browser screenshot of a report.html, to look at it (not part of the suite).

    .venv/bin/python benchmarks/screenshot_report.py REPORT_HTML [--out report.png] [--width 1200] \
        [--height 3000]
    .venv/bin/python benchmarks/screenshot_report.py --demo DIR [--out ...]

REPORT_HTML is an evaluation's or a comparison's `report.html` (a local path). `--demo
DIR` first writes two synthetic evaluation outputs and their comparison under DIR (the
test suite's fixture), then screenshots the evaluation report and the comparison report.

Uses Chromium or Chrome from PATH (`chromium`, `chromium-browser`, `google-chrome`,
`google-chrome-stable`, or `$CHROME`) with `--headless --screenshot`; else Playwright's
Chromium when the package is importable; else says what to install and exits 1.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from pipelines.scoring import report  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    if os.environ.get("CHROME"):
        return os.environ["CHROME"]
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot_with_browser(
    browser: str, page: pathlib.Path, png: pathlib.Path, width: int, height: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="fewframes-chrome-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",  # as root in a container
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not png.exists():
        raise RuntimeError(f"{browser} failed ({result.returncode}): {result.stderr.strip()[-500:]}")


def screenshot_with_playwright(page: pathlib.Path, png: pathlib.Path, width: int, height: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch()
        tab = browser.new_page(viewport={"width": width, "height": height})
        tab.goto(page.resolve().as_uri())
        tab.screenshot(path=str(png), full_page=True)
        browser.close()


def screenshot(page: pathlib.Path, png: pathlib.Path, width: int, height: int) -> str:
    """Screenshot `page` into `png`; returns what took it. RuntimeError if nothing can."""
    browser = find_browser()
    if browser:
        screenshot_with_browser(browser, page, png, width, height)
        return browser
    try:
        screenshot_with_playwright(page, png, width, height)
        return "playwright"
    except ImportError:
        pass
    raise RuntimeError(
        "no headless browser found: install Chromium (e.g. `apt-get install chromium`) or put Chrome "
        "on PATH (or set $CHROME), or `pip install playwright && playwright install chromium`"
    )


def write_demo(directory: pathlib.Path) -> list[pathlib.Path]:
    """Two synthetic evaluation outputs (teacher, student), their reports and comparison."""
    from pipelines import compare
    from tests.evaluation_fixture import write_evaluation_dir

    runs = {
        "teacher": dict(
            seed=1, signal=0.9, role="teacher", preset="large", view="all", every=1, ms_per_frame=0.05
        ),
        "every10": dict(seed=2, signal=0.6, view="every_n:10", every=10),
        "uniform5": dict(seed=3, signal=0.45, view="uniform:5", every=35),
    }
    names = [f"entity {c} <&>" for c in range(200)]
    for name, options in runs.items():
        write_evaluation_dir(str(directory / name), videos=3000, classes=200, names=names, **options)
        report.write_evaluation_report(str(directory / name))
    code = compare.run(
        [*(str(directory / n) for n in runs), "--output", str(directory / "comparison"), "--overwrite"]
    )
    if code:
        raise RuntimeError(f"compare exited {code}")
    return [directory / "teacher" / "report.html", directory / "comparison" / "report.html"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", nargs="?", help="report.html to screenshot")
    parser.add_argument("--demo", metavar="DIR", help="write synthetic runs and a comparison under DIR first")
    parser.add_argument("--out", help="PNG path (default: beside the report, report.png)")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args(argv)
    if bool(args.report) == bool(args.demo):
        parser.error("give a REPORT_HTML or --demo DIR")
    pages = write_demo(pathlib.Path(args.demo)) if args.demo else [pathlib.Path(args.report)]
    for page in pages:
        if not page.is_file():
            print(f"screenshot_report: error: {page} is not a file", file=sys.stderr)
            return 2
        png = pathlib.Path(args.out) if args.out and len(pages) == 1 else page.with_suffix(".png")
        try:
            tool = screenshot(page, png, args.width, args.height)
        except RuntimeError as error:
            print(f"screenshot_report: {error}", file=sys.stderr)
            return 1
        print(f"{page} -> {png} ({tool})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
