"""Which code runs a convolution: XLA's, or jaxdl's native kernel inside the train step.

``convolution(kernel)`` is a drop-in ``conv_general_dilated`` for ``flax.linen.Conv``
(its ``conv_general_dilated`` field), so parameters, initializers and checkpoints
are exactly those of ``nn.Conv``. A researcher's own module gets the same speed with
``nn.Conv(..., conv_general_dilated=jaxdl.models.convolution('auto'))``.
"""

import functools
from collections.abc import Callable

import jax
from jax import lax

from jaxdl.models import custom_gradients, per_device
from jaxdl.models.native import conv as native_conv
from jaxdl.models.per_device import BATCH_FIRST, SHARED

KERNELS = ("auto", "xla", "native")
_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1),
                                 out_spec=(0, 3, 1, 2))


def _explicit_padding(padding, lhs: jax.Array, rhs: jax.Array) -> list[tuple[int, int]]:
  """``[(top, bottom), (left, right)]`` for 'SAME', 'VALID' or explicit stride-1 padding."""
  if isinstance(padding, str):
    return lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1), padding)
  return [tuple(p) for p in padding]


def native_padding(kernel: str, lhs, rhs, padding, *, min_output: int = 1,
                   window_strides=None, lhs_dilation=None, rhs_dilation=None,
                   dimension_numbers=None, feature_group_count=1
                   ) -> list[tuple[int, int]] | None:
  """The explicit padding with which the native kernel computes this convolution here and
  now, or None where XLA's must (see ``convolution``).

  ``min_output``: the least output height and width the caller needs (1; a fused
  pooling window's size). A smaller output (images too small: the model's own
  check names them) is left to XLA.
  """
  ones = lambda v: v is None or all(d == 1 for d in v)
  if (kernel == "xla" or not custom_gradients.enabled() or lhs.ndim != 4
      or not (ones(window_strides) and ones(lhs_dilation) and ones(rhs_dilation))
      or feature_group_count != 1 or lhs.dtype != rhs.dtype):
    return None
  if lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != _NHWC:
    return None
  if not native_conv.usable(lhs.dtype, quiet=kernel == "auto"):
    return None
  pads = _explicit_padding(padding, lhs, rhs)
  if any(lo < 0 or hi < 0 for lo, hi in pads):
    return None
  if min(native_conv.output_hw(lhs.shape, rhs.shape, pads)) < min_output:
    return None
  return pads


def _convolve(kernel: str, lhs, rhs, window_strides, padding, lhs_dilation=None,
              rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
              batch_group_count=1, precision=None, preferred_element_type=None):
  if batch_group_count == 1 and preferred_element_type is None:
    pads = native_padding(kernel, lhs, rhs, padding, window_strides=window_strides,
                          lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                          dimension_numbers=dimension_numbers,
                          feature_group_count=feature_group_count)
    if pads is not None:  # Each device on its own images (per_device.py).
      conv = functools.partial(native_conv.conv2d, padding=pads)
      return per_device.over_batch(conv, per_device.mesh_for(lhs.shape[0]),
                                   (BATCH_FIRST, SHARED), BATCH_FIRST)(lhs, rhs)
  return lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)


def convolution(kernel: str = "auto") -> Callable:
  """``lax.conv_general_dilated`` with the native kernel where it applies.

  Args:
    kernel: 'xla' (always XLA's convolution), 'native' (jaxdl's C++ kernel,
      native/conv_cpu.cc, where it applies: inside jaxdl's train step, float32
      on CPU, 2-D NHWC/HWIO, stride 1, no dilation or groups; a one-line warning
      where it cannot be built or the backend or dtype does not fit) or 'auto'
      (the same, silent on other backends and dtypes). Same math to float
      tolerance, not bitwise. Outside the train step (evaluation, ``jax.jvp``,
      ``jaxdl explain``) every choice runs XLA's convolution, which every JAX
      transformation differentiates.
  """
  if kernel not in KERNELS:
    raise ValueError(f"unknown convolution kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
  return functools.partial(_convolve, kernel)
