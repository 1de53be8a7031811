"""Screenshots of a study report as a browser shows it: report.png and figure-*.png under docs/demo/.

    python benchmarks/screenshot_report.py demo-out/study            # after `make demo`
    python benchmarks/screenshot_report.py RUN_DIR --out docs/demo --height 3000

Rewrites the run's report first (harness report), so the screenshots show the current layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.report.report import write_report
from harness.report.screenshot import find_chromium, screenshot_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/demo"))
    parser.add_argument("--height", type=int, default=2400, help="pixels of the report to capture")
    args = parser.parse_args()
    if find_chromium() is None:
        print("no Chromium: apt-get install chromium", file=sys.stderr)
        return 1
    write_report(args.run_dir)
    for path in screenshot_run(args.run_dir, args.out, height=args.height):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
