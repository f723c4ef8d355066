"""The headline's report (docs/results.md §12, the README's result table), from the committed results of the
campaign in bench/results/headline/*.json. The campaign itself runs as a sweep, in the product:

    distilflow sweep params/headline-sweep.yaml --dry-run   # its variants, the phases, what each chooses
    distilflow sweep params/headline-sweep.yaml             # runs it, resumable (days on 2 cores)
    python bench/headline.py --report                       # §12's tables and the README's block, printed
    python bench/headline.py --report --write               # ... written into docs/results.md and README.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "headline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="render §12 and the README's block")
    parser.add_argument("--write", action="store_true", help="with --report: into docs/results.md and README.md")
    args = parser.parse_args()
    if not args.report:
        print("error: the headline campaign runs as a sweep now: `distilflow sweep params/headline-sweep.yaml` "
              "(--dry-run lists its variants); this script only renders its report (--report)", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DISTILFLOW_HUB_MIRROR", str(ROOT.parent / "shared" / "hub"))
    from headline_report import render, render_readme, write  # bench/, beside this file

    tables, readme = render(RESULTS), render_readme(RESULTS)
    print(write(tables, readme) if args.write else f"{tables}\n\n{readme}")


if __name__ == "__main__":
    main()
