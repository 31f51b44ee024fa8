"""tinygrad_conv: see backpropagation through a convolution.

Tensor (tensor.py) records primitive ops (ops.py); conv2d (functional.py) is composed from them, so its
gradients are derived; closed_form.py writes the same gradients by hand in plain numpy.
"""

from importlib.metadata import PackageNotFoundError, version

from tinygrad_conv.gradcheck import gradcheck, gradgradcheck
from tinygrad_conv.serialization import load, save
from tinygrad_conv.tensor import Tensor, enable_grad, grad, is_grad_enabled, no_grad

try:
    __version__ = version("tinygrad_conv")
except PackageNotFoundError:  # run from a checkout that was not pip-installed
    __version__ = "0+unknown"

__all__ = ["Tensor", "grad", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck", "gradgradcheck", "save",
           "load", "__version__"]
