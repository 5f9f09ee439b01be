"""DP-SGD: per-example gradients, clipping and noise, equivalence to SGD, and the accountant."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from conftest import experiment
from jaxdl import data, models
from jaxdl.errors import ConfigError
from jaxdl.train import build_optimizer, create_train_state, make_train_step, train_and_evaluate
from jaxdl.train import privacy
from jaxdl.train.objectives import classification
from jaxdl.train.steps import model_inputs


@pytest.fixture(scope="module")
def setup():
  cfg = experiment("dp_cnn_digits")
  datasets = data.build(cfg.data)
  model = models.build(cfg.model, datasets.spec)
  tx = build_optimizer(cfg.optim, 100, 10)
  state = create_train_state(jax.random.PRNGKey(0), model, tx, datasets.spec)
  batch = next(data.train_batches(datasets.train, 16, 0, 0))
  return model, tx, state, batch


def test_per_example_gradients_equal_one_at_a_time(setup):
  model, _, state, batch = setup

  def loss_of_one(params, example, key):
    del key
    one = {k: v[None] for k, v in example.items()}
    _, sums = classification(model.apply({"params": params}, **model_inputs(one)), one)
    return sums["loss"], sums

  grads, _ = privacy.per_example_grads(loss_of_one, state.params, batch, jax.random.PRNGKey(0))
  for i in (0, 7, 15):
    single = {k: v[i:i + 1] for k, v in batch.items()}
    expected = jax.grad(lambda p: classification(
        model.apply({"params": p}, **model_inputs(single)), single)[1]["loss"])(state.params)
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda g: g[i], grads), expected,
                                rtol=1e-5, atol=1e-7)


def test_zero_noise_and_no_clipping_is_plain_training(setup):
  model, tx, state, batch = setup
  plain = jax.jit(make_train_step(model, tx, classification))
  private = jax.jit(make_train_step(model, tx, classification, privacy={
      "clip_norm": 1e9, "noise_multiplier": 0.0, "batch_size": 16}))
  a, b = state, state
  for _ in range(3):
    a, _ = plain(a, batch)
    b, sums = private(b, batch)
  chex.assert_trees_all_close(a.params, b.params, rtol=1e-5, atol=1e-6)
  assert float(sums["clipped"]) == 0.0


def test_clipping_bounds_every_example_and_noise_has_the_right_scale():
  grads = {"w": jnp.array([[3.0, 4.0], [0.3, 0.4], [30.0, 40.0]])}  # Norms 5, 0.5, 50.
  mask = jnp.array([1.0, 1.0, 0.0])  # The third is padding.
  mean, clipped = privacy.clipped_noisy_gradient(grads, mask, 1.0, 0.0, 4, jax.random.PRNGKey(0))
  np.testing.assert_allclose(mean["w"], (np.array([0.6, 0.8]) + np.array([0.3, 0.4])) / 4)
  assert float(clipped) == 0.5
  zeros = {"w": jnp.zeros((8, 20_000))}
  noisy, _ = privacy.clipped_noisy_gradient(zeros, jnp.ones(8), 2.0, 1.5, 8,
                                            jax.random.PRNGKey(1))
  np.testing.assert_allclose(float(jnp.std(noisy["w"])), 1.5 * 2.0 / 8, rtol=0.03)


def _analytic_gaussian_epsilon(sigma: float, delta: float) -> float:
  """Balle & Wang 2018 (Theorem 8): the exact epsilon of the Gaussian mechanism, sensitivity 1."""
  def delta_of(eps):
    return (stats.norm.cdf(0.5 / sigma - eps * sigma)
            - math.exp(eps) * stats.norm.cdf(-0.5 / sigma - eps * sigma))
  return optimize.brentq(lambda e: delta_of(e) - delta, 0.0, 100.0)


@pytest.mark.parametrize("sigma", [0.8, 2.0, 5.0])
def test_accountant_matches_the_analytic_gaussian_mechanism(sigma):
  exact = _analytic_gaussian_epsilon(sigma, 1e-5)
  pld = privacy.epsilon(sigma, 1.0, 1, 1e-5, "pld")
  rdp = privacy.epsilon(sigma, 1.0, 1, 1e-5, "rdp")
  assert pld == pytest.approx(exact, rel=0.02)
  assert rdp >= exact * 0.999  # RDP is an upper bound.


def test_calibration_hits_the_target_epsilon():
  sigma = privacy.calibrate_noise(3.0, 256 / 60_000, 60 * 60_000 // 256, 1e-5)
  assert privacy.epsilon(sigma, 256 / 60_000, 60 * 60_000 // 256, 1e-5) == pytest.approx(
      3.0, rel=1e-2)
  assert privacy.epsilon(0.0, 0.1, 10, 1e-5) == math.inf


def test_dp_run_reports_epsilon_and_refuses_batch_norm(tmp_path):
  results = train_and_evaluate(experiment("dp_cnn_digits", "num_epochs=1"), tmp_path, quiet=True)
  assert 0 < results["privacy_epsilon"] < 10 and results["privacy_noise_multiplier"] == 1.1
  with pytest.raises(ConfigError, match="batch norm"):
    train_and_evaluate(experiment("dp_cnn_digits", "model.name=deep_cnn", "model.widths=(8,)"),
                       tmp_path / "bn", quiet=True)
