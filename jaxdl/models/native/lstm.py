"""jaxdl's native LSTM layer for XLA:CPU (lstm_cpu.cc), called through ``jax.ffi``.

build.py compiles the kernel on first use. Where it cannot be built or loaded
(no compiler, another platform), or the arrays are not float32 on a CPU,
``usable()`` is False after a one-line warning, and callers run the pure-JAX
layer (the input projection, then lstm_scan.py), which stays the reference.

``lstm_layer`` is the differentiable layer (input projection and recurrence);
both handlers are registered for the CPU platform only. Under ``vmap`` (the
members of a vectorized sweep, nested vmaps too) one call takes every member
(``vmap_method="broadcast_all"``: each argument gets the same leading dims),
which spares the copies a loop of calls makes; each member's numbers are bitwise
those of a call of its own.
"""

import pathlib

import jax
import jax.numpy as jnp

from jaxdl.models.native import build

SOURCE = pathlib.Path(__file__).resolve().parent / "lstm_cpu.cc"
FORWARD, BACKWARD = "jaxdl_lstm_forward", "jaxdl_lstm_backward"
_SYMBOLS = ((FORWARD, "JaxdlLstmForward"), (BACKWARD, "JaxdlLstmBackward"))
KERNEL = build.Kernel(SOURCE, _SYMBOLS, "jaxdl's native LSTM kernel",
                      "the pure-JAX LSTM layer")
available, usable = KERNEL.available, KERNEL.usable


def _f32(*shape: int) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(shape, jnp.float32)


def forward(kernel_x: jax.Array, bias: jax.Array, kernel_h: jax.Array, x: jax.Array,
            valid: jax.Array, c0: jax.Array, h0: jax.Array
            ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """The layer over all steps: gates from ``x_t @ kernel_x + bias + h @ kernel_h``.

  Args:
    kernel_x, bias: the input projection ``[D, 4H]``, ``[4H]``.
    kernel_h: the recurrent kernel ``[H, 4H]``.
    x: time-major inputs ``[T, B, D]``.
    valid: ``<bool>[T, B]``; where False the state is held and the output is zero.
    c0, h0: the initial states ``[B, H]``.

  Returns:
    ``(outputs, c_all, h_all, gates)``: ``[T, B, H]`` outputs, the cell and
    hidden states after each step ``[T, B, H]``, and the activated gates i, f,
    g, o ``[T, B, 4H]``.
  """
  KERNEL.require()
  t, b, _ = x.shape
  h = kernel_h.shape[0]
  call = jax.ffi.ffi_call(FORWARD, (_f32(t, b, h), _f32(t, b, h), _f32(t, b, h),
                                    _f32(t, b, 4 * h)), vmap_method="broadcast_all")
  return call(kernel_x, bias, kernel_h, x, valid, c0, h0)


def backward(kernel_x: jax.Array, kernel_h: jax.Array, valid: jax.Array, x: jax.Array,
             c0: jax.Array, h0: jax.Array, c_all: jax.Array, h_all: jax.Array,
             gates: jax.Array, dc_last: jax.Array, dh_last: jax.Array,
             d_outputs: jax.Array) -> tuple[jax.Array, ...]:
  """From the inputs, ``forward``'s residuals and the cotangents of ``(c_last, h_last,
  outputs)``: ``(dx [T, B, D], d_bias [4H], d_kernel_x [D, 4H], d_kernel_h [H, 4H],
  dc0 [B, H], dh0 [B, H])``."""
  KERNEL.require()
  t, b, d = x.shape
  h = kernel_h.shape[0]
  call = jax.ffi.ffi_call(BACKWARD, (_f32(t, b, d), _f32(4 * h), _f32(d, 4 * h),
                                     _f32(h, 4 * h), _f32(b, h), _f32(b, h)),
                          vmap_method="broadcast_all")
  return call(kernel_x, kernel_h, valid, x, c0, h0, c_all, h_all, gates, dc_last, dh_last,
              d_outputs)


@jax.custom_vjp
def lstm_layer(kernel_x: jax.Array, bias: jax.Array, kernel_h: jax.Array, x: jax.Array,
               valid: jax.Array, c0: jax.Array, h0: jax.Array
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """An LSTM layer over time in the kernel, differentiable in reverse mode.

  The same function as ``LSTMCell.project`` followed by ``lstm_scan`` (the
  arguments are ``forward``'s). Returns ``(c_last, h_last, outputs)``: the final
  states ``[B, H]`` and the ``[T, B, H]`` outputs.
  """
  return _lstm_layer_fwd(kernel_x, bias, kernel_h, x, valid, c0, h0)[0]


def _lstm_layer_fwd(kernel_x, bias, kernel_h, x, valid, c0, h0):
  outputs, c_all, h_all, gates = forward(kernel_x, bias, kernel_h, x, valid, c0, h0)
  residuals = (kernel_x, kernel_h, x, valid, c0, h0, c_all, h_all, gates)
  return (c_all[-1], h_all[-1], outputs), residuals


def _lstm_layer_bwd(residuals, cotangents):
  kernel_x, kernel_h, x, valid, c0, h0, c_all, h_all, gates = residuals
  dx, d_bias, d_kernel_x, d_kernel_h, dc0, dh0 = backward(
      kernel_x, kernel_h, valid, x, c0, h0, c_all, h_all, gates, *cotangents)
  return d_kernel_x, d_bias, d_kernel_h, dx, None, dc0, dh0


lstm_layer.defvjp(_lstm_layer_fwd, _lstm_layer_bwd)
