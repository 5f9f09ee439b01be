"""Recurrent cells and layers on ``jax.lax.scan``: the seed's RNN and LSTM equations, and GRU.

Each cell splits its step in two: ``project`` (the input part, ``x W + b``,
for all time steps at once: one matmul outside the scan) and ``step`` (the
recurrent part, a pure function of the recurrent parameters, the carry and
one step's projected input). Gates are fused: one input kernel of width
``num_gates * hidden`` and one recurrent kernel ``[hidden, num_gates * hidden]``.

Shapes are batch-major, ``<float32>[batch, time, features]``. A sequence may
carry its length: steps past it leave the state unchanged and output zeros,
so a padded batch gives the same per-example results as each example alone.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.models import custom_gradients, per_device
from jaxdl.models.layers import glorot_uniform
from jaxdl.models.native import lstm as native_lstm
from jaxdl.models.per_device import BATCH_FIRST, SHARED, TIME_MAJOR
from jaxdl.models.lstm_scan import lstm_scan
from jaxdl.models.matmul import dense_dot_general

Carry = Any
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh, "relu": nn.relu, "sigmoid": nn.sigmoid}


class GatedCell(nn.Module):
  """What every cell shares: its gates in one matmul, and the ``(carry, x) -> (carry, y)`` contract.

  A subclass sets ``num_gates`` and creates, in ``setup``, ``input_projection``
  (a Dense of width ``num_gates * H``) and ``recurrent_kernel``; it defines
  ``step_fn``, and ``recurrent_params`` if it has more recurrent parameters.
  The carry is ``h <float>[batch, H]`` unless the subclass says otherwise.
  """

  hidden_size: int
  num_gates: ClassVar[int] = 1

  def project(self, x: jax.Array) -> jax.Array:
    """The input part of every gate, ``x W_x + b``: ``[..., features] -> [..., gates * H]``."""
    return self.input_projection(x)

  def recurrent_params(self) -> dict[str, jax.Array]:
    return {"kernel": self.recurrent_kernel}

  def step_fn(self) -> Callable:
    """A pure ``step(recurrent_params, carry, projected_x) -> (carry, h)``."""
    raise NotImplementedError

  def initialize_carry(self, batch: int, dtype=jnp.float32) -> Carry:
    return jnp.zeros((batch, self.hidden_size), dtype)

  def __call__(self, carry: Carry, x: jax.Array) -> tuple[Carry, jax.Array]:
    """One step: ``(carry, x [batch, features]) -> (carry, h [batch, H])``."""
    return self.step_fn()(self.recurrent_params(), carry, self.project(x))

  def _recurrent_kernel(self) -> jax.Array:
    h = self.hidden_size
    # float32 like Dense's parameters, also where JAX runs with 64-bit floats enabled.
    return self.param("recurrent_kernel", nn.initializers.orthogonal(), (h, self.num_gates * h),
                      jnp.float32)


class SimpleRNNCell(GatedCell):
  """The seed's vanilla RNN (section 3.3): h_t = act(W_xh x_t + W_hh h_{t-1} + b_h).

  Attributes:
    hidden_size: H, the state's width.
    activation: 'tanh' (default; the seed writes a generic sigma), 'relu' or 'sigmoid'.
  """

  activation: str = "tanh"
  num_gates: ClassVar[int] = 1

  def setup(self):
    self.input_projection = nn.Dense(self.hidden_size, kernel_init=glorot_uniform)
    self.recurrent_kernel = self._recurrent_kernel()

  def step_fn(self) -> Callable:
    act = ACTIVATIONS[self.activation]

    def step(params, h, xp):
      h = act(xp + h @ params["kernel"])
      return h, h

    return step


class LSTMCell(GatedCell):
  """The seed's LSTM (section 3.4), gates in Keras's order i, f, c~, o.

    i_t = sigmoid(W_xi x_t + W_hi h_{t-1} + b_i)
    f_t = sigmoid(W_xf x_t + W_hf h_{t-1} + b_f)
    o_t = sigmoid(W_xo x_t + W_ho h_{t-1} + b_o)
    c~_t = tanh(W_xc x_t + W_hc h_{t-1} + b_c)
    C_t = f_t * C_{t-1} + i_t * c~_t
    h_t = o_t * tanh(C_t)

  The carry is ``(C, h)``. Kernels are Glorot-uniform, the recurrent kernel
  orthogonal and the forget-gate bias ``forget_bias`` (Keras's unit_forget_bias).

  Attributes:
    hidden_size: H.
    forget_bias: initial b_f (1.0 helps gradients flow early in training).
  """

  forget_bias: float = 1.0
  num_gates: ClassVar[int] = 4

  def setup(self):
    h = self.hidden_size

    def bias_init(key, shape, dtype=jnp.float32):
      del key
      return jnp.zeros(shape, dtype).at[h:2 * h].set(self.forget_bias)

    # dense_dot_general: the kernel's gradient, a contraction over batch x time, in chunks.
    self.input_projection = nn.Dense(4 * h, kernel_init=glorot_uniform, bias_init=bias_init,
                                     dot_general=dense_dot_general)
    self.recurrent_kernel = self._recurrent_kernel()

  def step_fn(self) -> Callable:

    def step(params, carry, xp):
      c, h = carry
      z = xp + h @ params["kernel"]
      i, f, g, o = jnp.split(z, 4, axis=-1)
      c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
      h = nn.sigmoid(o) * jnp.tanh(c)
      return (c, h), h

    return step

  def initialize_carry(self, batch: int, dtype=jnp.float32) -> Carry:
    zeros = jnp.zeros((batch, self.hidden_size), dtype)
    return (zeros, zeros)


class GRUCell(GatedCell):
  """GRU (Cho et al. 2014) in the "reset after" form of Keras, PyTorch and cuDNN.

    z_t = sigmoid(W_xz x_t + b_xz + U_z h_{t-1} + b_hz)
    r_t = sigmoid(W_xr x_t + b_xr + U_r h_{t-1} + b_hr)
    n_t = tanh(W_xn x_t + b_xn + r_t * (U_n h_{t-1} + b_hn))
    h_t = z_t * h_{t-1} + (1 - z_t) * n_t

  Applying r after the recurrent matmul lets all three gates share one matmul.

  Attributes:
    hidden_size: H.
  """

  num_gates: ClassVar[int] = 3

  def setup(self):
    h = self.hidden_size
    self.input_projection = nn.Dense(3 * h, kernel_init=glorot_uniform)
    self.recurrent_kernel = self._recurrent_kernel()
    self.recurrent_bias = self.param("recurrent_bias", nn.initializers.zeros, (3 * h,),
                                     jnp.float32)

  def recurrent_params(self) -> dict[str, jax.Array]:
    return {"kernel": self.recurrent_kernel, "bias": self.recurrent_bias}

  def step_fn(self) -> Callable:

    def step(params, h, xp):
      hp = h @ params["kernel"] + params["bias"][None, :]  # h is [batch, H].
      xz, xr, xn = jnp.split(xp, 3, axis=-1)
      hz, hr, hn = jnp.split(hp, 3, axis=-1)
      z = nn.sigmoid(xz + hz)
      r = nn.sigmoid(xr + hr)
      n = jnp.tanh(xn + r * hn)
      h = z * h + (1.0 - z) * n
      return h, h

    return step


CELLS = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}
# Builds a cell from its width; the layers call it with (hidden_size, name=...).
CellFactory = Callable[..., GatedCell]


def cell_factory(kind: str, *, activation: str = "tanh", forget_bias: float = 1.0) -> CellFactory:
  """The one place a cell's name and options become a cell: 'rnn', 'lstm' or 'gru'.

  ``activation`` is the simple RNN's, ``forget_bias`` the LSTM's (others ignore them).
  """
  if kind not in CELLS:
    raise ValueError(f"unknown cell {kind!r}; choose one of {', '.join(CELLS)}")
  options = {"rnn": {"activation": activation}, "lstm": {"forget_bias": forget_bias}}.get(kind, {})
  return functools.partial(CELLS[kind], **options)


def reverse_padded(x: jax.Array, lengths: jax.Array | None) -> jax.Array:
  """Reverses each sequence within its length, leaving padding in place.

  ``x[b, t]`` moves to ``x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]``; the
  map is its own inverse, so it also undoes itself on the outputs.

  Args:
    x: ``[batch, time, ...]``.
    lengths: ``<int32>[batch]``, or None when every sequence fills the time axis.
  """
  if lengths is None:
    return jnp.flip(x, axis=1)
  t = jnp.arange(x.shape[1])[None, :]
  index = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
  return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)


def _last_hidden(carry: Carry) -> jax.Array:
  return carry[1] if isinstance(carry, tuple) else carry


class RecurrentLayer(nn.Module):
  """Runs a cell over time with ``jax.lax.scan``.

  Attributes:
    cell: the cell to run: a cell class or factory (``cell_factory``), called
      with ``(hidden_size, name="cell")``.
    hidden_size: H.
    return_sequences: output every step ``[batch, time, H]`` instead of the final
      state ``[batch, H]`` (the state after each sequence's last real step).
    reverse: run from the last real step to the first (outputs stay aligned
      with the inputs).
    unroll: time steps per scan iteration (a speed knob; the math is the same).
    lstm_vjp: run an LSTM cell through ``lstm_scan`` (a hand-written backward
      pass, same math, faster) inside jaxdl's train step (custom_gradients.py)
      unless ``hidden_offsets`` are given; False, or any other context, uses JAX's
      autodiff of the scan (the reference the tests compare with, and what
      forward-mode differentiation needs). ``unroll`` applies to the autodiff path
      only (on XLA:CPU it measured slower).
    lstm_kernel: what runs an LSTM layer where ``lstm_vjp`` applies: 'xla'
      (the input projection, then ``lstm_scan``), 'native' (both inside
      jaxdl's C++ kernel, native/lstm.py; float32 on CPU; elsewhere, or where it
      cannot be built, 'xla' after a one-line warning), 'pallas' (the input
      projection, then the recurrence in two Pallas kernels, lstm_pallas.py;
      float32, H <= 64, on an NVIDIA GPU of compute capability 8.0 or newer; elsewhere
      'xla' after a one-line warning) or 'auto' (native for float32 on CPU, Pallas where
      it applies on a GPU, silently 'xla' for anything else; a failed native build
      still warns). Same math to float tolerance, not bitwise.
  """

  cell: CellFactory
  hidden_size: int
  return_sequences: bool = False
  reverse: bool = False
  unroll: int = 1
  lstm_vjp: bool = True
  lstm_kernel: str = "auto"

  @nn.compact
  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None,
               hidden_offsets: jax.Array | None = None) -> jax.Array:
    """Args:
      inputs: ``<float32>[batch, time, features]``.
      lengths: ``<int32>[batch]`` real steps per sequence (None: all steps are real).
      hidden_offsets: optional ``[batch, time, H]`` added to each step's output
        state before it is carried on; zeros leave the result unchanged, and the
        gradient with respect to them is dL/dh_t (for gradient-flow studies).

    Returns:
      ``[batch, time, H]`` if ``return_sequences`` else ``[batch, H]``.
    """
    chex.assert_rank(inputs, 3)
    batch, time = inputs.shape[:2]
    cell = self.cell(self.hidden_size, name="cell")
    x = reverse_padded(inputs, lengths) if self.reverse else inputs
    valid = (jnp.ones((batch, time), bool) if lengths is None
             else jnp.arange(time)[None, :] < lengths[:, None])
    params = cell.recurrent_params()
    time_major = lambda a: jnp.swapaxes(a, 0, 1)
    if (isinstance(cell, LSTMCell) and self.lstm_vjp and custom_gradients.enabled()
        and hidden_offsets is None):
      c_last, h_last, outputs = self._custom_gradient_lstm(cell, time_major(x),
                                                           time_major(valid))
      return self._finish((c_last, h_last), time_major(outputs), lengths)
    projected = cell.project(x)  # All time steps in one matmul.
    step = cell.step_fn()
    offsets = (jnp.zeros((batch, time, self.hidden_size), projected.dtype)
               if hidden_offsets is None else hidden_offsets)
    if self.reverse and hidden_offsets is not None:
      offsets = reverse_padded(offsets, lengths)

    def body(carry, xs):
      xp, ok, offset = xs
      new_carry, h = step(params, carry, xp)
      h = h + offset
      new_carry = (new_carry[0], h) if isinstance(new_carry, tuple) else h
      ok = ok[:, None]
      carry = jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new_carry, carry)
      return carry, jnp.where(ok, h, 0.0)

    carry, outputs = jax.lax.scan(
        body, cell.initialize_carry(batch, projected.dtype),
        (time_major(projected), time_major(valid), time_major(offsets)), unroll=self.unroll)
    return self._finish(carry, time_major(outputs), lengths)

  def _custom_gradient_lstm(self, cell: LSTMCell, x: jax.Array, valid: jax.Array
                            ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The LSTM over time-major ``x [T, B, D]`` by the kernel ``lstm_kernel`` picks:
    ``(c_last, h_last, outputs [T, B, H])``."""
    params = cell.recurrent_params()
    if (self.lstm_kernel in ("auto", "native") and not self.is_initializing()
        and native_lstm.usable(x.dtype, quiet=self.lstm_kernel == "auto")):
      # The input projection runs inside the kernel, a step at a time.
      c0, h0 = cell.initialize_carry(x.shape[1], x.dtype)
      dense = cell.input_projection.variables["params"]
      layer = per_device.over_batch(  # Each device on its own sequences.
          native_lstm.lstm_layer, per_device.mesh_for(x.shape[1]),
          (SHARED,) * 3 + (TIME_MAJOR, TIME_MAJOR, BATCH_FIRST, BATCH_FIRST),
          (BATCH_FIRST, BATCH_FIRST, TIME_MAJOR))
      return layer(dense["kernel"], dense["bias"], params["kernel"], x, valid, c0, h0)
    # Projected straight into time-major order: the [T, B, 4H] gate inputs are never
    # transposed (nor their gradient), only the narrower inputs and outputs.
    projected = cell.project(x)
    c0, h0 = cell.initialize_carry(x.shape[1], projected.dtype)
    if self.lstm_kernel == "pallas" or (self.lstm_kernel == "auto"
                                        and jax.default_backend() == "gpu"):
      from jaxdl.models import lstm_pallas  # Pallas's import (0.1 s) only where it may run.
      if lstm_pallas.usable(projected.dtype, self.hidden_size,
                            quiet=self.lstm_kernel == "auto"):
        return lstm_pallas.lstm_recurrence(params["kernel"], projected, valid, c0, h0,
                                           batch_mesh=custom_gradients.batch_mesh())
    return lstm_scan(params["kernel"], projected, valid, c0, h0)

  def _finish(self, carry: Carry, outputs: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """The layer's result from the final carry and the batch-major outputs."""
    if not self.return_sequences:
      return _last_hidden(carry)
    return reverse_padded(outputs, lengths) if self.reverse else outputs


class Bidirectional(nn.Module):
  """A forward and a backward layer, outputs concatenated on the feature axis.

  Attributes:
    forward_layer: a RecurrentLayer with reverse=False.
    backward_layer: the same with reverse=True.
  """

  forward_layer: RecurrentLayer
  backward_layer: RecurrentLayer

  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    return jnp.concatenate([self.forward_layer(inputs, lengths),
                            self.backward_layer(inputs, lengths)], axis=-1)


class StackFields(nn.Module):
  """The settings of a recurrent stack, shared by the models built on one.

  Attributes:
    cell: the cell of every layer (a class or ``cell_factory``'s result); the
      seed's LSTM by default.
    hidden_sizes: one H per layer (the seed's model: (64, 64)).
    bidirectional: wrap each layer in Bidirectional.
    dropout_rate: dropout between layers (and, in the models, before the head).
    unroll, lstm_vjp, lstm_kernel: passed to every layer (see RecurrentLayer).
  """

  cell: CellFactory = LSTMCell
  hidden_sizes: Sequence[int] = (64, 64)
  bidirectional: bool = False
  dropout_rate: float = 0.0
  unroll: int = 1
  lstm_vjp: bool = True
  lstm_kernel: str = "auto"

  def stack_fields(self) -> dict[str, Any]:
    return {f: getattr(self, f) for f in ("cell", "hidden_sizes", "bidirectional",
                                          "dropout_rate", "unroll", "lstm_vjp", "lstm_kernel")}


class RecurrentStack(StackFields):
  """Stacked recurrent layers; every layer but the last returns sequences.

  Attributes (besides StackFields'):
    return_sequences: the last layer's outputs at every step.
  """

  return_sequences: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array | None = None, *,
               train: bool = False, hidden_offsets: jax.Array | None = None) -> jax.Array:
    """Maps ``[batch, time, features]`` to ``[batch, H']`` (or ``[batch, time, H']``).

    ``hidden_offsets`` (``[batch, time, H]``) go to the first layer (see
    RecurrentLayer): the gradient with respect to them is dL/dh_t of that layer.
    """
    if hidden_offsets is not None and self.bidirectional:
      raise ValueError("hidden_offsets need a unidirectional first layer")
    for i, size in enumerate(self.hidden_sizes):
      sequences = self.return_sequences or i < len(self.hidden_sizes) - 1
      layer = lambda reverse, name: RecurrentLayer(
          self.cell, size, return_sequences=sequences, reverse=reverse, unroll=self.unroll,
          lstm_vjp=self.lstm_vjp, lstm_kernel=self.lstm_kernel, name=name)
      if self.bidirectional:
        x = Bidirectional(layer(False, f"forward_{i}"), layer(True, f"backward_{i}"))(x, lengths)
      else:
        x = layer(False, f"layer_{i}")(x, lengths, hidden_offsets if i == 0 else None)
      if i < len(self.hidden_sizes) - 1:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return x
