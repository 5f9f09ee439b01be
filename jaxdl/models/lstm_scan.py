"""The LSTM recurrence over a whole sequence, with a hand-written backward pass.

Same math as ``LSTMCell`` stepped by ``lax.scan`` (the seed's equations, gates
i, f, c~, o), differentiated by hand rather than by JAX. Why: on XLA:CPU the
recurrence is bound by the cost of each loop iteration, and the autodiff'd
backward pass of a scan (1) accumulates the recurrent kernel's gradient with a
small matmul in every step, (2) saves ten residual stacks per step and (3)
fuses the gates' elementwise work with four slices of one buffer, which
XLA:CPU compiles to slow code inside loops. Here the forward pass keeps the
four gates as separate arrays and saves six stacks; the backward pass does one
matmul per step, emits the pre-activation gradients, and the kernel's gradient
is one large matmul after the loop. Measured on 2 CPU cores, the seed LSTM's
training step runs 1.3x faster (62 -> 46 ms at batch 128; docs/benchmarks.md);
tests check it against the autodiff'd scan.

``recurrence`` builds that differentiable function from two loops, the forward
one and the backward one; ``lstm_scan`` runs them as ``lax.scan`` loops, and
lstm_pallas.py as GPU kernels, around the same residuals and the same
weight-gradient matmul.

Shapes are time-major: T steps, B sequences, H units, gates stacked as
``[..., 4H]`` in the order i, f, c~, o (Keras's, and ``LSTMCell``'s).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxdl.models.matmul import weight_gradient

# (kernel, projected, valid, c0, h0) -> (c_all, h_all, (i, f, g, o)), each [T, B, H].
ForwardLoop = Callable[..., tuple[jax.Array, jax.Array, tuple[jax.Array, ...]]]
# (kernel, valid, c0, c_all, gates, dc_last, dh_last, d_outputs) -> (d_projected, dc0, dh0).
BackwardLoop = Callable[..., tuple[jax.Array, jax.Array, jax.Array]]


def shift_in(first: jax.Array, stack: jax.Array) -> jax.Array:
  """``[first, stack[0], ..., stack[T-2]]``: each step's incoming state."""
  return jnp.concatenate([first[None], stack[:-1]], axis=0)


def scan_forward(kernel, projected, valid, c0, h0):
  """The forward loop on ``lax.scan``: states after every step, and the activated gates."""
  w_i, w_f, w_g, w_o = jnp.split(kernel, 4, axis=-1)
  x_i, x_f, x_g, x_o = jnp.split(projected, 4, axis=-1)

  def step(carry, xs):
    c, h = carry
    xi, xf, xg, xo, ok = xs
    i = jax.nn.sigmoid(xi + h @ w_i)
    f = jax.nn.sigmoid(xf + h @ w_f)
    g = jnp.tanh(xg + h @ w_g)
    o = jax.nn.sigmoid(xo + h @ w_o)
    c_new = f * c + i * g
    h_new = o * jnp.tanh(c_new)
    ok = ok[:, None]
    c_new, h_new = jnp.where(ok, c_new, c), jnp.where(ok, h_new, h)
    return (c_new, h_new), (c_new, h_new, i, f, g, o)

  _, (c_all, h_all, *gates) = jax.lax.scan(step, (c0, h0), (x_i, x_f, x_g, x_o, valid))
  return c_all, h_all, tuple(gates)


def scan_backward(kernel, valid, c0, c_all, gates, dc_last, dh_last, d_outputs):
  """The backward loop on ``lax.scan``: one matmul per step, pre-activation gradients out."""
  kernel_t = kernel.T  # [4H, H], laid out once outside the loop.

  def step(carry, xs):
    dc_next, dh_next = carry
    d_out, c_in, c_new, i, f, g, o, ok = xs
    ok = ok[:, None]
    dh = jnp.where(ok, d_out + dh_next, 0.0)
    tanh_c = jnp.tanh(c_new)
    dc = jnp.where(ok, dc_next, 0.0) + dh * o * (1.0 - tanh_c * tanh_c)
    dz = jnp.concatenate([dc * g * i * (1.0 - i),  # d(pre-activation) of each gate
                          dc * c_in * f * (1.0 - f),
                          dc * i * (1.0 - g * g),
                          dh * tanh_c * o * (1.0 - o)], axis=-1)
    dh_in = dz @ kernel_t + jnp.where(ok, 0.0, dh_next)
    dc_in = jnp.where(ok, dc * f, dc_next)
    return (dc_in, dh_in), dz

  (dc0, dh0), d_projected = jax.lax.scan(
      step, (dc_last, dh_last), (d_outputs, shift_in(c0, c_all), c_all, *gates, valid),
      reverse=True)
  return d_projected, dc0, dh0


def recurrence(forward_loop: ForwardLoop, backward_loop: BackwardLoop) -> Callable:
  """The differentiable LSTM recurrence run by two loops (see ``lstm_scan``'s signature).

  Both loops compute the same things, from the same residuals: the states after
  each step and the activated gates forward, the gates' pre-activation
  gradients backward. The recurrent kernel's gradient is one matmul here, after
  the backward loop, whatever runs the loops.
  """

  def run(kernel, projected, valid, c0, h0):
    return run_fwd(kernel, projected, valid, c0, h0)[0]

  def run_fwd(kernel, projected, valid, c0, h0):
    c_all, h_all, gates = forward_loop(kernel, projected, valid, c0, h0)
    outputs = jnp.where(valid[..., None], h_all, 0.0)
    residuals = (kernel, valid, c0, h0, c_all, h_all, gates)
    return (c_all[-1], h_all[-1], outputs), residuals

  def run_bwd(residuals, cotangents):
    kernel, valid, c0, h0, c_all, h_all, gates = residuals
    d_projected, dc0, dh0 = backward_loop(kernel, valid, c0, c_all, gates, *cotangents)
    d_kernel = weight_gradient(shift_in(h0, h_all), d_projected).astype(kernel.dtype)
    return d_kernel, d_projected, None, dc0, dh0

  run = jax.custom_vjp(run)
  run.defvjp(run_fwd, run_bwd)
  return run


_scan_recurrence = recurrence(scan_forward, scan_backward)


def lstm_scan(kernel: jax.Array, projected: jax.Array, valid: jax.Array, c0: jax.Array,
              h0: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Runs the LSTM over time.

  Args:
    kernel: the recurrent kernel ``[H, 4H]``.
    projected: each step's input part of the gates, ``x_t W_x + b``: ``[T, B, 4H]``.
    valid: ``<bool>[T, B]``; where False the state is held and the output is zero.
    c0, h0: the initial cell and hidden states ``[B, H]``.

  Returns:
    ``(c_last, h_last, outputs)``: the final states ``[B, H]`` and ``[T, B, H]`` outputs.
  """
  return _scan_recurrence(kernel, projected, valid, c0, h0)
