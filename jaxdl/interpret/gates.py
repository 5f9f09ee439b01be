"""The LSTM's gates over time: what the seed's section 3.4 equations do on real inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn


def lstm_gate_trace(cell_params: dict, x: jax.Array) -> dict[str, np.ndarray]:
  """Runs one LSTMCell over one sequence and records its gates and cell state.

  Args:
    cell_params: an LSTMCell's params (``input_projection`` and ``recurrent_kernel``).
    x: ``<float32>[time, features]``, the layer's inputs (real steps only).

  Returns:
    ``input_gate``, ``forget_gate``, ``output_gate``, ``cell_state``, ``hidden``:
    each ``<float32>[time, H]``.
  """
  w = cell_params["input_projection"]["kernel"]
  b = cell_params["input_projection"]["bias"]
  u = cell_params["recurrent_kernel"]
  hidden = u.shape[0]
  projected = x @ w + b[None, :]

  def step(carry, xp):
    c, h = carry
    i, f, g, o = jnp.split(xp + h @ u, 4)
    i, f, o = nn.sigmoid(i), nn.sigmoid(f), nn.sigmoid(o)
    c = f * c + i * jnp.tanh(g)
    h = o * jnp.tanh(c)
    return (c, h), (i, f, o, c, h)

  zeros = jnp.zeros((hidden,), x.dtype)
  _, (i, f, o, c, h) = jax.lax.scan(step, (zeros, zeros), projected)
  return {k: np.asarray(v) for k, v in zip(
      ("input_gate", "forget_gate", "output_gate", "cell_state", "hidden"), (i, f, o, c, h))}
