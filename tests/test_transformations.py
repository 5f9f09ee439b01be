"""Every JAX transformation works on every built-in model, whatever kernels sit underneath."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment, init
from jaxdl import data, models
from jaxdl.models.custom_gradients import custom_gradients
from jaxdl.training.steps import apply_model

CASES = [
    ("seed_cnn_digits", ()),
    ("seed_cnn_digits", ("model.name=deep_cnn", "model.widths=(4,)", "model.blocks_per_stage=1",
                         "model.batch_norm=false")),
    ("seed_lstm_mr", ("data.name=digits",)),  # Replaced below by a tiny token dataset.
    ("adding_lstm", ("data.seq_len=6", "data.num_train=64", "data.num_test=16",
                     "model.hidden_sizes=(4,)")),
    ("adding_lstm", ("data.seq_len=6", "data.num_train=64", "data.num_test=16",
                     "model.hidden_sizes=(4,)", "model.cell=gru")),
    # The C++ recurrence (models/native/lstm.py) sits under the train step's gradient only.
    ("adding_lstm", ("data.seq_len=6", "data.num_train=64", "data.num_test=16",
                     "model.hidden_sizes=(4,)", "model.lstm_kernel=native")),
]


def _model_and_batch(name, overrides):
  if name == "seed_lstm_mr":  # The seed's text model (LSTMs) on four token sequences.
    spec = data.DataSpec("tokens", "classification", (7,), "int32", 3, 4, 0, 0, vocab_size=20)
    cfg = experiment("seed_lstm_mr", "model.hidden_sizes=(4,4)", "model.embed_dim=4")
    batch = {"inputs": jnp.arange(28, dtype=jnp.int32).reshape(4, 7) % 20,
             "lengths": jnp.asarray([7, 3, 5, 1], jnp.int32)}
  else:
    cfg = experiment(name, *overrides)
    datasets = data.build(cfg.data)
    spec = datasets.spec
    rows, _ = datasets.train.rows(np.arange(4))
    batch = {k: jnp.asarray(v) for k, v in rows.items() if k != "label"}
  batch["mask"] = jnp.ones((4,), jnp.float32)
  model = models.build(cfg, spec)
  return model, batch


# 12-20 s each: all but the adding-problem LSTM (jaxdl's custom LSTM gradient beneath a
# model, the case forward mode once failed on) run in the slow suite.
@pytest.mark.parametrize("name, overrides", [case if case is CASES[3] else
                                             pytest.param(*case, marks=pytest.mark.slow)
                                             for case in CASES])
def test_forward_mode_vmap_and_second_order_on_a_built_in_model(getkey, name, overrides):
  model, batch = _model_and_batch(name, overrides)
  params = init(model, getkey(), batch["inputs"][:1],
                **({"lengths": batch["lengths"][:1]} if "lengths" in batch else {}))["params"]
  f = lambda p: jnp.sum(jnp.tanh(apply_model(model, {"params": p}, batch, train=False)))
  tangent = jax.tree_util.tree_map(lambda a: jax.random.normal(getkey(), a.shape), params)
  dot = lambda a, b: sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                        jax.tree_util.tree_leaves(b)))
  # Under jit, as training runs them (and one compile each instead of one per operation).
  grads = jax.jit(jax.grad(f))(params)
  # Forward mode: what a custom_vjp refuses.
  _, forward = jax.jit(lambda p, t: jax.jvp(f, (p,), (t,)))(params, tangent)
  np.testing.assert_allclose(forward, dot(grads, tangent), rtol=2e-3, atol=1e-4)
  hvp_reverse = jax.jit(jax.grad(lambda p: dot(jax.grad(f)(p), tangent)))(params)  # grad of grad
  _, hvp_forward = jax.jit(lambda p, t: jax.jvp(jax.grad(f), (p,), (t,)))(params, tangent)
  for a, b in zip(jax.tree_util.tree_leaves(hvp_reverse), jax.tree_util.tree_leaves(hvp_forward)):
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-4)
  one_alone = lambda one: apply_model(model, {"params": params},
                                      {k: v[None] for k, v in one.items()}, train=False)[0]
  per_example = jax.jit(jax.vmap(one_alone))(batch)
  np.testing.assert_allclose(per_example, apply_model(model, {"params": params}, batch,
                                                      train=False), rtol=1e-4, atol=1e-5)
  if jnp.issubdtype(batch["inputs"].dtype, jnp.floating):  # jacfwd of the inputs.
    total = lambda x: apply_model(model, {"params": params}, {**batch, "inputs": x},
                                  train=False).sum()
    jacobian = jax.jit(jax.jacfwd(total))(batch["inputs"])
    assert jacobian.shape == batch["inputs"].shape and bool(jnp.all(jnp.isfinite(jacobian)))


def test_the_custom_kernels_run_only_inside_the_train_steps_gradient(getkey):
  model, batch = _model_and_batch(*CASES[3])
  params = init(model, getkey(), batch["inputs"][:1])["params"]
  # The choice is made when a function is traced (a traced function is cached): fresh ones.
  loss = lambda: lambda p: jnp.sum(apply_model(model, {"params": p}, batch, train=False))
  outside = str(jax.make_jaxpr(loss())(params))
  with custom_gradients():
    inside = str(jax.make_jaxpr(loss())(params))
  assert "custom_vjp_call" in inside and "custom_vjp_call" not in outside
