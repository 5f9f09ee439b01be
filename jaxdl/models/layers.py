"""Small building blocks shared by the image models."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.errors import DataError

# Keras's defaults, which the seed's models use: Glorot-uniform kernels, zero biases.
glorot_uniform = nn.initializers.xavier_uniform()


def max_pool(x: jax.Array, window: int = 2) -> jax.Array:
  """Non-overlapping max pooling, 'VALID' like Keras's MaxPooling2D.

  The seed's formula y(i, j) = max over a k x k window, with stride k: trailing
  rows and columns that do not fill a window are dropped. The gradient goes to
  the first maximum of each window (row-major), as in TensorFlow's and PyTorch's
  max pooling, and not split between tied maxima as JAX's ``max`` would split it.
  Written as a reshape and a max with its own backward pass (one elementwise
  pass) rather than ``nn.max_pool``: XLA:CPU's backward pass of reduce_window
  (select-and-scatter) is several times slower, and that of ``jnp.max`` counts
  the ties in an extra reduction over the input.

  Args:
    x: ``<float>[batch, height, width, channels]``.
    window: the pool size and stride k.

  Returns:
    ``<float>[batch, height // k, width // k, channels]``.
  """
  _, h, w, _ = x.shape
  return _max_pool(x[:, :h // window * window, :w // window * window, :], window)


def _windows(x: jax.Array, window: int) -> jax.Array:
  """``[b, h, w, c]`` -> ``[b, h / k, k, w / k, k, c]``: each k x k window on axes 2 and 4."""
  b, h, w, c = x.shape
  return x.reshape(b, h // window, window, w // window, window, c)


def _first_maxima(windows: jax.Array, pooled: jax.Array) -> jax.Array:
  """``<bool>`` like ``windows``: True at the first (row-major) maximum of each window."""
  taken = jnp.zeros(pooled.shape, bool)
  rows = []
  for i in range(windows.shape[2]):
    row = []
    for j in range(windows.shape[4]):
      first = (windows[:, :, i, :, j, :] == pooled) & ~taken
      taken = taken | first
      row.append(first)
    rows.append(jnp.stack(row, axis=3))  # [b, h / k, w / k, k, c]
  return jnp.stack(rows, axis=2)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_pool(x: jax.Array, window: int) -> jax.Array:
  # The maximum of the k x k strided slices, not jnp.max over _windows: XLA:CPU fuses
  # these with the layer before (bias, relu) into one pass that writes only the pooled
  # output, where a reduction reads back a full-size intermediate.
  slices = [x[:, i::window, j::window, :] for i in range(window) for j in range(window)]
  return functools.reduce(jnp.maximum, slices)


@_max_pool.defjvp
def _max_pool_jvp(window, primals, tangents):
  # A JVP, not a VJP: JAX transposes it for reverse mode, and forward mode keeps working.
  (x,), (t,) = primals, tangents
  pooled = _max_pool(x, window)
  first = _first_maxima(_windows(x, window), pooled)
  t_windows = _windows(t, window)
  return pooled, jnp.sum(jnp.where(first, t_windows, jnp.zeros_like(t_windows)), axis=(2, 4))


def require_spatial(x: jax.Array, model: str, layer: str, min_input: int) -> None:
  """Raises a clear error when an image has shrunk to nothing before ``layer``."""
  if x.shape[1] < 1 or x.shape[2] < 1:
    raise DataError(f"{model} cannot take these images: they shrink to {x.shape[1]}x"
                    f"{x.shape[2]} before {layer}; it needs images of at least "
                    f"{min_input}x{min_input} (set data.image_size, e.g. 28)")
