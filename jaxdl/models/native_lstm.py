"""jaxdl's native LSTM recurrence for XLA:CPU (native/lstm_cpu.cc), called through ``jax.ffi``.

The kernel is C++ that this machine's compiler builds on first use (``g++``,
or ``$CXX``) into a cache folder (``$JAXDL_KERNEL_CACHE``, else
``~/.cache/jaxdl/kernels``), keyed by the source, the flags, jaxlib's version
and the CPU, so ``pip install -e .`` stays pure Python and a build is reused
across runs. Where it cannot be built or loaded (no compiler, another
platform) ``available()`` is False after a one-line warning, and callers run
the pure-JAX recurrence (lstm_scan.py), which stays the reference.

``lstm_layer`` is the differentiable layer (input projection and recurrence);
both handlers are registered for the CPU platform only, and ``ffi_call`` runs
them once per member under ``vmap`` (``vmap_method="sequential"``).
"""

import ctypes
import fcntl
import functools
import hashlib
import os
import pathlib
import platform
import subprocess
import tempfile
import warnings

import jax
import jax.numpy as jnp

from jaxdl.models.matmul import weight_gradient

SOURCE = pathlib.Path(__file__).resolve().parent / "native" / "lstm_cpu.cc"
FLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-fno-math-errno",
         "-fno-trapping-math", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC", "-pthread", "-w")
FORWARD, BACKWARD = "jaxdl_lstm_forward", "jaxdl_lstm_backward"


def cache_dir() -> pathlib.Path:
  default = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
  return pathlib.Path(os.environ.get("JAXDL_KERNEL_CACHE", default / "jaxdl" / "kernels"))


def _cpu_identity() -> str:
  """The CPU model and its flags: ``-march=native`` code is only valid on such a CPU."""
  try:
    lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
  except OSError:
    return platform.processor()
  return "\n".join(sorted({l for l in lines if l.startswith(("model name", "flags"))}))


def library_path(compiler: str) -> pathlib.Path:
  import jaxlib

  key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, *FLAGS, jaxlib.__version__,
                                  _cpu_identity()]).encode()).hexdigest()[:16]
  return cache_dir() / f"lstm_cpu-{key}.so"


def build(compiler: str, path: pathlib.Path) -> None:
  """Compiles the kernel into ``path`` (atomically: concurrent builds cannot see a partial file)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
    out = pathlib.Path(tmp) / path.name
    command = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
      raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    os.replace(out, path)


@functools.cache
def available() -> bool:
  """Whether the kernel is built, loaded and registered (warns once, in one line, if not)."""
  if platform.system() != "Linux":
    return _unavailable(f"it is built for Linux only, not {platform.system()}")
  compiler = os.environ.get("CXX", "g++")
  try:
    path = library_path(compiler)
    if not path.exists():
      path.parent.mkdir(parents=True, exist_ok=True)
      with open(path.with_suffix(".lock"), "w") as lock:  # One build when processes race.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
          build(compiler, path)
    library = ctypes.cdll.LoadLibrary(str(path))
    for name, symbol in ((FORWARD, library.JaxdlLstmForward),
                         (BACKWARD, library.JaxdlLstmBackward)):
      jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(symbol), platform="cpu")
  except (OSError, RuntimeError, AttributeError) as e:
    return _unavailable(str(e).splitlines()[0] if str(e) else type(e).__name__)
  return True


def _unavailable(why: str) -> bool:
  warnings.warn(f"jaxdl's native LSTM kernel is unavailable ({why}); using the pure-JAX "
                "recurrence", RuntimeWarning, stacklevel=3)
  return False


def usable(dtype) -> bool:
  """Whether arrays of ``dtype`` can run through the kernel here (float32, on CPU)."""
  return jax.default_backend() == "cpu" and jnp.dtype(dtype) == jnp.float32 and available()


def _require() -> None:
  if not available():
    raise RuntimeError("jaxdl's native LSTM kernel is unavailable here (see the warning); "
                       "check native_lstm.usable() before asking for it")


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
  _require()
  t, b, _ = x.shape
  h = kernel_h.shape[0]
  call = jax.ffi.ffi_call(FORWARD, (_f32(t, b, h), _f32(t, b, h), _f32(t, b, h),
                                    _f32(t, b, 4 * h)), vmap_method="sequential")
  return call(kernel_x, bias, kernel_h, x, valid, c0, h0)


def backward(kernel_x: jax.Array, kernel_h: jax.Array, valid: jax.Array, c0: jax.Array,
             c_all: jax.Array, gates: jax.Array, dc_last: jax.Array, dh_last: jax.Array,
             d_outputs: jax.Array) -> tuple[jax.Array, ...]:
  """From ``forward``'s residuals and the cotangents of ``(c_last, h_last, outputs)``:
  ``(d_gates [T, B, 4H], dx [T, B, D], d_bias [4H], dc0 [B, H], dh0 [B, H])``, where
  ``d_gates`` are the gates' pre-activation gradients."""
  _require()
  t, b, g = gates.shape
  d, h = kernel_x.shape[0], kernel_h.shape[0]
  call = jax.ffi.ffi_call(BACKWARD, (_f32(t, b, g), _f32(t, b, d), _f32(g), _f32(b, h),
                                     _f32(b, h)), vmap_method="sequential")
  return call(kernel_x, kernel_h, valid, c0, c_all, gates, dc_last, dh_last, d_outputs)


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
  d_gates, dx, d_bias, dc0, dh0 = backward(kernel_x, kernel_h, valid, c0, c_all, gates,
                                           *cotangents)
  h_prev = jnp.concatenate([h0[None], h_all[:-1]], axis=0)
  # The kernels' gradients: contractions over all T x B rows, one large product each.
  d_kernel_x = weight_gradient(x, d_gates)
  d_kernel_h = weight_gradient(h_prev, d_gates)
  return d_kernel_x, d_bias, d_kernel_h, dx, None, dc0, dh0


lstm_layer.defvjp(_lstm_layer_fwd, _lstm_layer_bwd)
