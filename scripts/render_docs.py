"""Regenerate the committed pictures docs/derivation.svg and docs/backward.svg (needs Graphviz's `dot`).

    python scripts/render_docs.py            # writes both
    python scripts/render_docs.py --check    # exits 1 if either is out of date

derivation.svg is `tinygrad_conv.viz.derivation_graph()`: the 2×2 image and 2×2 kernel convolved from scalars,
L = Σ y, after L.backward(), with pixel x00's four paths — the flipped kernel — in red. backward.svg is
`viz.backward_graph()`: the same convolution's backward pass as a graph (grad(..., create_graph=True)). Run this
after changing viz.py or the examples, and commit the SVGs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout, installed or not

from tinygrad_conv import viz  # noqa: E402

PICTURES = {ROOT / "docs" / "derivation.svg": viz.derivation_graph, ROOT / "docs" / "backward.svg": viz.backward_graph}


def main(argv: list[str]) -> int:
    if shutil.which("dot") is None:
        print(viz.INSTALL_HINT.replace("so only the DOT source was written; ", ""), file=sys.stderr)
        return 1
    stale = []
    for out, build in PICTURES.items():
        svg = build().pipe(format="svg").decode("utf-8")
        if "--check" in argv:
            if (out.read_text(encoding="utf-8") if out.exists() else "") != svg:
                stale.append(out)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(svg, encoding="utf-8")
        print(f"wrote {out}")
    if stale:
        print(f"out of date: {', '.join(str(p) for p in stale)}: run python scripts/render_docs.py", file=sys.stderr)
        return 1
    if "--check" in argv:
        print("the pictures in docs/ are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
