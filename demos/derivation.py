"""The derivation, run: autodiff conv gradients beside the closed form (same as `tinygrad-conv derive`).

    python demos/derivation.py
"""

from tinygrad_conv.derivation import report

if __name__ == "__main__":
    raise SystemExit(0 if report() else 1)
