"""jaxdl's native 2-D convolution for XLA:CPU (conv_cpu.cc), called through ``jax.ffi``.

build.py compiles the kernel on first use. Where it cannot be built or loaded,
or the arrays are not float32 on a CPU, ``usable()`` is False (after a
one-line warning where one is due) and callers run ``lax.conv_general_dilated``,
which stays the reference.

``conv2d`` is the differentiable layer: NHWC inputs, HWIO kernels, stride 1,
explicit padding. Two handlers serve it: a convolution of the input as if padded
with zeros, whose products with the zeros are skipped and which are never
written (the forward pass, and the input gradient as the convolution of the
output gradient, padded by the kernel's size less the forward padding, with the flipped,
transposed kernel), and the 'VALID' kernel gradient. Under ``vmap``
(members of a sweep, DP-SGD's per-example gradients) the batching rule folds
the mapped axis into the batch when the kernel is shared, and runs the members
one after the other when each has its own.
"""

import functools
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.models.native import build

Padding = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
SOURCE = pathlib.Path(__file__).resolve().parent / "conv_cpu.cc"
CONV, KERNEL_GRAD = "jaxdl_conv", "jaxdl_conv_kernel_grad"
_SYMBOLS = ((CONV, "JaxdlConv"), (KERNEL_GRAD, "JaxdlConvKernelGrad"))
KERNEL = build.Kernel(SOURCE, _SYMBOLS, "jaxdl's native convolution kernel",
                      "XLA's convolution")
available, usable = KERNEL.available, KERNEL.usable


def _padded_conv_call(x: jax.Array, w: jax.Array, padding: Padding) -> jax.Array:
  b, h, wd, _ = x.shape
  kh, kw, _, f = w.shape
  (top, bottom), (left, right) = padding
  out = jax.ShapeDtypeStruct((b, h + top + bottom - kh + 1, wd + left + right - kw + 1, f),
                             jnp.float32)
  return jax.ffi.ffi_call(CONV, out)(x, w, pad_top=np.int64(top), pad_bottom=np.int64(bottom),
                                      pad_left=np.int64(left), pad_right=np.int64(right))


def _kernel_grad_call(x: jax.Array, dy: jax.Array) -> jax.Array:
  _, h, wd, c = x.shape
  _, ho, wo, f = dy.shape
  out = jax.ShapeDtypeStruct((h - ho + 1, wd - wo + 1, c, f), jnp.float32)
  return jax.ffi.ffi_call(KERNEL_GRAD, out)(x, dy)


def _fold(call, shared_last: bool):
  """``call(a, b)`` batched over a leading axis of ``a`` (and of ``b`` unless ``shared_last``).

  Where only ``a`` is mapped and ``b`` is shared, the mapped axis joins the batch
  axis (one call); where ``call`` returns a per-batch result (``shared_last`` is
  False: the kernel gradient), or both are mapped, the members run one after the
  other (``lax.map``), each a whole call over its batch.
  """
  batched = jax.custom_batching.custom_vmap(call)

  @batched.def_vmap
  def rule(axis_size, in_batched, a, b):
    a_mapped, b_mapped = in_batched
    if shared_last and a_mapped and not b_mapped:
      folded = batched(a.reshape(-1, *a.shape[2:]), b)
      return folded.reshape(axis_size, -1, *folded.shape[1:]), True
    a = a if a_mapped else jnp.broadcast_to(a, (axis_size, *a.shape))
    b = b if b_mapped else jnp.broadcast_to(b, (axis_size, *b.shape))
    return jax.lax.map(lambda ab: batched(*ab), (a, b)), True

  return batched


@functools.cache
def padded_conv(padding: Padding):
  """``lax.conv_general_dilated(x, w, (1, 1), padding)`` for NHWC ``x`` and HWIO ``w``,
  as a function of ``(x, w)`` (one per padding, which the kernel takes as attributes)."""
  return _fold(functools.partial(_padded_conv_call, padding=padding), shared_last=True)


def valid_conv(x: jax.Array, w: jax.Array) -> jax.Array:
  """``lax.conv_general_dilated(x, w, (1, 1), 'VALID')`` for NHWC ``x`` and HWIO ``w``."""
  return padded_conv(((0, 0), (0, 0)))(x, w)


kernel_grad = _fold(_kernel_grad_call, shared_last=False)
"""The gradient of ``valid_conv``'s ``sum(y * dy)`` with respect to ``w``: ``[KH, KW, C, F]``."""


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x: jax.Array, w: jax.Array, padding: Padding) -> jax.Array:
  return padded_conv(padding)(x, w)


def _conv_fwd(x, w, padding):
  return padded_conv(padding)(x, w), (x, w)


def _conv_bwd(padding, residuals, dy):
  x, w = residuals
  kh, kw = w.shape[:2]
  (top, bottom), (left, right) = padding
  # dx[i] = sum_k dy[i + top - k] w[k]: the convolution of dy, padded by the kernel's size
  # less the forward padding, with the kernel flipped and its channel axes swapped.
  dx_padding = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
  dx = padded_conv(dx_padding)(dy, jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2)))
  if any(p for pair in padding for p in pair):  # The kernel gradient reads x padded.
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  return dx, kernel_grad(x, dy)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv2d(x: jax.Array, w: jax.Array,
           padding: Sequence[tuple[int, int]] = ((0, 0), (0, 0))) -> jax.Array:
  """A stride-1 convolution through the kernel, differentiable in reverse mode.

  Args:
    x: ``<float32>[batch, height, width, in_channels]``.
    w: ``<float32>[kernel_height, kernel_width, in_channels, out_channels]``.
    padding: ``((top, bottom), (left, right))`` zeros around ``x``.

  Returns:
    ``[batch, height + top + bottom - kernel_height + 1, ..., out_channels]``, as
    ``lax.conv_general_dilated(x, w, (1, 1), padding)`` with NHWC/HWIO dimensions.
  """
  KERNEL.require()
  padding = tuple((int(a), int(b)) for a, b in padding)
  if any(p > k - 1 for pair, k in zip(padding, w.shape[:2]) for p in pair):
    # More zeros than a kernel's reach: written out, so the input gradient's is not negative.
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    padding = ((0, 0), (0, 0))
  return _conv(x, w, padding)
