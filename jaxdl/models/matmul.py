"""A dense layer's matmul whose weight gradient XLA:CPU can spread over its threads.

The weight gradient of ``y = x @ W`` is ``x^T @ dy``, a contraction over every
example and time step: for a recurrent layer's input projection at batch 128
and length 100, ``[64, 12800] @ [12800, 256]``. XLA:CPU runs a matrix product
with so few output rows and columns on one thread (2.5 ms here, against 1.06 ms
for the forward ``[12800, 64] @ [64, 256]`` of the same FLOPs). Summing four
independent partial products, one batched matmul over chunks of the long axis,
gives its threads four pieces: 1.4 ms. The result is the same sum in a
different order (float tolerance); on GPU and TPU it is one batched matmul.
"""

import jax
import jax.numpy as jnp

from jaxdl.models import custom_gradients

CHUNKS = 4  # Partial products of the long axis; enough for the threads of a laptop CPU.
MIN_ROWS_TO_SPLIT = 4096  # Below this, one matmul is cheap enough.


def weight_gradient(inputs: jax.Array, cotangent: jax.Array) -> jax.Array:
  """``sum over leading axes of inputs[..., i] * cotangent[..., j]``: ``[in, out]``.

  Args:
    inputs: ``[..., in]``.
    cotangent: ``[..., out]`` with the same leading axes.
  """
  a = inputs.reshape(-1, inputs.shape[-1])
  b = cotangent.reshape(-1, cotangent.shape[-1])
  rows = a.shape[0]
  if rows < MIN_ROWS_TO_SPLIT or rows % CHUNKS:
    return jnp.einsum("ni,nj->ij", a, b)
  partial = jnp.einsum("cni,cnj->cij", a.reshape(CHUNKS, rows // CHUNKS, -1),
                       b.reshape(CHUNKS, rows // CHUNKS, -1))
  return partial.sum(0)


@jax.custom_vjp
def project(inputs: jax.Array, kernel: jax.Array) -> jax.Array:
  """``inputs @ kernel`` for ``[..., in] @ [in, out]``, with a chunked weight gradient."""
  return inputs @ kernel


def _project_fwd(inputs, kernel):
  return inputs @ kernel, (inputs, kernel)


def _project_bwd(residuals, cotangent):
  inputs, kernel = residuals
  d_inputs = (cotangent @ kernel.T).astype(inputs.dtype)
  return d_inputs, weight_gradient(inputs, cotangent).astype(kernel.dtype)


project.defvjp(_project_fwd, _project_bwd)


def dense_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
  """A ``dot_general`` for ``nn.Dense(dot_general=...)``: Dense's contraction via ``project``
  inside jaxdl's train step (custom_gradients.py), plain ``lax.dot_general`` elsewhere."""
  contracting, batch = dimension_numbers
  if (not custom_gradients.enabled() or contracting != ((lhs.ndim - 1,), (0,))
      or batch != ((), ()) or precision is not None or preferred_element_type is not None):
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                               preferred_element_type=preferred_element_type)
  return project(lhs, rhs)
