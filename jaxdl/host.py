"""Host memory-allocator settings that XLA:CPU training needs to run at full speed.

A training step on XLA:CPU allocates and frees the same large temporary
buffers (activations, gradients, scan stacks) on every call. glibc's malloc
hands blocks above its mmap threshold straight to the kernel and gives freed
memory back, and gives each worker thread its own arena whose heaps are capped
at 64 MiB, so those buffers are mapped and unmapped, and their pages zeroed by
page faults, again on every step. Measured on a 2-core x86 machine
(``scripts/benchmark.py``): 28% of the seed CNN's step was spent in the kernel,
and the seed CNN ran 1.6x and the seed LSTM 1.4x faster with the settings below.

So ``tune_allocator`` asks glibc (``mallopt``) to serve blocks of up to
1 GiB from the heap, to keep up to 1 GiB of freed memory for reuse, and to use
one arena for all threads. The arena setting only reaches threads that have
not allocated yet, so it must run before JAX starts its thread pools. Nothing
changes numerically. The cost: the process keeps freed heap memory rather than
returning it to the system (up to 1 GiB by construction; measured 160-170 MB of
peak RSS over glibc's defaults when streaming 20,000 PNGs, scripts/bench_allocator.py),
and all its threads share one malloc lock. ``$JAXDL_HOST_TRIM_MB`` lowers the trim
threshold, but that does not lower the peak (what is kept lies below the heap's top,
which trimming cannot return) and costs speed: at 256 MiB a vectorized sweep of 8
LSTMs ran a third slower, at 64 MiB a single LSTM did (docs/benchmarks.md).

Much of what the settings bought is now had without them: where they are not
applied, jaxdl compiles its training and evaluation steps on CPU with their
temporaries split into blocks glibc's own adaptive threshold keeps
(jaxdl/training/heaps.py), which brings a step with up to about 50 MB of
temporaries, the seed LSTM's included, to the same speed under glibc's defaults.
Larger steps and vectorized sweeps still need these settings.

Those are a process-wide choice, so a library must not make it for its user:
importing jaxdl changes nothing. The ``jaxdl`` command (an application) calls
``tune_allocator`` when it starts; a script or notebook opts in with
``jaxdl.tune_host_allocator()`` before its first JAX computation, or with
``JAXDL_HOST_ALLOCATOR=tuned`` in the environment. ``JAXDL_HOST_ALLOCATOR=default``
leaves the allocator alone, the command's included. Other C libraries (musl,
macOS, Windows) are left alone too. What was applied is recorded in every
run's provenance.json.
"""

import ctypes
import ctypes.util
import os
import sys

from jaxdl.errors import ConfigError

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

SETTINGS = {"mmap_threshold": 1 << 30, "trim_threshold": 1 << 30, "arena_max": 1}
TRIM_ENV = "JAXDL_HOST_TRIM_MB"  # Overrides trim_threshold, in MiB (scripts/bench_allocator.py).
_PARAMETERS = {"mmap_threshold": _M_MMAP_THRESHOLD, "trim_threshold": _M_TRIM_THRESHOLD,
               "arena_max": _M_ARENA_MAX}

_state: dict = {"applied": False, "reason": "not attempted"}


def tune_allocator() -> dict:
  """Applies SETTINGS through glibc's ``mallopt`` (once per process); returns what happened.

  Returns:
    ``{"applied": bool, "reason": str, "settings": {...}, "jax_backend_started": bool}``;
    ``jax_backend_started`` is True when JAX's thread pools already existed, in
    which case the one-arena setting reaches only threads created later.
  """
  if _state["applied"]:
    return dict(_state)
  if os.environ.get("JAXDL_HOST_ALLOCATOR", "") == "default":
    _state.update(applied=False, reason="JAXDL_HOST_ALLOCATOR=default")
    return dict(_state)
  if not sys.platform.startswith("linux"):
    _state.update(applied=False, reason=f"not glibc ({sys.platform})")
    return dict(_state)
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
    libc.gnu_get_libc_version  # noqa: B018 -- only glibc has it; musl raises AttributeError.
  except (OSError, AttributeError):
    _state.update(applied=False, reason="the C library is not glibc")
    return dict(_state)
  settings = settings_from_environment()
  failed = [name for name, value in settings.items() if mallopt(_PARAMETERS[name], value) != 1]
  _state.update(applied=not failed, settings=settings,
                reason=f"mallopt refused {failed}" if failed else "glibc mallopt",
                jax_backend_started=_jax_backend_started())
  return dict(_state)


def settings_from_environment() -> dict:
  """SETTINGS, with the trim threshold ``$JAXDL_HOST_TRIM_MB`` MiB where that is set.

  Raises:
    ConfigError: the variable is not a whole number of MiB from 0 to 2047.
  """
  value = os.environ.get(TRIM_ENV, "")
  if not value:
    return dict(SETTINGS)
  if not value.isdigit() or int(value) >= 2048:  # mallopt takes an int of bytes.
    raise ConfigError(f"{TRIM_ENV}={value!r} is not a whole number of MiB from 0 to 2047; "
                     f"unset it for the default ({SETTINGS['trim_threshold'] >> 20} MiB)")
  return {**SETTINGS, "trim_threshold": int(value) << 20}


def allocator_state() -> dict:
  """What ``tune_allocator`` did in this process (for provenance)."""
  return dict(_state)


def _jax_backend_started() -> bool:
  bridge = sys.modules.get("jax._src.xla_bridge")
  return bool(getattr(bridge, "_backends", None))


def compilation_cache_dir() -> str | None:
  """Where the jaxdl command keeps compiled XLA programs (None: off).

  ``$JAXDL_COMPILATION_CACHE`` names the folder (``off`` turns the cache off);
  the default is ``$XDG_CACHE_HOME/jaxdl/xla`` (``~/.cache/jaxdl/xla``).
  """
  setting = os.environ.get("JAXDL_COMPILATION_CACHE", "")
  if setting == "off":
    return None
  if setting:
    return setting
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(root, "jaxdl", "xla")


def enable_compilation_cache() -> str | None:
  """Turns on JAX's persistent compilation cache for this process (the jaxdl command does).

  A second run of the same program then loads its compiled XLA executables
  instead of compiling them again (seconds on a GPU, where compiling a
  training step takes tens of seconds). A process-wide setting: a library
  leaves it to the application, like the allocator's.
  """
  folder = compilation_cache_dir()
  if folder is None:
    return None
  import jax  # Here, not at import: the command tunes the allocator before JAX starts.

  jax.config.update("jax_compilation_cache_dir", folder)
  return folder


# XLA:CPU flags measured to speed up jaxdl's models (docs/benchmarks.md): convolutions through
# XLA's own (Eigen) kernels instead of YNNPACK's, which ran the seed CNN's step at 47.5 ms
# against 29 ms (its conv2 kernel gradient at 32 GFLOP/s, 17.7 ms) on 2 cores.
XLA_CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)

_xla_state: dict = {"applied": False, "reason": "not requested"}


def tune_xla_flags() -> dict:
  """Adds ``XLA_CPU_FLAGS`` to ``$XLA_FLAGS`` for this process; returns what happened.

  Opt-in, for now even in the ``jaxdl`` command: the numbers differ from the
  default's at float rounding (another convolution algorithm), and the published
  results were computed without them. Set ``JAXDL_XLA_CPU=tuned`` (read at
  ``import jaxdl``) or call ``jaxdl.tune_xla_flags()`` before JAX's first
  computation; flags the user already set keep their value. Recorded in every
  run's provenance.json (``xla_flags``, ``xla_tuning``).
  """
  if _xla_state["applied"]:
    return dict(_xla_state)
  if _jax_backend_started():
    _xla_state.update(applied=False, reason="JAX's backend had started: flags come too late")
    return dict(_xla_state)
  current = os.environ.get("XLA_FLAGS", "")
  names = {flag.split("=")[0] for flag in current.split()}
  added = [flag for flag in XLA_CPU_FLAGS if flag.split("=")[0] not in names]
  os.environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
  _xla_state.update(applied=True, added=added,
                    reason="JAXDL_XLA_CPU=tuned or tune_xla_flags()" + (
                        "" if added else "; the user's XLA_FLAGS already set them"))
  return dict(_xla_state)


def xla_flags_state() -> dict:
  """What ``tune_xla_flags`` did in this process (for provenance)."""
  return dict(_xla_state)

