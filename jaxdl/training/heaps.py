"""On XLA:CPU, a step's temporaries in blocks that glibc's malloc keeps from step to step.

XLA:CPU allocates a compiled program's temporaries as one block (a "heap") per
execution and frees it after. glibc's malloc serves a block from its own heap,
where freed memory is reused, only below its adaptive mmap threshold, which
never rises above 32 MiB on a 64-bit machine; a larger block is mapped fresh
from the kernel and unmapped after, so every step pays a page fault for each
4 KiB of it. The seed LSTM's training step keeps 53 MiB of temporaries (both
layers' gates and states, for the backward pass): measured on 2 cores, 13,600
page faults per step, 0.7 of a core in the kernel, and 2,800 examples/s against
4,900 with the ``jaxdl`` command's allocator settings (jaxdl.host), which raise
the threshold for the whole process.

XLA can instead split the temporaries into several heaps of bounded size
(``xla_multiheap_size_constraint_per_heap``), a compile option of one program,
so nothing changes for the rest of the process and a notebook or script gets
the speed without any process-wide setting. ``HeapSplitJit`` compiles a step
that way on CPU when every array the step makes fits in one such heap; where
one does not (a vectorized sweep's stacked gates), that array's heap could not
be kept anyway and XLA would log a warning for it at every compile, so the step
compiles as ``jax.jit`` would. Where the temporaries live is all that changes:
the computation, and so every number, is the same.

The bound: glibc keeps the heaps only while they fit its threshold and the malloc
arena of the XLA thread that allocates them (64 MiB per arena heap). Measured on a
synthetic recurrence (tests/test_heaps.py), 42 MB of temporaries stop faulting
(10,400 page faults a step to under 1,100); at 50 and 84 MB about half of the
faults remain, at 63 MB all of them. Steps beyond about 50 MB, and vectorized
sweeps, still need the process-wide settings (``jaxdl.tune_host_allocator()``).
The ``jaxdl`` command keeps one heap: it tunes the allocator (which keeps it) and
turns on JAX's persistent compilation cache, which cannot store a program with
several heaps; a script that turns that cache on keeps one heap too.
``JAXDL_XLA_HEAPS=one`` compiles every step as ``jax.jit`` would (one heap), for
comparison (scripts/bench_heaps.py); run folders record the setting and why a
process keeps one heap (provenance.json's ``xla_heaps``).
"""

import os
from collections.abc import Callable
from typing import Any

import jax

from jaxdl import host
from jaxdl.errors import ConfigError

# The largest heap: below glibc's largest adaptive mmap threshold (32 MiB on
# 64-bit), with room for the block's header and alignment.
HEAP_BYTES = 30 << 20
HEAP_OPTION = "xla_multiheap_size_constraint_per_heap"
HEAPS_ENV = "JAXDL_XLA_HEAPS"
MODES = ("split", "one")


def setting() -> dict:
  """What this process does: ``{"mode", "heap_bytes", "one_heap_because"}``.

  ``mode`` is ``$JAXDL_XLA_HEAPS`` (default split); ``one_heap_because`` says why
  every step keeps one heap here whatever its arrays (None: steps whose arrays fit
  are split): asked for; the host allocator is tuned (jaxdl.host: it keeps one
  large heap already, as in the ``jaxdl`` command); or JAX's persistent
  compilation cache is on (XLA:CPU cannot serialize a program with several heaps:
  "Multiple temp buffer allocations found").

  Raises:
    ConfigError: the variable is set to anything else.
  """
  mode = os.environ.get(HEAPS_ENV, "") or "split"
  if mode not in MODES:
    raise ConfigError(f"{HEAPS_ENV}={mode!r} is not one of {', '.join(MODES)}; unset it for "
                      "the default (split)")
  because = None
  if mode == "one":
    because = f"{HEAPS_ENV}=one"
  elif host.allocator_state()["applied"]:
    because = "the host allocator is tuned and keeps one heap"
  elif jax.config.jax_compilation_cache_dir:
    because = "JAX's persistent compilation cache is on and cannot store several heaps"
  return {"mode": mode, "heap_bytes": HEAP_BYTES, "one_heap_because": because}


def largest_array_bytes(jaxpr: Any) -> int:
  """Bytes of the largest array any equation of ``jaxpr`` makes, sub-jaxprs included.

  Args:
    jaxpr: a ``Jaxpr`` or ``ClosedJaxpr`` (``jax.jit(f).trace(*args).jaxpr``). The
      bodies of scans, loops, conditionals, custom derivatives and nested jits
      are searched too; a scan's stacked outputs are its equation's own outputs.
  """
  largest = 0
  pending = [getattr(jaxpr, "jaxpr", jaxpr)]
  while pending:
    for eqn in pending.pop().eqns:
      for var in eqn.outvars:
        if hasattr(var.aval, "shape") and hasattr(var.aval, "dtype"):  # Not tokens.
          largest = max(largest, var.aval.size * var.aval.dtype.itemsize)
      pending.extend(_sub_jaxprs(eqn.params))
  return largest


def _sub_jaxprs(params: dict) -> list:
  found = []
  for value in params.values():
    for item in value if isinstance(value, (list, tuple)) else (value,):
      inner = getattr(item, "jaxpr", item)  # A ClosedJaxpr holds its Jaxpr as .jaxpr.
      if hasattr(inner, "eqns"):
        found.append(inner)
  return found


def heap_options(jaxpr: Any, platform: str) -> dict | None:
  """The compile options that split ``jaxpr``'s temporaries into kept heaps, or None.

  None (one heap, as ``jax.jit`` compiles) where splitting is not needed or not
  possible: on other backends than CPU (their allocators pool memory themselves);
  where ``setting()`` names a reason for the whole process; and where an array
  the program makes is larger than ``HEAP_BYTES``.
  """
  if (platform != "cpu" or setting()["one_heap_because"]
      or largest_array_bytes(jaxpr) > HEAP_BYTES):
    return None
  return {HEAP_OPTION: HEAP_BYTES}


class HeapSplitJit:
  """``jax.jit(fn, **jit_kwargs)``, compiled with ``heap_options`` where they apply.

  The choice is made at the first call, from the traced program's arrays (a
  trace JAX keeps, so the call does not trace twice); later calls, with other
  shapes too, compile the same way.
  """

  def __init__(self, fn: Callable, platform: str, **jit_kwargs):
    self._fn, self._platform, self._jit_kwargs = fn, platform, jit_kwargs
    self._plain = jax.jit(fn, **jit_kwargs)
    self._chosen: Callable | None = None
    self.options: dict | None = None  # What the first call chose (None: compiled as jax.jit).

  def __call__(self, *args):
    if self._chosen is None:
      self.options = heap_options(self._plain.trace(*args).jaxpr, self._platform)
      self._chosen = self._plain if self.options is None else jax.jit(
          self._fn, **self._jit_kwargs, compiler_options=self.options)
    return self._chosen(*args)
