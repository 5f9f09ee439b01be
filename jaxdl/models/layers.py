"""Small building blocks shared by the image models."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.errors import DataError

# Keras's defaults, which the seed's models use: Glorot-uniform kernels, zero biases.
glorot_uniform = nn.initializers.xavier_uniform()


def max_pool(x: jax.Array, window: int = 2) -> jax.Array:
  """Non-overlapping max pooling, 'VALID' like Keras's MaxPooling2D.

  The seed's formula y(i, j) = max over a k x k window, with stride k: trailing
  rows and columns that do not fill a window are dropped. Written as a reshape
  and a max rather than ``nn.max_pool`` because XLA:CPU's backward pass of
  reduce_window (select-and-scatter) is several times slower; the result and,
  away from ties, the gradient are the same.

  Args:
    x: ``<float>[batch, height, width, channels]``.
    window: the pool size and stride k.

  Returns:
    ``<float>[batch, height // k, width // k, channels]``.
  """
  b, h, w, c = x.shape
  ho, wo = h // window, w // window
  x = x[:, :ho * window, :wo * window, :]
  return jnp.max(x.reshape(b, ho, window, wo, window, c), axis=(2, 4))


def require_spatial(x: jax.Array, model: str, layer: str, min_input: int) -> None:
  """Raises a clear error when an image has shrunk to nothing before ``layer``."""
  if x.shape[1] < 1 or x.shape[2] < 1:
    raise DataError(f"{model} cannot take these images: they shrink to {x.shape[1]}x"
                    f"{x.shape[2]} before {layer}; it needs images of at least "
                    f"{min_input}x{min_input} (set data.image_size, e.g. 28)")
