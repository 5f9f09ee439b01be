"""The vanishing gradient made visible: ||dL/dh_t|| for every time step t.

Zeros added to the first recurrent layer's states change nothing in the
forward pass, and the gradient of the loss with respect to them is exactly
dL/dh_t, including every path through later states (``jax.grad``, no
approximation). For a vanilla RNN the seed (1.2.1) predicts that it decays
geometrically as t moves away from the end; the LSTM's gates (3.4) should
keep it from vanishing.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.models.sequence import SequenceModel
from jaxdl.training.objectives import OBJECTIVES


def hidden_state_gradient_norms(model: SequenceModel, params, inputs: np.ndarray,
                                targets: np.ndarray, task: str = "regression") -> np.ndarray:
  """Mean over the batch of ||dL/dh_t||_2 for t = 1..T.

  Args:
    model: a SequenceModel whose first layer is unidirectional.
    params: its parameters.
    inputs: ``<float32>[batch, time, features]``.
    targets: ``[batch]`` regression targets or class ids.
    task: 'regression' or 'classification' (the loss is the mean over the batch).

  Returns:
    ``<float64>[time]``.
  """
  batch, time = inputs.shape[:2]
  hidden = model.hidden_sizes[0]
  objective = OBJECTIVES[task].fn
  data = {"label": jnp.asarray(targets), "mask": jnp.ones((batch,), jnp.float32)}

  def loss(offsets):
    outputs = model.apply({"params": params}, jnp.asarray(inputs), hidden_offsets=offsets)
    _, sums = objective(outputs, data)
    return sums["loss"] / batch

  grads = jax.grad(loss)(jnp.zeros((batch, time, hidden), jnp.float32))
  return np.asarray(jnp.linalg.norm(grads, axis=-1).mean(axis=0), np.float64)
