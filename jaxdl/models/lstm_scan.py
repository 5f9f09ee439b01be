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


def cell_step(z: tuple[jax.Array, ...], c: jax.Array, h: jax.Array, ok: jax.Array
              ) -> tuple[jax.Array, jax.Array, tuple[jax.Array, ...]]:
  """One step's elementwise part, shared by every loop that runs the recurrence.

  Args:
    z: the gates' pre-activations ``(z_i, z_f, z_g, z_o)``, each ``[B, H]``.
    c, h: the incoming states ``[B, H]``.
    ok: ``<bool>[B, 1]``; where False the states are held.

  Returns:
    ``(c_new, h_new, (i, f, g, o))``: the states after the step and the activated gates.
  """
  i, f, o = jax.nn.sigmoid(z[0]), jax.nn.sigmoid(z[1]), jax.nn.sigmoid(z[3])
  g = jnp.tanh(z[2])
  c_new = f * c + i * g
  h_new = o * jnp.tanh(c_new)
  return jnp.where(ok, c_new, c), jnp.where(ok, h_new, h), (i, f, g, o)


def gate_gradients(d_out, dc_next, dh_next, c_in, c_new, gates, ok):
  """One backward step's elementwise part, shared by every loop that runs the recurrence.

  Args:
    d_out: the step's output gradient; dc_next, dh_next: the state gradients from the
      step after; c_in, c_new: the cell state before and after the step; gates: the
      activated ``(i, f, g, o)``; all ``[B, H]``. ok: ``<bool>[B, 1]``.

  Returns:
    ``(dz, dc_in, dh_held)``: the gates' pre-activation gradients ``(dz_i, dz_f, dz_g,
    dz_o)``, the cell-state gradient passed back, and the part of the hidden-state
    gradient passed back past a held step (``dz @ kernel.T`` is the rest).
  """
  i, f, g, o = gates
  dh = jnp.where(ok, d_out + dh_next, 0.0)
  tanh_c = jnp.tanh(c_new)
  dc = jnp.where(ok, dc_next, 0.0) + dh * o * (1.0 - tanh_c * tanh_c)
  dz = (dc * g * i * (1.0 - i), dc * c_in * f * (1.0 - f), dc * i * (1.0 - g * g),
        dh * tanh_c * o * (1.0 - o))
  return dz, jnp.where(ok, dc * f, dc_next), jnp.where(ok, 0.0, dh_next)


def scan_forward(kernel, projected, valid, c0, h0):
  """The forward loop on ``lax.scan``: states after every step, and the activated gates."""
  w_i, w_f, w_g, w_o = jnp.split(kernel, 4, axis=-1)
  x_i, x_f, x_g, x_o = jnp.split(projected, 4, axis=-1)

  def step(carry, xs):
    c, h = carry
    xi, xf, xg, xo, ok = xs
    z = (xi + h @ w_i, xf + h @ w_f, xg + h @ w_g, xo + h @ w_o)
    c_new, h_new, gates = cell_step(z, c, h, ok[:, None])
    return (c_new, h_new), (c_new, h_new, *gates)

  _, (c_all, h_all, *gates) = jax.lax.scan(step, (c0, h0), (x_i, x_f, x_g, x_o, valid))
  return c_all, h_all, tuple(gates)


def scan_backward(kernel, valid, c0, c_all, gates, dc_last, dh_last, d_outputs):
  """The backward loop on ``lax.scan``: one matmul per step, pre-activation gradients out."""
  kernel_t = kernel.T  # [4H, H], laid out once outside the loop.

  def step(carry, xs):
    dc_next, dh_next = carry
    d_out, c_in, c_new, i, f, g, o, ok = xs
    dz, dc_in, dh_held = gate_gradients(d_out, dc_next, dh_next, c_in, c_new, (i, f, g, o),
                                        ok[:, None])
    dz = jnp.concatenate(dz, axis=-1)
    return (dc_in, dz @ kernel_t + dh_held), dz

  (dc0, dh0), d_projected = jax.lax.scan(
      step, (dc_last, dh_last), (d_outputs, shift_in(c0, c_all), c_all, *gates, valid),
      reverse=True)
  return d_projected, dc0, dh0


def layer_results(c_all: jax.Array, h_all: jax.Array, valid: jax.Array
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(c_last, h_last, outputs)`` from the states after every step: outputs are zero
  where a step is not valid."""
  return c_all[-1], h_all[-1], jnp.where(valid[..., None], h_all, 0.0)


def autodiff_lstm_scan(kernel, projected, valid, c0, h0):
  """``lstm_scan`` without its hand-written backward pass (JAX differentiates the scan):
  the reference the tests and benchmarks compare every implementation with."""
  c_all, h_all, _ = scan_forward(kernel, projected, valid, c0, h0)
  return layer_results(c_all, h_all, valid)


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
    residuals = (kernel, valid, c0, h0, c_all, h_all, gates)
    return layer_results(c_all, h_all, valid), residuals

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
