"""The LSTM recurrence as two Pallas kernels for GPUs (Triton): every time step in one launch.

Why: on a GPU, XLA runs ``lax.scan``'s recurrence as a loop of small kernels,
several launches per time step, each a few microseconds of a mostly idle chip;
cuDNN's LSTM runs the whole sequence in one kernel. Here the forward loop and
the backward loop (``lstm_scan.scan_forward``/``scan_backward``, the reference)
are each one ``pallas_call``: a program per tile of ``block_batch`` sequences
steps through all T in registers, with the recurrent kernel loaded once. The
residuals, the custom VJP and the weight-gradient matmul are lstm_scan.py's
(``recurrence``), so the two paths differ only in who runs the loops.

Triton wants power-of-two tiles of at least 16: H is padded to such a width
(zero rows and columns: padded units stay exactly 0 and receive no gradient)
and the batch to a whole number of tiles (padded sequences are invalid at
every step), then cut back. ``interpret=True`` runs the same kernels through
Pallas's interpreter on any backend: how the tests check them on a CPU.
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.sharding import Mesh

from jaxdl.models import lstm_scan, per_device
from jaxdl.models.per_device import BATCH_FIRST, SHARED, TIME_MAJOR, over_batch
from jaxdl.models.native import build

WHAT, FALLBACK = "jaxdl's Pallas LSTM kernel", "the XLA LSTM recurrence"


def _triton_params() -> type | None:
  """Pallas's Triton compiler parameters, or None where this JAX has no Triton backend.

  JAX deprecated Pallas's Triton backend for Mosaic GPU; a JAX without it must
  still import jaxdl and train, on XLA's recurrence (``usable`` says so in one
  line). Named TritonCompilerParams in older JAX releases (pyproject allows 0.6).
  """
  try:
    from jax.experimental.pallas import triton as plgpu
  except ImportError:
    return None
  return getattr(plgpu, "CompilerParams", None) or getattr(plgpu, "TritonCompilerParams", None)


# The widest layer the kernels take: a program keeps the recurrent kernel's four [H, H]
# blocks in shared memory and registers. Compiled for an H100 (scripts/triton_resources.py),
# the default launch uses 68 / 138 KB of shared memory (forward / backward) at H = 64, and
# 264 / 404 KB at H = 128, over the 227 KB a block may have: wider layers are left to XLA.
MAX_HIDDEN = 64


# TF32 tensor-core products, the GPUs' default for float32, start with Ampere; older GPUs
# (and ROCm builds) are untested here, so they keep XLA's recurrence.
MIN_COMPUTE_CAPABILITY = (8, 0)


def _unsupported_gpu() -> str | None:
  """Why the first GPU cannot run the kernels (not CUDA, or older than Ampere), or None."""
  device = jax.devices()[0]
  if "rocm" in getattr(device.client, "platform_version", "").lower():
    return "it is built and tested for NVIDIA GPUs (CUDA) only, not ROCm"
  capability = getattr(device, "compute_capability", None)  # "9.0" on an H100.
  if capability and tuple(map(int, capability.split("."))) < MIN_COMPUTE_CAPABILITY:
    return f"it needs an NVIDIA GPU of compute capability 8.0 or newer, not {capability}"
  return None


def _why_not(dtype, hidden: int) -> str | None:
  """Why the kernels cannot run these layers here, or None."""
  backend = jax.default_backend()
  if backend != "gpu":
    return f"it runs on GPUs only, not {backend}"
  if jnp.dtype(dtype) != jnp.float32:
    return f"it computes in float32 only, not {jnp.dtype(dtype).name}"
  if hidden > MAX_HIDDEN:
    return f"it takes layers of at most {MAX_HIDDEN} units, not {hidden}"
  if _triton_params() is None:
    return f"this JAX ({jax.__version__}) has no Pallas Triton backend, which it is written for"
  return _unsupported_gpu()


def usable(dtype, hidden: int = 0, quiet: bool = False) -> bool:
  """Whether the kernels run here: float32 layers of at most ``MAX_HIDDEN`` units on an
  NVIDIA GPU of compute capability 8.0 or newer (warns once, naming why not, unless quiet)."""
  why = _why_not(dtype, hidden)
  if why is None:
    return True
  return False if quiet else build.unavailable(WHAT, why, FALLBACK)


def _tile(n: int) -> int:
  """The power of two (at least 16) that a dimension of ``n`` is padded to."""
  return max(16, 1 << (n - 1).bit_length())


def _gate_weights(ref, hidden: int, axis: int) -> Callable[[], list[jax.Array]]:
  """A loader of the four gates' ``[H, H]`` blocks of ``ref`` (gates along ``axis``)."""
  def block(k):
    return ref[:, pl.ds(k * hidden, hidden)] if axis == 1 else ref[pl.ds(k * hidden, hidden), :]
  return lambda: [block(k) for k in range(4)]


def _forward_kernel(w_ref, x_ref, valid_ref, c0_ref, h0_ref,
                    c_ref, h_ref, i_ref, f_ref, g_ref, o_ref, *, hidden, reload_weights):
  """One tile of sequences through all T steps (refs: ``[T, b, ...]``, kernel ``[H, 4H]``).

  The kernel's blocks are loaded once and kept, or (``reload_weights``) read
  again each step from cache, which leaves registers to the rest.
  """
  load_w = _gate_weights(w_ref, hidden, axis=1)
  kept = None if reload_weights else load_w()

  def step(t, carry):
    c, h = carry
    w = load_w() if reload_weights else kept
    z = [x_ref[t, :, pl.ds(k * hidden, hidden)] + jnp.dot(h, w[k]) for k in range(4)]
    c_new, h_new, gates = lstm_scan.cell_step(z, c, h, (valid_ref[t] != 0)[:, None])
    for ref, value in zip((c_ref, h_ref, i_ref, f_ref, g_ref, o_ref), (c_new, h_new, *gates)):
      ref[t] = value
    return c_new, h_new

  jax.lax.fori_loop(0, x_ref.shape[0], step, (c0_ref[...], h0_ref[...]))


def _backward_kernel(wt_ref, valid_ref, c0_ref, c_ref, i_ref, f_ref, g_ref, o_ref,
                     dc_last_ref, dh_last_ref, d_out_ref, dz_ref, dc0_ref, dh0_ref, *, hidden,
                     reload_weights):
  """One tile of sequences from step T-1 back to 0 (``wt_ref`` is the kernel transposed)."""
  load_wt = _gate_weights(wt_ref, hidden, axis=0)
  kept = None if reload_weights else load_wt()
  c0 = c0_ref[...]
  steps = c_ref.shape[0]

  def step(s, carry):
    dc_next, dh_next = carry
    t = steps - 1 - s
    c_in = jnp.where(t > 0, c_ref[jnp.maximum(t - 1, 0)], c0)
    gates = (i_ref[t], f_ref[t], g_ref[t], o_ref[t])
    dz, dc_in, dh_in = lstm_scan.gate_gradients(d_out_ref[t], dc_next, dh_next, c_in, c_ref[t],
                                                gates, (valid_ref[t] != 0)[:, None])
    wt = load_wt() if reload_weights else kept
    for k in range(4):
      dz_ref[t, :, pl.ds(k * hidden, hidden)] = dz[k]
      dh_in = dh_in + jnp.dot(dz[k], wt[k])
    return dc_in, dh_in

  dc0, dh0 = jax.lax.fori_loop(0, steps, step, (dc_last_ref[...], dh_last_ref[...]))
  dc0_ref[...] = dc0
  dh0_ref[...] = dh0


def _over_time(steps: int, tile: int, width: int) -> pl.BlockSpec:
  """A ``[T, B, width]`` array's tile: all steps of ``tile`` sequences."""
  return pl.BlockSpec((steps, tile, width), lambda b: (0, b, 0))


def _mask(steps: int, tile: int) -> pl.BlockSpec:
  return pl.BlockSpec((steps, tile), lambda b: (0, b))


def _state(tile: int, width: int) -> pl.BlockSpec:
  return pl.BlockSpec((tile, width), lambda b: (b, 0))


def _whole(shape: tuple[int, ...]) -> pl.BlockSpec:
  return pl.BlockSpec(shape, lambda b: (0,) * len(shape))


def _pad_to(a: jax.Array, axis: int, size: int) -> jax.Array:
  """Zeros appended along ``axis`` up to ``size`` (a no-op where it is already there)."""
  if a.shape[axis] == size:
    return a
  return jnp.pad(a, [(0, size - a.shape[axis]) if d == axis else (0, 0) for d in range(a.ndim)])


def _pad_gates(a: jax.Array, hidden: int, width: int) -> jax.Array:
  """The last axis, four gates of ``hidden``, as four gates of ``width`` (zeros appended)."""
  if hidden == width:
    return a
  a = _pad_to(a.reshape(*a.shape[:-1], 4, hidden), a.ndim, width)
  return a.reshape(*a.shape[:-2], 4 * width)


def _cut_gates(a: jax.Array, hidden: int) -> jax.Array:
  width = a.shape[-1] // 4
  if hidden == width:
    return a
  return a.reshape(*a.shape[:-1], 4, width)[..., :hidden].reshape(*a.shape[:-1], 4 * hidden)


@dataclasses.dataclass(frozen=True)
class Launch:
  """How the kernels are launched: speed knobs only, every choice computes the same.

  Attributes:
    block_batch: sequences per program (rounded up to a power of two, at least
      16); the batch is split into ``ceil(B / block_batch)`` programs.
    num_warps: Triton warps per program.
    reload_weights: read the recurrent kernel's blocks from cache every step
      instead of keeping them in registers.
    num_stages: Triton's software-pipelining depth for the loop's loads (None:
      Pallas's default, 3 on CUDA); each stage buffers one step's loads in
      shared memory.
    interpret: run the kernels through Pallas's interpreter (any backend; slow).
  """

  block_batch: int = 16
  num_warps: int = 4
  reload_weights: bool = False
  num_stages: int | None = None
  interpret: bool = False


class _Tiling:
  """How one call's arrays are padded into tiles: H to ``width``, B to ``padded_batch``."""

  def __init__(self, kernel: jax.Array, valid: jax.Array, launch: Launch):
    self.steps, self.batch = valid.shape
    self.hidden = kernel.shape[0]
    self.width, self.tile = _tile(self.hidden), _tile(launch.block_batch)
    self.padded_batch = -(-self.batch // self.tile) * self.tile
    self.launch = launch

  def kernel(self, kernel: jax.Array) -> jax.Array:
    """``[H, 4H]`` -> ``[width, 4 width]``."""
    return _pad_to(_pad_gates(kernel, self.hidden, self.width), 0, self.width)

  def state(self, a: jax.Array) -> jax.Array:
    """``[B, H]`` -> ``[padded B, width]``; ``[T, B, H]`` likewise on its last two axes."""
    return _pad_to(_pad_to(a, a.ndim - 2, self.padded_batch), a.ndim - 1, self.width)

  def mask(self, valid: jax.Array) -> jax.Array:
    return _pad_to(valid.astype(jnp.int32), 1, self.padded_batch)

  def cut(self, a: jax.Array) -> jax.Array:
    """The inverse of ``state`` (padded sequences and units dropped)."""
    return a[..., :self.batch, :self.hidden]

  def call(self, kernel: Callable, out_widths: tuple[int, ...], in_specs: list[pl.BlockSpec]):
    """``pallas_call`` over the batch tiles; outputs are ``[T, padded B, w]`` for each
    width ``w`` in ``out_widths`` (``0``: a ``[padded B, width]`` state)."""
    def out(w):
      if w == 0:
        return (jax.ShapeDtypeStruct((self.padded_batch, self.width), jnp.float32),
                _state(self.tile, self.width))
      return (jax.ShapeDtypeStruct((self.steps, self.padded_batch, w), jnp.float32),
              _over_time(self.steps, self.tile, w))
    shapes, specs = zip(*map(out, out_widths))
    body = functools.partial(kernel, hidden=self.width,
                             reload_weights=self.launch.reload_weights)
    params = _triton_params()  # None: interpreted (usable() keeps compiled launches away).
    return pl.pallas_call(
        body, out_shape=shapes, grid=(self.padded_batch // self.tile,), in_specs=in_specs,
        out_specs=specs, compiler_params=params and params(
            num_warps=self.launch.num_warps, num_stages=self.launch.num_stages),
        interpret=self.launch.interpret, name=kernel.__name__.strip("_"))


def _forward_loop(kernel, projected, valid, c0, h0, *, launch: Launch):
  """``lstm_scan.scan_forward`` as one kernel launch."""
  tiling = _Tiling(kernel, valid, launch)
  t, b, w = tiling.steps, tiling.tile, tiling.width
  in_specs = [_whole((w, 4 * w)), _over_time(t, b, 4 * w), _mask(t, b), _state(b, w),
              _state(b, w)]
  padded_projected = _pad_to(_pad_gates(projected, tiling.hidden, w), 1, tiling.padded_batch)
  outs = tiling.call(_forward_kernel, (w,) * 6, in_specs)(
      tiling.kernel(kernel), padded_projected, tiling.mask(valid), tiling.state(c0),
      tiling.state(h0))
  c_all, h_all, *gates = map(tiling.cut, outs)
  return c_all, h_all, tuple(gates)


def _backward_loop(kernel, valid, c0, c_all, gates, dc_last, dh_last, d_outputs, *,
                   launch: Launch):
  """``lstm_scan.scan_backward`` as one kernel launch."""
  tiling = _Tiling(kernel, valid, launch)
  t, b, w = tiling.steps, tiling.tile, tiling.width
  in_specs = ([_whole((4 * w, w)), _mask(t, b), _state(b, w)] + [_over_time(t, b, w)] * 5
              + [_state(b, w)] * 2 + [_over_time(t, b, w)])
  dz, dc0, dh0 = tiling.call(_backward_kernel, (4 * w, 0, 0), in_specs)(
      tiling.kernel(kernel).T, tiling.mask(valid), tiling.state(c0), tiling.state(c_all),
      *map(tiling.state, gates), tiling.state(dc_last), tiling.state(dh_last),
      tiling.state(d_outputs))
  d_projected = _cut_gates(dz[:, :tiling.batch], tiling.hidden)
  return d_projected, tiling.cut(dc0), tiling.cut(dh0)


# The loops' arguments and results by where their batch axis is (a tuple takes one spec).
_FORWARD_SPECS = ((SHARED, TIME_MAJOR, TIME_MAJOR, BATCH_FIRST, BATCH_FIRST),
                  (TIME_MAJOR, TIME_MAJOR, TIME_MAJOR))
_BACKWARD_SPECS = ((SHARED, TIME_MAJOR, BATCH_FIRST, TIME_MAJOR, TIME_MAJOR, BATCH_FIRST,
                    BATCH_FIRST, TIME_MAJOR), (TIME_MAJOR, BATCH_FIRST, BATCH_FIRST))


@functools.cache
def _recurrence(launch: Launch, mesh: Mesh | None) -> Callable:
  # Each device runs both loops on its own sequences (per_device.py); the weight gradient's
  # matmul after the backward loop stays in XLA's hands, summed over the devices.
  return lstm_scan.recurrence(
      over_batch(functools.partial(_forward_loop, launch=launch), mesh, *_FORWARD_SPECS),
      over_batch(functools.partial(_backward_loop, launch=launch), mesh, *_BACKWARD_SPECS))


def lstm_recurrence(kernel: jax.Array, projected: jax.Array, valid: jax.Array, c0: jax.Array,
                    h0: jax.Array, launch: Launch = Launch(), batch_mesh: Mesh | None = None
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``lstm_scan.lstm_scan`` with its two loops in Pallas kernels (same arguments, results).

  Args:
    kernel, projected, valid, c0, h0: as ``lstm_scan`` (time-major, float32).
    launch: how the kernels are launched (``Launch``; the defaults are the model's).
    batch_mesh: the mesh whose ``data`` axis splits the batch (None: not split): each
      device then runs the kernels on its own sequences, where the batch divides evenly.
  """
  if not launch.interpret:
    build.record(WHAT)
  mesh = per_device.splitting(batch_mesh, projected.shape[1])
  return _recurrence(launch, mesh)(kernel, projected, valid, c0, h0)
