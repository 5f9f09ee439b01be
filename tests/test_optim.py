"""Optimizers and parameter constraints: optax's own optimizers by name, Adadelta + max-norm
against a NumPy transcription of Kim's (2014) update, constraints under vmap, DP-SGD and
bfloat16, and the config errors a researcher meets first."""

import textwrap

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import experiment, quadratic_run
from jaxdl import bibtex as cite
from jaxdl.configs import apply_overrides
from jaxdl.configs.loading import config_from_dict, config_to_dict
from jaxdl.errors import ConfigError
from jaxdl.optim import CONSTRAINTS, OPTIMIZERS, SCHEDULES, build_constraints, build_optimizer
from jaxdl.optim.build import own_fields
from jaxdl.optim.constraints import max_norm
from jaxdl.sweeps.groups import group_members
from jaxdl.training.objectives import classification
from jaxdl.training.state import TrainState
from jaxdl.training.steps import make_train_step


class Linear(nn.Module):
  """Softmax regression: ``[batch, 4] -> [batch, 3]`` logits."""

  @nn.compact
  def __call__(self, x, *, train):
    del train
    return nn.Dense(3)(x)


RULE = np.array([[1.0, -1.0, 0.0], [0.5, 0.5, -1.0], [0.0, 1.0, 1.0], [-1.0, 0.0, 0.5]])


def _batch(seed: int, n: int = 8):
  """Separable data (labels from a fixed linear rule): training grows the weights, so a
  max-norm constraint binds on step after step."""
  x = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32) * 3
  return {"inputs": x, "label": np.argmax(x @ RULE, 1).astype(np.int32),
          "mask": np.ones(n, np.float32)}


def _state(tx, seed: int = 0) -> TrainState:
  rng = np.random.default_rng(100 + seed)
  # Near the rule: the gradient then pushes the kernel's columns outward.
  params = {"Dense_0": {"kernel": jnp.asarray(RULE + rng.normal(size=(4, 3)) * 0.3, jnp.float32),
                        "bias": jnp.asarray(rng.normal(size=3) * 0.1, jnp.float32)}}
  return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), {}, jax.random.key_data(
      jax.random.PRNGKey(seed)))


KIM = ("optim.name=adadelta", "optim.learning_rate=1.0", "optim.rho=0.95", "optim.eps=1e-6",
       "optim.schedule=constant")
SOFTMAX = {"softmax": {"name": "max_norm", "params": "Dense_0/kernel", "max_norm": 0.5}}


def _kim_numpy(params, batches, rho=0.95, eps=1e-6, norm_lim=0.5):
  """Kim's (2014) conv_net_classes.sgd_updates_adadelta in float64, for softmax regression:
  Adadelta on every parameter, then each column of the 2-D weight rescaled to norm <= s."""
  w, b = (np.asarray(params["Dense_0"][k], np.float64) for k in ("kernel", "bias"))
  acc = {k: [np.zeros_like(v), np.zeros_like(v)] for k, v in (("w", w), ("b", b))}
  bound = []
  for batch in batches:
    x, y = batch["inputs"].astype(np.float64), batch["label"]
    z = x @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = (p - np.eye(3)[y]) / len(y)
    grads = {"w": x.T @ d, "b": d.sum(0)}
    stepped = {}
    for k, value in (("w", w), ("b", b)):
      exp_sg, exp_su = acc[k]
      exp_sg = rho * exp_sg + (1 - rho) * grads[k] ** 2
      step = -(np.sqrt(exp_su + eps) / np.sqrt(exp_sg + eps)) * grads[k]
      acc[k] = [exp_sg, rho * exp_su + (1 - rho) * step ** 2]
      stepped[k] = value + step
    col_norms = np.sqrt((stepped["w"] ** 2).sum(0))
    bound.append(bool((col_norms > norm_lim).any()))
    w = stepped["w"] * (np.clip(col_norms, 0, norm_lim) / (1e-7 + col_norms))
    b = stepped["b"]
  return w, b, bound


@pytest.mark.parametrize("jit", [True, False])
def test_adadelta_with_max_norm_is_kims_update(jit):
  cfg = experiment("seed_cnn_digits", *KIM)
  tx = build_optimizer(cfg.optim, 10, 5)
  state = _state(tx)
  constrain = build_constraints(SOFTMAX, state.params)
  step = make_train_step(Linear(), tx, classification, constrain=constrain)
  step = jax.jit(step) if jit else step
  batches = [_batch(i) for i in range(6)]
  want_w, want_b, bound = _kim_numpy(state.params, batches)
  assert sum(bound) >= 4, bound  # The constraint did something on most steps.
  for batch in batches:
    state, _ = step(state, batch)
  np.testing.assert_allclose(state.params["Dense_0"]["kernel"], want_w, rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(state.params["Dense_0"]["bias"], want_b, rtol=2e-5, atol=1e-6)
  assert np.linalg.norm(state.params["Dense_0"]["kernel"], axis=0).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_built_in_optimizer_is_optax_own_with_its_defaults(name):
  cfg = apply_overrides(experiment("seed_cnn_digits", "optim.schedule=constant"),
                        [f"optim.name={name}", "optim.learning_rate=0.01"]).optim
  part = OPTIMIZERS.resolve(name)
  # jaxdl's optim.weight_decay (0 here) replaces optax's default where it is the optimizer's.
  decay = {"weight_decay": cfg.weight_decay} if part.decoupled_decay else {}
  ours, theirs = build_optimizer(cfg, 10, 5), getattr(optax, name)(0.01, **own_fields(cfg),
                                                                   **decay)
  params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.ones(3)}
  # Injected hyperparameters are float32 arrays, optax's own Python floats: float32 rounding.
  chex.assert_trees_all_close(quadratic_run(ours, params, 4), quadratic_run(theirs, params, 4),
                              rtol=1e-5, atol=1e-7)
  assert set(part.injected) <= set(part.fields)


@pytest.mark.parametrize("name, fields", [("sgd", {"nesterov": True, "momentum": 0.5}),
                                          ("adam", {"b1": 0.5, "b2": 0.9, "eps": 1e-3})])
def test_the_optimizers_own_fields_reach_optax(name, fields):
  overrides = [f"optim.name={name}", "optim.learning_rate=0.1", "optim.schedule=constant",
               *(f"optim.{k}={v}" for k, v in fields.items())]
  cfg = apply_overrides(experiment("seed_cnn_digits"), overrides).optim
  ours, theirs = build_optimizer(cfg, 10, 5), getattr(optax, name)(0.1, **fields)
  params = {"w": jnp.linspace(-1.0, 1.0, 6)}
  chex.assert_trees_all_close(quadratic_run(ours, params, 3), quadratic_run(theirs, params, 3),
                              rtol=1e-5, atol=1e-7)


def test_optimizer_fields_come_from_the_chosen_optimizer_and_typos_are_named():
  cfg = experiment("seed_cnn_digits", *KIM)
  assert (cfg.optim.rho, cfg.optim.eps) == (0.95, 1e-6) and "b1" not in cfg.optim
  # Adam's eps (1e-8) is not adadelta's (1e-6): a new optimizer starts from its defaults.
  assert apply_overrides(experiment("seed_cnn_digits"), ["optim.name=adadelta"]).optim.eps == 1e-6
  sgd = experiment("seed_cnn_digits", "optim.name=sgd")
  assert (sgd.optim.momentum, sgd.optim.nesterov) == (0.9, False)
  with pytest.raises(ConfigError, match="did you mean 'adadelta'"):
    experiment("seed_cnn_digits", "optim.name=adadelt")
  with pytest.raises(ConfigError, match="optim.momentum"):
    experiment("seed_cnn_digits", "optim.momentum=0.5")  # Adam has none.


def test_a_run_folder_from_before_keeps_loading():
  """config.json of an older jaxdl saved sgd's momentum and nesterov under every optimizer."""
  saved = config_to_dict(experiment("seed_cnn_digits"))
  saved["optim"].update(momentum=0.9, nesterov=False)
  config = config_from_dict(saved)
  assert "momentum" not in config.optim and config.optim.b1 == 0.9
  kim = config_from_dict(config_to_dict(experiment("seed_cnn_digits", *KIM)))
  assert kim.optim.rho == 0.95


def test_a_researchers_optimizer_and_constraint_by_import_path(tmp_path):
  (tmp_path / "my_parts.py").write_text(textwrap.dedent('''
      import jax.numpy as jnp
      import optax

      def signed(learning_rate, scale: float = 1.0, power: int = 1):
        return optax.chain(optax.scale_by_sign(), optax.scale(-learning_rate * scale * power))

      def needs_beta(learning_rate, beta):
        return optax.sgd(learning_rate)

      def clamp(param, bound: float = 1.0):
        return jnp.clip(param, -bound, bound)
      '''))
  exp = str(tmp_path / "exp.py")
  config = experiment("seed_cnn_digits", "optim.schedule=constant")
  config.unlock()
  config.experiment = exp
  signed = apply_overrides(config, ["optim.name=my_parts:signed", "optim.scale=0.5"])
  assert signed.optim.power == 1 and OPTIMIZERS.resolve("my_parts:signed", exp).injected == (
      "scale",)
  tx = build_optimizer(signed.optim, 10, 5, exp)
  params = {"w": jnp.array([1.0, -2.0])}
  updates, _ = tx.update({"w": jnp.array([3.0, -0.1])}, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], [-5e-4, 5e-4])
  with pytest.raises(ConfigError, match="needs 'optim.beta'"):
    apply_overrides(config, ["optim.name=my_parts:needs_beta"])
  project = build_constraints({"all": {"name": "my_parts:clamp", "params": ".*", "bound": 0.5}},
                              params, exp)
  np.testing.assert_array_equal(project(params)["w"], [0.5, -0.5])


@pytest.mark.parametrize("shape, per_unit", [((4, 3), True), ((3, 3, 2, 5), True),
                                             ((4, 3), False), ((7,), True)])
def test_max_norm_against_numpy(getkey, shape, per_unit):
  w = np.asarray(jax.random.normal(getkey(), shape), np.float64) * 2
  got = max_norm(jnp.asarray(w, jnp.float32), max_norm=1.5, per_unit=per_unit)
  axes = tuple(range(len(shape) - 1)) if per_unit and len(shape) > 1 else None
  norms = np.sqrt((w ** 2).sum(axis=axes, keepdims=True))
  want = w * np.minimum(norms, 1.5) / (1e-7 + norms)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  got_norms = np.sqrt((np.asarray(got, np.float64) ** 2).sum(axis=axes))
  assert got_norms.max() <= 1.5 * (1 + 1e-5) and (norms > 1.5).any()
  # Inside the ball: scaled by norm / (eps + norm) only, as Kim's and Keras's code.
  small = jnp.asarray(w / (10 * norms.max()), jnp.float32)
  np.testing.assert_allclose(max_norm(small, 1.5, per_unit), small, rtol=2e-5)


def test_a_zero_or_tiny_unit_is_scaled_as_kims_code_and_non_negative_clips(getkey):
  w = np.zeros((3, 4), np.float32)
  w[:, 1] = 1e-7  # Norm 1.7e-7: eps matters. Column 0: all zeros, which must stay zeros.
  w[:, 2:] = np.asarray(jax.random.normal(getkey(), (3, 2)))
  got = np.asarray(max_norm(jnp.asarray(w), max_norm=3.0))
  assert np.isfinite(got).all() and not got[:, 0].any()
  norm = np.sqrt(3) * 1e-7
  np.testing.assert_allclose(got[:, 1], w[:, 1] * norm / (1e-7 + norm), rtol=1e-5)
  v = np.asarray(jax.random.normal(getkey(), (5, 3)), np.float32)
  np.testing.assert_array_equal(CONSTRAINTS.resolve("non_negative").project(jnp.asarray(v)),
                                np.maximum(v, 0.0))


def test_constraints_that_match_nothing_twice_or_with_a_typo_are_refused():
  params = _state(optax.sgd(0.1)).params
  with pytest.raises(ConfigError, match="matches no parameter"):  # Matched against the whole path.
    build_constraints({"c": {"name": "max_norm", "params": "kernel"}}, params)
  with pytest.raises(ConfigError, match="matches no parameter; the model's parameters: "
                                        "Dense_0/bias, Dense_0/kernel"):
    build_constraints({"c": {"name": "max_norm", "params": "Dense_1/kernel"}}, params)
  with pytest.raises(ConfigError, match="matches constraints.a and constraints.b"):
    build_constraints({"a": {"name": "non_negative", "params": ".*"},
                       "b": {"name": "max_norm", "params": ".*kernel"}}, params)
  with pytest.raises(ConfigError, match="did you mean 'max_norm'"):
    build_constraints({"c": {"name": "max_norm", "params": ".*", "max_nrom": 3.0}}, params)
  with pytest.raises(ConfigError, match="needs params"):
    build_constraints({"c": {"name": "max_norm"}}, params)
  assert set(CONSTRAINTS.names()) == {"max_norm", "non_negative"}


def test_constraints_hold_for_vmapped_members_dp_sgd_and_bfloat16():
  tx = build_optimizer(experiment("seed_cnn_digits", *KIM).optim, 10, 5)
  state = _state(tx)
  constrain = build_constraints(SOFTMAX, state.params)
  batches = [_batch(i) for i in range(3)]
  lone = jax.jit(make_train_step(Linear(), tx, classification, constrain=constrain))
  members = [_state(tx, seed) for seed in (0, 1)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *members)
  together = jax.jit(jax.vmap(make_train_step(Linear(), tx, classification, constrain=constrain)))
  for batch in batches:
    stacked, _ = together(stacked, jax.tree.map(lambda a: np.stack([a, a]), batch))
    members = [lone(m, batch)[0] for m in members]
  for i, member in enumerate(members):
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], stacked.params), member.params,
                                rtol=1e-5, atol=1e-6)
  private = {"clip_norm": 1.0, "noise_multiplier": 1.0, "expected_batch": 8, "chunk": 4}
  for kwargs in ({"privacy": private}, {"compute_dtype": jnp.bfloat16}):
    step = jax.jit(make_train_step(Linear(), tx, classification, constrain=constrain, **kwargs))
    state = _state(tx)
    for batch in batches:
      state, _ = step(state, batch)
      kernel = state.params["Dense_0"]["kernel"]
      assert kernel.dtype == jnp.float32, kwargs
      assert np.linalg.norm(kernel, axis=0).max() <= 0.5 + 1e-6, kwargs


def test_members_differing_in_an_injected_field_share_a_program():
  configs = [experiment("seed_cnn_digits", *KIM, f"optim.rho={rho}", f"seed={s}")
             for rho, s in ((0.9, 0), (0.95, 1))]
  assert len(group_members(configs)) == 1
  momenta = [experiment("seed_cnn_digits", "optim.name=sgd", f"optim.momentum={m}")
             for m in (0.5, 0.9)]
  assert len(group_members(momenta)) == 1  # sgd's momentum is injected, as always.
  sgd = [experiment("seed_cnn_digits", "optim.name=sgd", f"optim.nesterov={n}")
         for n in ("false", "true")]
  assert len(group_members(sgd)) == 2  # A switch in the update's code: two programs.


def test_the_papers_behind_the_optimizer_and_constraints_are_cited():
  config = experiment("seed_cnn_digits", *KIM)
  config.unlock()
  config.constraints = SOFTMAX
  keys = cite.keys_for(config_to_dict(config))
  assert {"zeiler2012adadelta", "srivastava2014dropout"} <= set(keys)
  assert "kingma2015adam" in cite.keys_for(config_to_dict(experiment("seed_cnn_digits")))
  for registry in (OPTIMIZERS, CONSTRAINTS, SCHEDULES):
    for name in registry.names():
      assert set(registry.resolve(name).cite_keys) <= set(cite.ENTRIES), name


def _sgd_steps(tx, steps: int) -> np.ndarray:
  """The learning rate SGD applied at each of ``steps`` steps (gradient 1 on one weight)."""
  params, rates = {"w": jnp.zeros(())}, []
  state = tx.init(params)
  with jax.numpy_dtype_promotion("standard"):  # Optax's schedules mix ints and floats.
    for _ in range(steps):
      updates, state = tx.update({"w": jnp.ones(())}, state, params)
      rates.append(-float(updates["w"]))
  return np.asarray(rates)


@pytest.mark.parametrize("schedule, want", [
    ("constant", lambda t: 0.1 + 0 * t),
    ("cosine", lambda t: 0.1 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t / 10)))),
    ("warmup_cosine", lambda t: np.where(
        t < 2, 0.1 * t / 2, 0.1 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (t - 2) / 8)))))])
def test_each_built_in_schedule_against_its_formula(schedule, want):
  cfg = experiment("seed_cnn_digits", "optim.name=sgd", "optim.learning_rate=0.1",
                   "optim.momentum=0.0", f"optim.schedule={schedule}", "optim.end_lr_fraction=0.1",
                   "optim.warmup_epochs=0.4").optim
  np.testing.assert_allclose(_sgd_steps(build_optimizer(cfg, 10, 5), 10), want(np.arange(10)),
                             rtol=1e-5, atol=1e-7)


def test_a_researchers_schedule_by_import_path(tmp_path):
  """A step decay beside the experiment, as a function or as a record: one file, one line."""
  (tmp_path / "my_schedules.py").write_text(textwrap.dedent('''
      import jax.numpy as jnp
      from jaxdl.optim import SchedulePart

      def halve_every_3(total_steps, steps_per_epoch):
        return lambda step: 0.5 ** (jnp.asarray(step, jnp.float32) // 3)

      def too_big(total_steps, steps_per_epoch):
        return lambda step: 2.0

      RECORD = SchedulePart("halving", lambda cfg, total, per_epoch: halve_every_3(total, per_epoch),
                            cite_keys=("loshchilov2017sgdr",))
      NOT_A_SCHEDULE = 3
      '''))
  exp = str(tmp_path / "exp.py")
  for name in ("my_schedules:halve_every_3", "my_schedules:RECORD"):
    cfg = experiment("seed_cnn_digits", "optim.name=sgd", "optim.learning_rate=0.1",
                     "optim.momentum=0.0", f"optim.schedule={name}").optim
    rates = _sgd_steps(build_optimizer(cfg, 9, 3, exp), 7)
    np.testing.assert_allclose(rates, [0.1] * 3 + [0.05] * 3 + [0.025], rtol=1e-6)
  for name, message in (("my_schedules:too_big", "must lie in \\(0, 1\\], got 2"),
                        ("my_schedules:NOT_A_SCHEDULE", "is a int, not a SchedulePart"),
                        ("cosin", "unknown optim.schedule 'cosin' \\(did you mean 'cosine'")):
    cfg = experiment("seed_cnn_digits", f"optim.schedule={name}").optim
    with pytest.raises(ConfigError, match=message):
      build_optimizer(cfg, 9, 3, exp)
