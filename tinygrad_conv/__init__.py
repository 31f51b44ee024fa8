"""tinygrad_conv: see backpropagation through a convolution.

Tensor (tensor.py) records primitive ops (ops.py); conv2d (functional.py) is composed from them, so its
gradients are derived; closed_form.py writes the same gradients by hand in plain numpy.
"""

from tinygrad_conv.allocator import keep_freed_memory
from tinygrad_conv.gradcheck import gradcheck
from tinygrad_conv.serialization import load, save
from tinygrad_conv.tensor import Tensor, is_grad_enabled, no_grad

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "gradcheck", "save", "load", "keep_freed_memory"]
