"""A convolution, its bias, relu and max pooling as one layer: the native kernel's fused block.

``ConvReluPool`` computes ``max_pool(relu(nn.Conv(...)(x)), window)`` with exactly
``nn.Conv``'s parameters (``kernel`` and ``bias``, same shapes and initializers), so a
model that names it like the ``nn.Conv`` it replaces keeps its parameter tree and
checkpoints. In jaxdl's train step, for float32 on CPU, it runs the native kernel's
fused block (native/conv.py): the convolution's full-size output, and the relu's
and pooling's full-size gradients, are never written. Everywhere else it runs the
unfused layers, which stay the reference.
"""

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

from jaxdl.models import convolution, per_device
from jaxdl.models.layers import glorot_uniform, max_pool
from jaxdl.models.native import conv as native_conv
from jaxdl.models.per_device import BATCH_FIRST, SHARED


def conv_relu_max_pool(x: jax.Array, kernel: jax.Array, bias: jax.Array,
                       padding: str | Sequence[tuple[int, int]], window: int = 2,
                       conv_kernel: str = "auto") -> jax.Array:
  """``max_pool(relu(conv(x, kernel) + bias), window)``, fused where the native kernel applies.

  Args:
    x: ``<float>[batch, height, width, in_channels]``.
    kernel: ``[kernel_height, kernel_width, in_channels, out_channels]``.
    bias: ``[out_channels]``.
    padding: 'VALID', 'SAME' or ``((top, bottom), (left, right))``; stride 1.
    window: the pool size and stride k.
    conv_kernel: 'auto', 'xla' or 'native', as for ``convolution``.

  Returns:
    ``[batch, conv_height // k, conv_width // k, out_channels]``.
  """
  nhwc = ("NHWC", "HWIO", "NHWC")
  if bias.dtype == x.dtype and 1 <= window <= 11:
    pads = convolution.native_padding(conv_kernel, x, kernel, padding, min_output=window,
                                      dimension_numbers=nhwc)
    if pads is not None:  # Each device on its own images (per_device.py).
      block = functools.partial(native_conv.conv_relu_max_pool, padding=pads, window=window)
      return per_device.over_batch(block, per_device.mesh_for(x.shape[0]),
                                   (BATCH_FIRST, SHARED, SHARED), BATCH_FIRST)(x, kernel, bias)
  y = convolution.convolution(conv_kernel)(x, kernel, (1, 1), padding, dimension_numbers=nhwc)
  return max_pool(nn.relu(y + bias.reshape(1, 1, 1, -1)), window)


class ConvReluPool(nn.Module):
  """``nn.Conv(features, kernel_size, padding)`` -> relu -> ``max_pool(window)``, as one layer.

  Attributes:
    features: output channels.
    kernel_size: ``(height, width)`` of the kernel.
    padding: 'VALID', 'SAME' or explicit ``((top, bottom), (left, right))``; stride 1.
    window: the max pool's size and stride.
    kernel_init, bias_init: as ``nn.Conv``'s (Glorot-uniform and zeros, Keras's defaults).
    conv_kernel: 'auto', 'xla' or 'native' (see convolution.py).
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  padding: str | Sequence[tuple[int, int]] = "VALID"
  window: int = 2
  kernel_init: Callable = glorot_uniform
  bias_init: Callable = nn.initializers.zeros_init()
  conv_kernel: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps ``[batch, height, width, channels]`` to ``[batch, height', width', features]``."""
    kernel = self.param("kernel", self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    return conv_relu_max_pool(x, kernel, bias, self.padding, self.window, self.conv_kernel)
