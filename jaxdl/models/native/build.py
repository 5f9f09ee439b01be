"""Builds jaxdl's C++ kernels on first use and registers their XLA FFI handlers.

A kernel is one ``.cc`` file beside this one. The machine's compiler (``g++``,
or ``$CXX``) builds it into a cache folder (``$JAXDL_KERNEL_CACHE``, else
``$XDG_CACHE_HOME/jaxdl/kernels``, i.e. ``~/.cache/jaxdl/kernels``), under a
name keyed by the source, the flags, jaxlib's version (its FFI headers) and the
CPU (``-march=native``), so ``pip install -e .`` stays pure Python and a build
is reused by every later run. Processes that race to build take a file lock and
build once; the library appears atomically. A kernel that cannot be built or
loaded is reported once, in one line, and its caller falls back to pure JAX.
"""

import ctypes
import dataclasses
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

_LOADED: list[str] = []  # What load() registered in this process, for results.json.

FLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-fno-math-errno",
         "-fno-trapping-math", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC", "-pthread", "-w")


def cache_dir() -> pathlib.Path:
  default = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
  return pathlib.Path(os.environ.get("JAXDL_KERNEL_CACHE", default / "jaxdl" / "kernels"))


@functools.cache  # Asked at every trace of a kernel layer ('auto'); the CPU does not change.
def _cpu_identity() -> str:
  """The CPU model and its flags: ``-march=native`` code is only valid on such a CPU."""
  try:
    lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
  except OSError:
    return platform.processor()
  return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


# Measured with model.*_kernel=native vs xla, 2 epochs each on an AMD EPYC with AVX2 and no
# AVX-512 (2 cores, 2026-12-02): the seed CNN on digits 190 vs 1,285 examples/s, the seed LSTM
# on the adding problem 1,000 vs 5,650. The kernels' 16-float register blocks (one AVX-512
# register each) spill on AVX2's sixteen 8-float registers; with AVX-512 they were the
# fastest of every framework measured (docs/benchmarks.md).
_SLOW_WITHOUT_AVX512 = ("this CPU has no AVX-512, where the kernels measured 5-7x slower than "
                        "XLA (their register blocks spill on AVX2)")


def auto_choice() -> tuple[bool, str]:
  """Whether ``auto`` (model.conv_kernel, model.lstm_kernel) picks the C++ kernels here, and why.

  ``JAXDL_NATIVE_KERNELS=on`` picks them wherever they build (the tests use it, to check
  them on any CPU), ``=off`` never; by default they are picked on CPUs with AVX-512, where
  they were measured fastest. ``native`` asks for them whatever this says.
  """
  setting = os.environ.get("JAXDL_NATIVE_KERNELS", "auto")
  if setting in ("on", "off"):
    return setting == "on", f"JAXDL_NATIVE_KERNELS={setting}"
  if "avx512f" in _cpu_identity().split():
    return True, "this CPU has AVX-512"
  return False, _SLOW_WITHOUT_AVX512


def library_path(source: pathlib.Path, compiler: str) -> pathlib.Path:
  """Where the build of ``source`` by ``compiler`` for this jaxlib and CPU lives."""
  import jaxlib

  headers = [h.read_text() for h in sorted(source.parent.glob("*.h"))]  # What it may include.
  key = hashlib.sha256("\0".join([source.read_text(), *headers, compiler, *FLAGS,
                                  jaxlib.__version__, _cpu_identity()]).encode()).hexdigest()[:16]
  return cache_dir() / f"{source.stem}-{key}.so"


def compile_library(source: pathlib.Path, compiler: str, path: pathlib.Path) -> None:
  """Compiles ``source`` into ``path`` (atomically: no process sees a partial file)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
    out = pathlib.Path(tmp) / path.name
    command = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(source), "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
      raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    os.replace(out, path)


def _built(source: pathlib.Path, compiler: str) -> pathlib.Path:
  path = library_path(source, compiler)
  if not path.exists():
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:  # One build when processes race.
      fcntl.flock(lock, fcntl.LOCK_EX)
      if not path.exists():
        compile_library(source, compiler, path)
  return path


@functools.cache
def load(source: pathlib.Path, symbols: tuple[tuple[str, str], ...], what: str,
         fallback: str) -> bool:
  """Builds (if needed) and loads ``source``; registers each ``(ffi target, C symbol)`` for CPU.

  Returns whether it worked; if not, warns once that ``what`` is unavailable and
  ``fallback`` runs instead. Call ``load.cache_clear()`` to try again.
  """
  if platform.system() != "Linux":
    return unavailable(what, f"it is built for Linux only, not {platform.system()}", fallback)
  try:
    library = ctypes.cdll.LoadLibrary(str(_built(source, os.environ.get("CXX", "g++"))))
    for target, symbol in symbols:
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                  platform="cpu")
  except (OSError, RuntimeError, AttributeError) as e:
    return unavailable(what, str(e).splitlines()[0] if str(e) else type(e).__name__, fallback)
  record(what)
  return True


def record(what: str) -> None:
  """Notes that jaxdl's kernel ``what`` is in use in this process (for results.json)."""
  if what not in _LOADED:
    _LOADED.append(what)


@dataclasses.dataclass(frozen=True)
class Kernel:
  """One ``.cc`` file's kernel: where it is, its FFI targets, and what runs without it.

  Attributes:
    source: the ``.cc`` file.
    symbols: ``(ffi target, C symbol)`` pairs to register for CPU.
    what: its name in warnings and errors.
    fallback: what its callers run instead, for the warning.
  """

  source: pathlib.Path
  symbols: tuple[tuple[str, str], ...]
  what: str
  fallback: str

  def available(self) -> bool:
    """Whether it is built, loaded and registered (warns once, in one line, if not)."""
    return load(self.source, self.symbols, self.what, self.fallback)

  def usable(self, dtype, quiet: bool = False) -> bool:
    """Whether arrays of ``dtype`` run through it here: float32 on CPU, once it is built.

    Anything else warns once (naming why) and the caller runs the fallback;
    ``quiet`` (the ``auto`` settings) skips the warning for another backend or
    dtype, where the fallback is the intended path, but not for a failed build; it also
    runs XLA on a CPU where ``auto_choice`` says the kernel is slower.
    """
    backend = jax.default_backend()
    if backend != "cpu":
      why = f"it runs on CPU only, not {backend}"
    elif jnp.dtype(dtype) != jnp.float32:
      why = f"it computes in float32 only, not {jnp.dtype(dtype).name}"
    elif quiet and not auto_choice()[0]:  # 'auto' on a CPU where XLA measured faster.
      return False
    else:
      return self.available()
    return False if quiet else unavailable(self.what, why, self.fallback)

  def require(self) -> None:
    """Raises unless it is available: callers check ``usable()`` first."""
    if not self.available():
      module = self.source.stem.removesuffix("_cpu")
      raise RuntimeError(f"{self.what} is unavailable here (see the warning); check "
                         f"native.{module}.usable() before asking for it")


def loaded() -> list[str]:
  """jaxdl's kernels loaded (native) or traced (Pallas) in this process so far (the ones a
  run could have used)."""
  return list(_LOADED)


@functools.cache
def unavailable(what: str, why: str, fallback: str) -> bool:
  """Warns (once per reason) that ``what`` cannot run and ``fallback`` will; returns False."""
  warnings.warn(f"{what} is unavailable ({why}); using {fallback}", RuntimeWarning, stacklevel=3)
  return False
