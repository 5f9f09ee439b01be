"""Shared test setup: strict JAX numerics, paths to the shared real data, small configs."""

import json
import os
import pathlib
import subprocess
import sys
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from jaxdl.configs import apply_overrides, load_config

# Hermetic: the jaxdl command run by tests (in process or not) keeps no compiled programs
# in the user's cache (the run's own cache is set below); tests of the cache set their own.
os.environ["JAXDL_COMPILATION_CACHE"] = "off"

# The quick suite (`-m "not slow"`) compiles XLA's generated CPU code at LLVM -O0, in its
# processes and the commands they start: most of its time is compiling small programs once
# each, and -O0 compiles them about a quarter faster (389 -> 342 s on 2 cores) while a
# training step barely slows (its matmuls and jaxdl's kernels are library code). Results
# may differ from -O2's in the last bits (contracted multiply-adds), so the slow suite, whose
# tests compare trainings across processes and against tolerances set at XLA's own level,
# keeps that level; so does `JAXDL_TEST_XLA_OPT=default`.
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"


def pytest_configure(config):
  """Before any test computes (JAX reads XLA_FLAGS when its backend starts)."""
  quick = (config.getoption("markexpr", "") or "").replace(" ", "") == "notslow"
  if quick and os.environ.get("JAXDL_TEST_XLA_OPT") != "default" and \
      "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAG}".strip()

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
EXPERIMENTS = ROOT / "experiments"

# Catch silent broadcasting and dtype-promotion bugs in our code (as Equinox's suite does).
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory) -> pathlib.Path:
  """One XLA compilation cache for the whole test run, both xdist workers and the jaxdl
  commands the tests start: the many identical training steps compile once (the quick suite
  measured 5:15 -> 4:24 on 2 cores). It lives in pytest's temporary folder, which pytest
  prunes, never in the user's cache; a cached program is the same program, so no result
  changes."""
  base = tmp_path_factory.getbasetemp()
  folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "xla-cache"
  os.environ["JAXDL_COMPILATION_CACHE"] = str(folder)
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
  return folder


def shared_data(name: str) -> pathlib.Path:
  """A folder of ../shared/data, or skip the test where it is absent (a user's machine)."""
  path = SHARED_DATA / name
  if not path.is_dir():
    pytest.skip(f"{path} is not present")
  return path


def comparable_files(workdir: pathlib.Path) -> tuple[list[dict], dict]:
  """A run's metrics.jsonl rows and results.json, wall-clock values as their kind only.

  Two runs of one config differ in how long they took, never in which fields they hold:
  a wall-clock field that vanished, or became None or 0, still differs here.
  """
  from jaxdl.training.results import WALL_CLOCK

  kind = lambda v: "positive" if isinstance(v, (int, float)) and v > 0 else repr(v)
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  rows = [{k: kind(v) if k in ("wall_s", "examples_per_s") else v for k, v in r.items()}
          for r in rows]
  results = json.loads((workdir / "results.json").read_text())
  return rows, {k: kind(v) if k in WALL_CLOCK else v for k, v in results.items()}


def init(module, key, *inputs, **kwargs):
  """``module.init(key, *inputs, **kwargs)`` compiled as one program, as training does.

  Flax's ``init`` run op by op compiles each layer's operations on their own: most of
  the set-up time of a model test (a bidirectional GRU classifier: 4.5 s -> 2.0 s).
  Array arguments are traced, the rest (``train=False``) static.
  """
  arrays = {k: v for k, v in kwargs.items() if isinstance(v, jax.Array)}
  static = {k: v for k, v in kwargs.items() if k not in arrays}
  return jax.jit(lambda key, inputs, arrays: module.init(key, *inputs, **arrays, **static))(
      key, inputs, arrays)


def float64_params(module, key, *inputs, **kwargs):
  """``module``'s parameters initialised on float32 inputs, as float64 (under enable_x64)."""
  params = init(module, key, *(jnp.asarray(x, jnp.float32) for x in inputs), **kwargs)["params"]
  return jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)


def assert_gradient_matches_finite_differences(loss, params, eps=1e-6, rtol=1e-6, atol=1e-9):
  """``jax.grad(loss)`` against central differences, coordinate by coordinate (float64)."""
  flat, unravel = ravel_pytree(params)
  numeric = np.array([(loss(unravel(flat.at[i].add(eps))) - loss(unravel(flat.at[i].add(-eps))))
                      / (2 * eps) for i in range(flat.size)])
  np.testing.assert_allclose(ravel_pytree(jax.grad(loss)(params))[0], numeric, rtol=rtol,
                             atol=atol)


def quadratic_run(tx, params=None, steps: int = 6):
  """``params`` after ``steps`` updates of optimizer ``tx`` on the gradient ``2 p + 0.3 i`` at
  step ``i`` (a quadratic pulled a little further each step): a trajectory to compare two
  optimizers on."""
  if params is None:
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
  start = params
  with jax.numpy_dtype_promotion("standard"):  # Optax's own step-count arithmetic.
    state = tx.init(params)
    for i in range(steps):
      grads = jax.tree_util.tree_map(lambda p: 2 * p + 0.3 * i, params)
      updates, state = tx.update(grads, state, params)
      params = optax.apply_updates(params, updates)
  # Two runs that never moved would compare equal whatever the optimizers: they moved.
  assert steps == 0 or any(not np.array_equal(a, b) for a, b in zip(
      jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(start)))
  return params


def assert_float32_close(got, want32, want64, factor: float = 4.0, ulps: float = 64.0,
                         err_msg: str = "", scales=None) -> None:
  """``got`` (float32) is as close to the float64 result ``want64`` as float32 rounding allows.

  Sums of many float32 terms taken in another order differ by a few ulps of the terms'
  magnitude, not of the result's: a sum whose terms cancel differs by far more than its own
  size times eps (an AMD host: 2.95e-6 on an entry of 1.5e-2), so a fixed ``rtol``/``atol``
  fails on another CPU or, loosened, lets real errors through. In each array ``got`` may be
  off ``want64`` by ``factor`` times the largest error of ``want32`` (the same computation by
  XLA in float32, which measures this computation's rounding), or by ``ulps`` float32 ulps of
  the array's largest entry (which bounds its terms), whichever is larger. A missing term or
  a wrong sign is an error of a term's own size: about 1e5 of those ulps in these tests.
  Where an array's entries are not its terms' size (a scalar loss summed over a whole batch,
  whose terms cancel), ``scales`` gives, per array, the magnitude of its terms (None: the
  array's largest entry).
  """
  eps = float(np.finfo(np.float32).eps)
  leaves = [jax.tree_util.tree_leaves(t) for t in (got, want32, want64)]
  for i, (g, w32, w64) in enumerate(zip(*leaves)):
    g, w32, w64 = (np.asarray(a, np.float64) for a in (g, w32, w64))
    scale = scales[i] if scales is not None and scales[i] is not None else float(
        np.max(np.abs(w64), initial=0.0))
    allowed = max(factor * float(np.max(np.abs(w32 - w64), initial=0.0)), ulps * eps * scale)
    error = float(np.max(np.abs(g - w64), initial=0.0))
    assert error <= allowed, (f"{err_msg} array {i}: error {error:.3g} against float64 exceeds "
                              f"the {allowed:.3g} that float32 rounding explains")


def assert_trees_close_in_norm(got, want, rtol: float, err_msg: str = "") -> None:
  """Each leaf of ``got`` is within ``rtol`` of ``want`` in the L2 norm (``|g - w| <= rtol |w|``).

  For states after several training steps that went two rounding paths: a relu or a max-pool
  window whose inputs differ in the last bit can flip, sending one example's gradient to
  another entry, so a single entry may differ by percent while the leaf as a whole stays at
  float32 level. A wrong update (a member's gradient on another's parameters, a missing step)
  moves the whole leaf by the size of a step: 1e-2 and more of its norm here.
  """
  for path, g, w in zip(jax.tree_util.tree_leaves_with_path(got),
                        jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
    error, scale = float(np.linalg.norm(g - w)), float(np.linalg.norm(w))
    assert error <= rtol * scale, (f"{err_msg} {jax.tree_util.keystr(path[0])}: |got - want| "
                                   f"{error:.3g} exceeds {rtol:g} of |want| {scale:.3g}")


class Crash(Exception):
  """Stands for a process dying at this point."""


def crash_at_batch(monkeypatch, n: int, action=None) -> dict:
  """Makes the loop's ``n``-th training batch of this session crash (or call ``action``).

  Returns the counter of batches drawn, so a test can assert the crash happened.
  """
  from jaxdl.training import feeding as feeding_module

  real = feeding_module.stream_batches
  seen = {"n": 0}

  def batches(*args, **kwargs):
    for batch in real(*args, **kwargs):
      seen["n"] += 1
      if seen["n"] == n:
        if action is None:
          raise Crash
        action()
      yield batch

  monkeypatch.setattr(feeding_module, "stream_batches", batches)
  return seen


def experiment(name: str, *overrides: str):
  """The config of experiments/NAME.py (``NAME:VARIANT`` for a variant) with ``key=value``
  overrides applied."""
  file, sep, variant = name.partition(":")
  return apply_overrides(load_config(f"{EXPERIMENTS / file}.py{sep}{variant}"), overrides)


@pytest.fixture
def getkey(request):
  """Fresh PRNG keys (Equinox's pattern): each call splits a new one off a stream seeded by the
  test's id, so keys differ between calls and tests yet a test reruns identically."""
  state = {"key": jax.random.PRNGKey(zlib.crc32(request.node.nodeid.encode()))}

  def next_key() -> jax.Array:
    state["key"], new = jax.random.split(state["key"])
    return new

  return next_key


@pytest.fixture
def key(getkey):
  return getkey()


def run_on_fake_devices(code: str, devices: int) -> subprocess.CompletedProcess:
  """Python ``code`` in a fresh process whose JAX sees ``devices`` CPU devices (the count is
  fixed when JAX starts, hence the process)."""
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=600)


def report_from_fake_devices(code: str, devices: int) -> dict:
  """``run_on_fake_devices``, which must succeed; the JSON its last line of output holds."""
  out = run_on_fake_devices(code, devices)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def maybe_jit(fn, jit: bool):
  """``fn`` jitted or not: tests run both, as chex.variants did."""
  return jax.jit(fn) if jit else fn


@pytest.fixture
def fresh_build_state():
  """Forgets which native kernels loaded and which warnings were given, before and after."""
  from jaxdl.models.native import build

  build.load.cache_clear()
  build.unavailable.cache_clear()
  yield
  build.load.cache_clear()
  build.unavailable.cache_clear()


WORDS = {"pos": ["good", "great", "fine", "nice"], "neg": ["bad", "awful", "poor", "dull"],
         "LOC": ["where", "city", "country"], "NUM": ["how", "many", "year"]}


def cue_sentences(rng, cue: str, n: int, other: str, longest: int = 8) -> list[str]:
  """Sentences of 3 to ``longest`` words, mostly from ``cue``'s class, so a CNN can learn it."""
  out = []
  for _ in range(n):
    words = [str(rng.choice(WORDS[cue] if rng.random() < 0.8 else WORDS[other]))
             for _ in range(rng.integers(3, longest + 1))]
    out.append(" ".join(words))
  return out


def polarity_folder(folder: pathlib.Path, per_class: int, rng, longest: int = 8) -> pathlib.Path:
  """A sentence set laid out as MR (rt-polarity.pos / .neg), learnable from its words."""
  folder.mkdir(parents=True)
  for label, other in (("pos", "neg"), ("neg", "pos")):
    sentences = cue_sentences(rng, label, per_class, other, longest)
    (folder / f"rt-polarity.{label}").write_text("\n".join(sentences) + "\n")
  return folder


@pytest.fixture
def native_kernels_on(monkeypatch):
  """'auto' picks the C++ kernels wherever they build, not only on the AVX-512 CPUs where it
  picks them for speed: the tests of the kernels check them on any CPU (and the commands
  they start inherit the setting). Elsewhere the suite runs what 'auto' picks on this CPU."""
  monkeypatch.setenv("JAXDL_NATIVE_KERNELS", "on")
