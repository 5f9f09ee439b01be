"""jaxdl's native 2-D convolution for XLA:CPU (conv_cpu.cc), called through ``jax.ffi``.

build.py compiles the kernel on first use. Where it cannot be built or loaded,
or the arrays are not float32 on a CPU, ``usable()`` is False (after a
one-line warning where one is due) and callers run ``lax.conv_general_dilated``,
which stays the reference.

``conv2d`` is the differentiable layer: NHWC inputs, HWIO kernels, stride 1,
explicit padding. Two handlers serve it: a 'VALID' convolution (the forward
pass, and the input gradient as the convolution of the padded output gradient
with the flipped, transposed kernel) and the kernel gradient. Under ``vmap``
(members of a sweep, DP-SGD's per-example gradients) the batching rule folds
the mapped axis into the batch when the kernel is shared, and runs the members
one after the other when each has its own.
"""

import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxdl.models.native import build

SOURCE = pathlib.Path(__file__).resolve().parent / "conv_cpu.cc"
CONV, KERNEL_GRAD = "jaxdl_conv", "jaxdl_conv_kernel_grad"
_SYMBOLS = ((CONV, "JaxdlConv"), (KERNEL_GRAD, "JaxdlConvKernelGrad"))
KERNEL = build.Kernel(SOURCE, _SYMBOLS, "jaxdl's native convolution kernel",
                      "XLA's convolution")
available, usable = KERNEL.available, KERNEL.usable


def _valid_conv_call(x: jax.Array, w: jax.Array) -> jax.Array:
  b, h, wd, _ = x.shape
  kh, kw, _, f = w.shape
  out = jax.ShapeDtypeStruct((b, h - kh + 1, wd - kw + 1, f), jnp.float32)
  return jax.ffi.ffi_call(CONV, out)(x, w)


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


valid_conv = _fold(_valid_conv_call, shared_last=True)
"""``lax.conv_general_dilated(x, w, (1, 1), 'VALID')`` for NHWC ``x`` and HWIO ``w``."""

kernel_grad = _fold(_kernel_grad_call, shared_last=False)
"""The gradient of ``valid_conv``'s ``sum(y * dy)`` with respect to ``w``: ``[KH, KW, C, F]``."""


@jax.custom_vjp
def _conv(x: jax.Array, w: jax.Array) -> jax.Array:
  return valid_conv(x, w)


def _conv_fwd(x, w):
  return valid_conv(x, w), (x, w)


def _conv_bwd(residuals, dy):
  x, w = residuals
  kh, kw = w.shape[:2]
  # dx[i] = sum_k dy[i - k] w[k]: the 'VALID' convolution of dy, padded by the kernel's
  # size less one, with the kernel flipped and its channel axes swapped.
  padded = jnp.pad(dy, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
  dx = valid_conv(padded, jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2)))
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
  if any(p for pair in padding for p in pair):
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  return _conv(x, w)

