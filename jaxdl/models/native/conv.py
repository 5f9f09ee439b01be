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

``conv_relu_max_pool`` is a convolution with its bias, relu and max pooling in
one layer: its forward handler writes only the pooled values and an int8 index
of each window's first maximum, and its kernel gradient reads the pooled
gradient through that index (models/conv_pool.py makes a Flax layer of it).
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
CONV_RELU_POOL, POOL_KERNEL_GRAD = "jaxdl_conv_relu_pool", "jaxdl_conv_pool_kernel_grad"
_SYMBOLS = ((CONV, "JaxdlConv"), (KERNEL_GRAD, "JaxdlConvKernelGrad"),
            (CONV_RELU_POOL, "JaxdlConvReluPool"), (POOL_KERNEL_GRAD, "JaxdlConvPoolKernelGrad"))
KERNEL = build.Kernel(SOURCE, _SYMBOLS, "jaxdl's native convolution kernel",
                      "XLA's convolution")
available, usable = KERNEL.available, KERNEL.usable


def output_hw(x_shape: Sequence[int], w_shape: Sequence[int],
              padding: Sequence[tuple[int, int]]) -> tuple[int, int]:
  """Height and width of a stride-1 convolution's output, NHWC ``x`` and HWIO ``w``:
  each ``size + before + after - kernel_size + 1``."""
  height, width = (size + lo + hi - k + 1
                   for size, (lo, hi), k in zip(x_shape[1:3], padding, w_shape[:2]))
  return height, width


def _padded_conv_call(x: jax.Array, w: jax.Array, padding: Padding) -> jax.Array:
  (top, bottom), (left, right) = padding
  out = jax.ShapeDtypeStruct((x.shape[0], *output_hw(x.shape, w.shape, padding), w.shape[3]),
                             jnp.float32)
  return jax.ffi.ffi_call(CONV, out)(x, w, pad_top=np.int64(top), pad_bottom=np.int64(bottom),
                                      pad_left=np.int64(left), pad_right=np.int64(right))


def _kernel_grad_call(x: jax.Array, dy: jax.Array) -> jax.Array:
  _, h, wd, c = x.shape
  _, ho, wo, f = dy.shape
  out = jax.ShapeDtypeStruct((h - ho + 1, wd - wo + 1, c, f), jnp.float32)
  return jax.ffi.ffi_call(KERNEL_GRAD, out)(x, dy)


def _fold(call, shared_rest: bool):
  """``call(a, *rest)`` batched over a leading axis of ``a`` (and of ``rest`` unless ``shared_rest``).

  Where only ``a`` is mapped and the rest are shared, the mapped axis joins the
  batch axis (one call); where ``call`` returns a per-batch result (``shared_rest``
  is False: the kernel gradient), or the rest are mapped too, the members run one
  after the other (``lax.map``), each a whole call over its batch.
  """
  batched = jax.custom_batching.custom_vmap(call)

  @batched.def_vmap
  def rule(axis_size, in_batched, a, *rest):
    if shared_rest and in_batched[0] and not any(in_batched[1:]):
      folded = batched(a.reshape(-1, *a.shape[2:]), *rest)
      unfolded = jax.tree.map(lambda y: y.reshape(axis_size, -1, *y.shape[1:]), folded)
      return unfolded, jax.tree.map(lambda _: True, unfolded)
    args = [v if mapped else jnp.broadcast_to(v, (axis_size, *v.shape))
            for v, mapped in zip((a, *rest), in_batched)]
    out = jax.lax.map(lambda args: batched(*args), args)
    return out, jax.tree.map(lambda _: True, out)

  return batched


@functools.cache
def padded_conv(padding: Padding):
  """``lax.conv_general_dilated(x, w, (1, 1), padding)`` for NHWC ``x`` and HWIO ``w``,
  as a function of ``(x, w)`` (one per padding, which the kernel takes as attributes)."""
  return _fold(functools.partial(_padded_conv_call, padding=padding), shared_rest=True)


def valid_conv(x: jax.Array, w: jax.Array) -> jax.Array:
  """``lax.conv_general_dilated(x, w, (1, 1), 'VALID')`` for NHWC ``x`` and HWIO ``w``."""
  return padded_conv(((0, 0), (0, 0)))(x, w)


kernel_grad = _fold(_kernel_grad_call, shared_rest=False)
"""The gradient of ``valid_conv``'s ``sum(y * dy)`` with respect to ``w``: ``[KH, KW, C, F]``."""


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x: jax.Array, w: jax.Array, padding: Padding) -> jax.Array:
  return padded_conv(padding)(x, w)


def _conv_fwd(x, w, padding):
  return padded_conv(padding)(x, w), (x, w)


def _input_grad(padding: Padding, w: jax.Array, dy: jax.Array) -> jax.Array:
  """The gradient of ``sum(padded_conv(padding)(x, w) * dy)`` with respect to ``x``."""
  kh, kw = w.shape[:2]
  (top, bottom), (left, right) = padding
  # dx[i] = sum_k dy[i + top - k] w[k]: the convolution of dy, padded by the kernel's size
  # less the forward padding, with the kernel flipped and its channel axes swapped.
  dx_padding = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
  return padded_conv(dx_padding)(dy, jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2)))


def _padded(x: jax.Array, padding: Padding) -> jax.Array:
  """``x`` with its zeros written out, as the kernel gradients read it."""
  if any(p for pair in padding for p in pair):
    return jnp.pad(x, ((0, 0), *padding, (0, 0)))
  return x


def _conv_bwd(padding, residuals, dy):
  x, w = residuals
  return _input_grad(padding, w, dy), kernel_grad(_padded(x, padding), dy)


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
  x, padding = _within_reach(x, w, padding)
  return _conv(x, w, padding)


def _within_reach(x: jax.Array, w: jax.Array, padding: Sequence[tuple[int, int]]
                  ) -> tuple[jax.Array, Padding]:
  """``(x, padding)``, with padding beyond the kernel's reach written into ``x``.

  The kernel skips padding up to the kernel's size less one; more is written out,
  so that the input gradient's padding (the kernel's size less one, less this) is
  not negative.
  """
  KERNEL.require()
  padding = tuple((int(a), int(b)) for a, b in padding)
  if any(p > k - 1 for pair, k in zip(padding, w.shape[:2]) for p in pair):
    return jnp.pad(x, ((0, 0), *padding, (0, 0))), ((0, 0), (0, 0))
  return x, padding


def _conv_relu_pool_call(x: jax.Array, w: jax.Array, bias: jax.Array, padding: Padding,
                         window: int) -> tuple[jax.Array, jax.Array]:
  (top, bottom), (left, right) = padding
  height, width = output_hw(x.shape, w.shape, padding)
  shape = (x.shape[0], height // window, width // window, w.shape[3])
  out = (jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(shape, jnp.int8))
  return jax.ffi.ffi_call(CONV_RELU_POOL, out)(
      x, w, bias, pad_top=np.int64(top), pad_bottom=np.int64(bottom), pad_left=np.int64(left),
      pad_right=np.int64(right), window=np.int64(window))


@functools.cache
def _pooled_conv(padding: Padding, window: int):
  """``(x, w, bias) -> (pooled, index)``: the fused layer's forward handler, batchable."""
  return _fold(functools.partial(_conv_relu_pool_call, padding=padding, window=window),
               shared_rest=True)


def _unpool(d_pooled: jax.Array, index: jax.Array, window: int, height: int, width: int
            ) -> jax.Array:
  """``[B, Hp, Wp, F]`` gradients put back at each window's maximum (``index``), zeros elsewhere:
  ``[B, height, width, F]``, the rows and columns that no window covers zero too."""
  b, hp, wp, f = d_pooled.shape
  taps = [jnp.where(index == d, d_pooled, 0.0) for d in range(window * window)]
  dz = jnp.stack(taps, axis=3).reshape(b, hp, wp, window, window, f)
  dz = dz.transpose(0, 1, 3, 2, 4, 5).reshape(b, hp * window, wp * window, f)
  return jnp.pad(dz, ((0, 0), (0, height - hp * window), (0, width - wp * window), (0, 0)))


def _pool_kernel_grad_call(x: jax.Array, d_pooled: jax.Array, index: jax.Array,
                           kernel_size: tuple[int, int], window: int) -> jax.Array:
  out = jax.ShapeDtypeStruct((*kernel_size, x.shape[3], d_pooled.shape[3]), jnp.float32)
  return jax.ffi.ffi_call(POOL_KERNEL_GRAD, out)(x, d_pooled, index, window=np.int64(window))


@functools.cache
def _pool_kernel_grad(kernel_size: tuple[int, int], window: int):
  """``(x, d_pooled, index) -> dw``: the fused layer's kernel gradient, read from the pooled
  gradient at the index (no full-size gradient), for ``x`` as padded; batchable."""
  return _fold(functools.partial(_pool_kernel_grad_call, kernel_size=kernel_size,
                                 window=window), shared_rest=False)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _conv_relu_pool(x, w, bias, padding: Padding, window: int) -> jax.Array:
  return _pooled_conv(padding, window)(x, w, bias)[0]


def _conv_relu_pool_fwd(x, w, bias, padding, window):
  pooled, index = _pooled_conv(padding, window)(x, w, bias)
  return pooled, (x, w, index)


def _conv_relu_pool_bwd(padding, window, residuals, d_pooled):
  x, w, index = residuals
  height, width = output_hw(x.shape, w.shape, padding)
  d_bias = jnp.sum(jnp.where(index >= 0, d_pooled, 0.0), axis=(0, 1, 2))
  # Only the input gradient needs the full-size gradient (none for a model's first layer,
  # where XLA drops both as unused).
  dx = _input_grad(padding, w, _unpool(d_pooled, index, window, height, width))
  dw = _pool_kernel_grad(w.shape[:2], window)(_padded(x, padding), d_pooled, index)
  return dx, dw, d_bias


_conv_relu_pool.defvjp(_conv_relu_pool_fwd, _conv_relu_pool_bwd)


def conv_relu_max_pool(x: jax.Array, w: jax.Array, bias: jax.Array,
                       padding: Sequence[tuple[int, int]] = ((0, 0), (0, 0)),
                       window: int = 2) -> jax.Array:
  """``max_pool(relu(conv2d(x, w, padding) + bias), window)`` in one kernel, differentiable
  in reverse mode.

  The forward pass writes only the pooled values and each window's index of its
  first maximum (int8); the backward pass puts the gradient back at those
  indices and runs the convolution's two gradients. Max pooling is 'VALID' with
  stride ``window``, its gradient to the first maximum of each window (as
  ``layers.max_pool``), and relu's derivative at zero is zero.

  Args:
    x: ``<float32>[batch, height, width, in_channels]``.
    w: ``<float32>[kernel_height, kernel_width, in_channels, out_channels]``.
    bias: ``<float32>[out_channels]``.
    padding: ``((top, bottom), (left, right))`` zeros around ``x``.
    window: the pool size and stride k (1 to 11).

  Returns:
    ``[batch, conv_height // k, conv_width // k, out_channels]``.
  """
  x, padding = _within_reach(x, w, padding)
  return _conv_relu_pool(x, w, bias, padding, int(window))
