"""Regenerate the committed picture docs/derivation.svg (needs Graphviz's `dot`).

    python scripts/render_docs.py            # writes docs/derivation.svg
    python scripts/render_docs.py --check    # exits 1 if docs/derivation.svg is out of date

The picture is `tinygrad_conv.viz.derivation_graph()`: the 3×3 image and 2×2 kernel convolved from scalars,
L = Σ y, after L.backward(), with pixel x00's four paths — the flipped kernel — in red. Run this after changing
viz.py or the example, and commit the SVG.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout, installed or not

from tinygrad_conv import viz  # noqa: E402

OUT = ROOT / "docs" / "derivation.svg"


def main(argv: list[str]) -> int:
    if shutil.which("dot") is None:
        print(viz.INSTALL_HINT.replace("so only the DOT source was written; ", ""), file=sys.stderr)
        return 1
    svg = viz.derivation_graph().pipe(format="svg").decode("utf-8")
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != svg:
            print(f"{OUT} is out of date: run python scripts/render_docs.py", file=sys.stderr)
            return 1
        print(f"{OUT} is up to date")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(svg, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
