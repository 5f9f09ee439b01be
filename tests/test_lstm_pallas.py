"""The LSTM recurrence in Pallas kernels (lstm_pallas.py) against JAX's autodiff of the scan.

No GPU here: the kernels run through Pallas's interpreter (the same kernel
code, executed op by op), and a separate test lowers them for CUDA to check
that every operation they use has a Triton lowering.
"""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, init, report_from_fake_devices

from jaxdl.models import LSTMCell, RecurrentLayer, TextClassifier, lstm_pallas
from jaxdl.models.custom_gradients import custom_gradients
from jaxdl.models.lstm_scan import autodiff_lstm_scan as autodiff_recurrence
from jaxdl.models.native import build

interpreted = functools.partial(lstm_pallas.lstm_recurrence,
                                launch=lstm_pallas.Launch(interpret=True))


def recurrence_inputs(key, steps, batch, hidden):
  keys = jax.random.split(key, 6)
  lengths = jax.random.randint(keys[0], (batch,), 0, steps + 1).at[0].set(steps)
  valid = jnp.arange(steps)[:, None] < lengths[None, :]
  return dict(kernel=0.4 * jax.random.normal(keys[1], (hidden, 4 * hidden)),
              projected=jax.random.normal(keys[2], (steps, batch, 4 * hidden)),
              valid=valid, c0=jax.random.normal(keys[3], (batch, hidden)),
              h0=jax.random.normal(keys[4], (batch, hidden)))


# Full float32 products: a GPU's default (TF32) would make the tests compare rounding, not math.
FLOAT32 = jax.default_matmul_precision("float32")


def value_and_grads(recurrence, inputs, weights):
  """A loss that reaches every output, so every cotangent path is exercised."""
  def loss(kernel, projected, c0, h0):
    c_last, h_last, outputs = recurrence(kernel, projected, inputs["valid"], c0, h0)
    return jnp.sum(outputs * weights) + jnp.sum(c_last ** 2) + jnp.sum(jnp.sin(h_last))
  args = [inputs[k] for k in ("kernel", "projected", "c0", "h0")]
  with FLOAT32:
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))(*args)


@pytest.mark.parametrize("steps, batch, hidden, launch", [
    (9, 5, 6, lstm_pallas.Launch()),  # H and B both padded up to a tile of 16.
    pytest.param(6, 32, 16, lstm_pallas.Launch(reload_weights=True),  # Two tiles, no padding.
                 marks=pytest.mark.slow),
], ids=["padded", "two-tiles-reloading-weights"])
def test_values_and_gradients_equal_autodiff_of_the_scan(getkey, steps, batch, hidden, launch):
  inputs = recurrence_inputs(getkey(), steps, batch, hidden)
  weights = jax.random.normal(getkey(), (steps, batch, hidden))
  interpreted_launch = functools.partial(
      lstm_pallas.lstm_recurrence, launch=dataclasses.replace(launch, interpret=True))
  value, grads = value_and_grads(interpreted_launch, inputs, weights)
  ref_value, ref_grads = value_and_grads(autodiff_recurrence, inputs, weights)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for name, got, want in zip(("kernel", "projected", "c0", "h0"), grads, ref_grads):
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6, err_msg=name)
  held = ~np.asarray(inputs["valid"])  # No gradient reaches a step past a sequence's end.
  assert held.any()
  np.testing.assert_array_equal(np.asarray(grads[1])[held], 0.0)


@pytest.mark.slow
def test_under_vmap_each_member_gets_its_own_kernel(getkey):
  """Vectorized sweeps vmap the train step over stacked parameters and data."""
  members = [recurrence_inputs(getkey(), 5, 4, 8) for _ in range(3)]
  stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *members)
  loss = lambda kernel, projected, valid, c0, h0: jnp.sum(
      interpreted(kernel, projected, valid, c0, h0)[2] ** 2)
  grad = jax.grad(loss, argnums=(0, 1))
  args = lambda inputs: [inputs[k] for k in ("kernel", "projected", "valid", "c0", "h0")]
  with FLOAT32:
    together = jax.jit(jax.vmap(grad))(*args(stacked))
    for k, member in enumerate(members):
      for got, want in zip(together, jax.grad(
          lambda *a: jnp.sum(autodiff_recurrence(*a)[2] ** 2), argnums=(0, 1))(*args(member))):
        np.testing.assert_allclose(got[k], want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("steps, batch, hidden, launch", [
    (100, 128, 64, lstm_pallas.Launch()),
    (7, 5, 20, lstm_pallas.Launch(block_batch=32, num_warps=8, reload_weights=True))])
def test_the_gradient_lowers_to_two_triton_kernels_for_cuda(steps, batch, hidden, launch,
                                                            monkeypatch):
  """Every operation in both kernels has a Triton lowering (no GPU needed to check that)."""
  monkeypatch.setattr(build, "_LOADED", [])
  inputs = recurrence_inputs(jax.random.PRNGKey(0), steps, batch, hidden)
  loss = lambda kernel, projected, c0, h0: jnp.sum(lstm_pallas.lstm_recurrence(
      kernel, projected, inputs["valid"], c0, h0, launch)[2])
  args = [inputs[k] for k in ("kernel", "projected", "c0", "h0")]
  lowered = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3))).trace(*args).lower(
      lowering_platforms=("cuda",))
  text = lowered.as_text()
  assert len(re.findall(r"custom_call @__gpu\$xla\.gpu\.triton", text)) == 2
  tile = max(16, launch.block_batch)
  assert re.search(r"grid_x = %d " % -(-batch // tile), text)  # One program per tile.
  assert re.search(r"num_warps = %d " % launch.num_warps, text)
  assert build.loaded() == [lstm_pallas.WHAT]  # What results.json lists as used.


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="on a GPU the kernels run")
def test_on_a_cpu_pallas_warns_and_runs_the_xla_recurrence(getkey, fresh_build_state):
  x = jax.random.normal(getkey(), (3, 6, 2))
  layer = RecurrentLayer(LSTMCell, 4, lstm_kernel="pallas")
  variables = init(layer, getkey(), x)
  with custom_gradients():
    with pytest.warns(RuntimeWarning, match="Pallas LSTM kernel is unavailable "
                      r"\(it runs on GPUs only, not cpu\); using the XLA LSTM recurrence"):
      got = layer.apply(variables, x)
    want = layer.clone(lstm_kernel="xla").apply(variables, x)
  np.testing.assert_array_equal(got, want)


def test_where_the_kernels_apply_on_a_gpu(monkeypatch, fresh_build_state):
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert lstm_pallas.usable(jnp.float32, 64)
  with pytest.warns(RuntimeWarning, match="at most 64 units, not 65"):
    assert not lstm_pallas.usable(jnp.float32, 65)
  with pytest.warns(RuntimeWarning, match="float32 only, not bfloat16"):
    assert not lstm_pallas.usable(jnp.bfloat16, 64)


def test_a_jax_without_pallas_triton_trains_on_xla_and_says_so(getkey, monkeypatch,
                                                              fresh_build_state):
  """JAX deprecated Pallas's Triton backend: where it is gone, jaxdl still imports, asked
  for the kernels warns in one line that names why, and the interpreter still runs them."""
  monkeypatch.setattr(lstm_pallas, "_triton_params", lambda: None)
  backend = jax.default_backend
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  with pytest.warns(RuntimeWarning, match=r"this JAX \(.*\) has no Pallas Triton backend"):
    assert not lstm_pallas.usable(jnp.float32, 64)
  monkeypatch.setattr(jax, "default_backend", backend)
  inputs = recurrence_inputs(getkey(), 3, 4, 8)
  args = [inputs[k] for k in ("kernel", "projected", "valid", "c0", "h0")]
  with FLOAT32:
    for got, want in zip(interpreted(*args), autodiff_recurrence(*args)):
      np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("platform, capability, why", [
    ("cuda 12080", "9.0", None), ("cuda 12080", "8.0", None), ("cuda 13000", "10.0", None),
    ("cuda 12080", "7.5", "compute capability 8.0 or newer, not 7.5"),
    ("rocm 60342", None, "NVIDIA GPUs \\(CUDA\\) only, not ROCm")])
def test_only_cuda_gpus_of_ampere_or_later_take_the_kernels(monkeypatch, fresh_build_state,
                                                            platform, capability, why):
  """Older and AMD GPUs keep XLA's recurrence: under ``auto`` silently, asked for, with a
  warning that names why."""
  import types

  gpu = types.SimpleNamespace(client=types.SimpleNamespace(platform_version=platform),
                              compute_capability=capability)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  monkeypatch.setattr(jax, "devices", lambda *args: [gpu])
  if why is None:
    assert lstm_pallas.usable(jnp.float32, 64)
    return
  assert not lstm_pallas.usable(jnp.float32, 64, quiet=True)
  with pytest.warns(RuntimeWarning, match=why):
    assert not lstm_pallas.usable(jnp.float32, 64)


def test_auto_picks_the_kernels_on_a_gpu_and_xla_silently_where_they_cannot_run(
    getkey, monkeypatch, fresh_build_state):
  """``lstm_kernel='auto'`` (the default) on a GPU: Pallas for float32 up to MAX_HIDDEN units,
  the XLA recurrence without a warning beyond (the kernels interpreted here)."""
  import warnings

  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  monkeypatch.setattr(lstm_pallas, "lstm_recurrence", interpreted)
  x = jax.random.normal(getkey(), (3, 5, 2))

  def pallas_calls(hidden):
    layer = RecurrentLayer(LSTMCell, hidden)
    variables = init(layer, getkey(), x)
    with custom_gradients(), warnings.catch_warnings():
      warnings.simplefilter("error")
      return len(re.findall(r"pallas_call\[", str(jax.make_jaxpr(layer.apply)(variables, x))))

  assert pallas_calls(lstm_pallas.MAX_HIDDEN) == 1
  assert pallas_calls(lstm_pallas.MAX_HIDDEN + 1) == 0


@pytest.mark.slow
def test_the_seed_text_model_runs_its_recurrences_in_the_kernels(getkey, monkeypatch):
  """Where usable (a GPU), both LSTM layers of a text model go through the kernels, and the
  model's gradient is autodiff's. Here the kernels are interpreted, as on a GPU they compile."""
  monkeypatch.setattr(lstm_pallas, "usable", lambda dtype, hidden=0, quiet=False: True)
  monkeypatch.setattr(lstm_pallas, "lstm_recurrence", interpreted)
  tokens = jax.random.randint(getkey(), (6, 12), 2, 50)
  lengths = jnp.asarray([12, 11, 3, 9, 12, 1])
  model = TextClassifier(cell=LSTMCell, hidden_sizes=(8, 8), vocab_size=50, embed_dim=4,
                         num_classes=3, lstm_kernel="pallas")
  params = init(model, getkey(), tokens, lengths)["params"]
  loss = lambda model: lambda p: jnp.sum(jax.nn.log_softmax(
      model.apply({"params": p}, tokens, lengths))[:, 0])
  with custom_gradients():
    kernels = jax.jit(jax.grad(loss(model)))(params)
    jaxpr = str(jax.make_jaxpr(jax.grad(loss(model)))(params))
  assert len(re.findall(r"pallas_call\[", jaxpr)) == 4  # Forward and backward, two layers.
  reference = jax.grad(loss(model.clone(lstm_vjp=False)))(params)
  for got, want in zip(jax.tree_util.tree_leaves(kernels), jax.tree_util.tree_leaves(reference)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_the_train_step_tells_the_kernels_over_which_mesh_its_batch_is_split(getkey,
                                                                           monkeypatch):
  """jit_steps passes its mesh (several devices on its data axis) to make_train_step, whose
  gradient hands it to the LSTM layers' kernels (the test below splits a batch with it)."""
  import optax
  from jax.sharding import Mesh

  from jaxdl.data import DataSpec
  from jaxdl.training import create_train_state, make_train_step
  from jaxdl.training.objectives import classification

  meshes = []
  def recording(*args, batch_mesh=None, **kwargs):
    meshes.append(batch_mesh)
    return interpreted(*args, **kwargs)
  monkeypatch.setattr(lstm_pallas, "usable", lambda dtype, hidden=0, quiet=False: True)
  monkeypatch.setattr(lstm_pallas, "lstm_recurrence", recording)
  model = TextClassifier(cell=LSTMCell, hidden_sizes=(8,), vocab_size=20, embed_dim=4,
                         num_classes=2, lstm_kernel="pallas")
  spec = DataSpec("tokens", "classification", (5,), "int32", 2, 4, 0, 0, vocab_size=20)
  tx = optax.sgd(0.1)
  state = create_train_state(getkey(), model, tx, spec)
  batch = {"inputs": jax.random.randint(getkey(), (4, 5), 2, 20), "label": jnp.arange(4) % 2,
           "mask": jnp.ones(4)}
  mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
  meshes.clear()
  make_train_step(model, tx, classification, batch_mesh=mesh)(state, batch)
  assert meshes == [mesh]
  meshes.clear()
  make_train_step(model, tx, classification)(state, batch)
  assert meshes == [None]


_PER_DEVICE = """
import jax, jax.numpy as jnp, numpy as np, functools, json, sys
sys.path.insert(0, {tests!r})
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from test_lstm_pallas import FLOAT32, recurrence_inputs
from jaxdl.models import lstm_pallas
from jaxdl.models.lstm_scan import autodiff_lstm_scan
mesh = Mesh(np.array(jax.devices()).reshape(2, 1), ("data", "model"))
inputs = recurrence_inputs(jax.random.PRNGKey(0), 6, 32, 8)
split = {{"kernel": P(), "projected": P(None, "data"), "valid": P(None, "data"), "c0": P("data"),
          "h0": P("data")}}
inputs = {{k: jax.device_put(v, NamedSharding(mesh, split[k])) for k, v in inputs.items()}}
names = ("kernel", "projected", "c0", "h0")

def loss(recurrence, kernel, projected, c0, h0):
  c_last, h_last, outputs = recurrence(kernel, projected, inputs["valid"], c0, h0)
  return jnp.sum(outputs ** 2) + jnp.sum(c_last * h_last)

def batches_seen(recurrence):
  # The batch size of every pallas_call's gate inputs in the gradient's jaxpr.
  grad = jax.grad(functools.partial(loss, recurrence), argnums=(0, 1, 2, 3))
  seen = []
  def walk(jaxpr):  # Into shard_map's, custom_vjp's and jit's inner jaxprs too.
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "pallas_call":
        seen.append(max(v.aval.shape[1] for v in eqn.invars if v.aval.ndim == 3))
        continue
      for param in eqn.params.values():
        for inner in param if isinstance(param, (list, tuple)) else [param]:
          inner = getattr(inner, "jaxpr", inner)
          if hasattr(inner, "eqns"):
            walk(inner)
  walk(jax.make_jaxpr(grad)(*[inputs[k] for k in names]).jaxpr)
  return seen

launch = lstm_pallas.Launch(interpret=True)
per_device = functools.partial(lstm_pallas.lstm_recurrence, launch=launch, batch_mesh=mesh)
whole = functools.partial(lstm_pallas.lstm_recurrence, launch=launch)
with FLOAT32:
  got = jax.jit(jax.grad(functools.partial(loss, per_device), argnums=(0, 1, 2, 3)))(
      *[inputs[k] for k in names])
  want = jax.grad(functools.partial(loss, autodiff_lstm_scan), argnums=(0, 1, 2, 3))(
      *[inputs[k] for k in names])
for g, w in zip(got, want):
  np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
print(json.dumps({{"per_device": batches_seen(per_device), "whole": batches_seen(whole)}}))
"""


@pytest.mark.slow
def test_with_the_batch_split_over_devices_each_runs_the_kernels_on_its_own_sequences():
  """Two (fake CPU) devices: each kernel sees 16 of the 32 sequences, not the gathered batch,
  and the gradient is still autodiff's."""
  seen = report_from_fake_devices(_PER_DEVICE.format(tests=str(ROOT / "tests")), devices=2)
  assert seen == {"per_device": [16, 16], "whole": [32, 32]}  # Forward and backward kernels.


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="compiles the Triton kernels: GPU only")
@pytest.mark.parametrize("launch", [lstm_pallas.Launch(), lstm_pallas.Launch(block_batch=32),
                                    lstm_pallas.Launch(reload_weights=True)], ids=str)
def test_compiled_on_a_gpu_the_kernels_equal_autodiff_of_the_scan(getkey, launch):
  inputs = recurrence_inputs(getkey(), 50, 40, 64)
  weights = jax.random.normal(getkey(), (50, 40, 64))
  compiled = functools.partial(lstm_pallas.lstm_recurrence, launch=launch)
  value, grads = value_and_grads(compiled, inputs, weights)
  ref_value, ref_grads = value_and_grads(autodiff_recurrence, inputs, weights)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for name, got, want in zip(("kernel", "projected", "c0", "h0"), grads, ref_grads):
    # The kernel's gradient sums T * B = 2,000 terms, in another order than XLA's: an
    # entry near 0 may differ by 1e-5 of the largest (seen on an H100 at 32 per program).
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()),
                               err_msg=name)


@pytest.mark.parametrize("hidden, fits", [(lstm_pallas.MAX_HIDDEN, True),
                                           (2 * lstm_pallas.MAX_HIDDEN, False)])
def test_the_default_launch_fits_an_h100_up_to_max_hidden(hidden, fits):
  """Compiled without a GPU by the ``triton`` package where it is installed (it comes with
  PyTorch's CUDA builds): up to ``MAX_HIDDEN`` units neither kernel spills registers or
  exceeds a block's shared memory; at twice that, one does (so the bound is not loose)."""
  pytest.importorskip("triton")
  import sys
  sys.path.insert(0, str(ROOT / "scripts"))
  import triton_resources

  launch = lstm_pallas.Launch()
  kernels = triton_resources.triton_ir(launch, 100, 128, hidden)
  assert len(kernels) == 2
  used = [triton_resources.resources(ir, launch, 90) for ir in kernels]
  within = [u["spilled_bytes"] == 0 and u["shared_kb"] <= triton_resources.SHARED_LIMIT_KB[90]
            for u in used]
  assert all(within) == fits, used
