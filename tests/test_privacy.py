"""DP-SGD: per-example gradients, clipping and noise, Poisson sampling, and the accountant."""

import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import optimize, stats

from conftest import experiment
from jaxdl import data, models
from jaxdl.errors import ConfigError
from jaxdl.training import build_optimizer, create_train_state, make_train_step, train_and_evaluate
from jaxdl.training import feeding, privacy
from jaxdl.training.objectives import classification
from jaxdl.training.steps import apply_model


@pytest.fixture(scope="module")
def setup():
  cfg = experiment("dp_cnn_digits")
  datasets = data.build(cfg.data)
  model = models.build(cfg, datasets.spec)
  tx = build_optimizer(cfg.optim, 100, 10)
  # A module-wide fixture, shared by several tests: one fixed key.
  state = create_train_state(jax.random.PRNGKey(0), model, tx, datasets.spec)
  batch = next(data.train_batches(datasets.train, 16, 0, 0))
  return model, tx, state, batch


@pytest.mark.slow
def test_per_example_gradients_equal_one_at_a_time(getkey, setup):
  model, _, state, batch = setup

  def loss_of_one(params, example, key):
    del key
    one = {k: v[None] for k, v in example.items()}
    _, sums = classification(apply_model(model, {"params": params}, one, train=False), one)
    return sums["loss"], sums

  grads, _ = privacy.per_example_grads(loss_of_one, state.params, batch, getkey())
  for i in (0, 7, 15):
    single = {k: v[i:i + 1] for k, v in batch.items()}
    expected = jax.grad(lambda p: classification(
        apply_model(model, {"params": p}, single, train=False), single)[1]["loss"])(state.params)
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda g: g[i], grads), expected,
                                rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_zero_noise_and_no_clipping_is_plain_training(setup):
  model, tx, state, batch = setup
  plain = jax.jit(make_train_step(model, tx, classification))
  private = jax.jit(make_train_step(model, tx, classification, privacy={
      "clip_norm": 1e9, "noise_multiplier": 0.0, "expected_batch": 16, "chunk": 4}))
  a, b = state, state
  for _ in range(3):
    a, _ = plain(a, batch)
    b, sums = private(b, batch)
  chex.assert_trees_all_close(a.params, b.params, rtol=1e-5, atol=1e-6)
  assert float(sums["clipped"]) == 0.0


def test_clipping_bounds_every_example_and_noise_has_the_right_scale(getkey):
  grads = {"w": jnp.array([[3.0, 4.0], [0.3, 0.4], [30.0, 40.0]])}  # Norms 5, 0.5, 50.
  mask = jnp.array([1.0, 1.0, 0.0])  # The third is padding.
  mean, clipped = privacy.clipped_noisy_gradient(grads, mask, 1.0, 0.0, 4, getkey())
  np.testing.assert_allclose(mean["w"], (np.array([0.6, 0.8]) + np.array([0.3, 0.4])) / 4)
  assert float(clipped) == 0.5
  zeros = {"w": jnp.zeros((8, 20_000))}
  noisy, _ = privacy.clipped_noisy_gradient(zeros, jnp.ones(8), 2.0, 1.5, 8,
                                            getkey())
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


def _subsampled_gaussian_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
  """An independent RDP bound of the Poisson-subsampled Gaussian mechanism.

  Mironov, Talwar and Zhang 2019 (Section 3.3): at integer orders alpha,
  A = sum_k C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2)) and
  RDP(alpha) = log(A) / (alpha - 1); T steps compose to T * RDP(alpha); converted
  to (epsilon, delta) as in Balle et al. 2020 (Theorem 21).
  """
  best = math.inf
  for alpha in range(2, 257):
    k = np.arange(alpha + 1)
    log_terms = (np.array([math.lgamma(alpha + 1) - math.lgamma(i + 1) - math.lgamma(alpha - i + 1)
                           for i in k])
                 + (alpha - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * sigma**2))
    rdp = steps * float(np.logaddexp.reduce(log_terms)) / (alpha - 1)
    eps = rdp + math.log1p(-1 / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
    best = min(best, eps)
  return best


@pytest.mark.parametrize("sigma, q, steps", [(1.1, 64 / 1294, 315), (0.8, 0.01, 1000),
                                             (2.0, 0.2, 50), (3.0, 0.6, 20)])
def test_accountant_at_q_below_one_matches_an_independent_rdp_bound(sigma, q, steps):
  independent = _subsampled_gaussian_epsilon(sigma, q, steps, 1e-5)
  rdp = privacy.epsilon(sigma, q, steps, 1e-5, "rdp")
  # The accountant also searches fractional orders, so it can only be a little tighter.
  assert independent * 0.97 <= rdp <= independent * (1 + 1e-9)
  assert privacy.epsilon(sigma, q, steps, 1e-5, "pld") <= rdp * 1.001  # PLD is tighter still.


def test_poisson_batches_include_each_example_with_probability_q():
  n, q, steps = 200, 0.1, 2000
  split = data.Split(np.arange(n, dtype=np.float32)[:, None], np.zeros(n, np.int32))
  sampler = data.PoissonBatches(split, q, 60, seed=3, epoch=0, steps=steps)
  counts, sizes = np.zeros(n), []
  for batch in sampler:
    real = batch["inputs"][batch["mask"] == 1, 0].astype(int)
    assert np.all(batch["mask"][:len(real)] == 1)  # Drawn examples first, padding after.
    counts[real] += 1
    sizes.append(len(real))
  assert sampler.truncated == 0
  expected, sd = steps * q, math.sqrt(steps * q * (1 - q))
  assert np.all(np.abs(counts - expected) < 6 * sd)
  assert abs(counts.mean() - expected) < 6 * sd / math.sqrt(n)
  # Batch sizes are Binomial(n, q): mean nq, variance nq(1 - q) (not a fixed size).
  assert np.mean(sizes) == pytest.approx(n * q, rel=0.02)
  assert np.var(sizes) == pytest.approx(n * q * (1 - q), rel=0.1)


def test_poisson_batches_replay_from_any_step_and_differ_between_epochs():
  split = data.Split(np.arange(50, dtype=np.float32)[:, None], np.zeros(50, np.int32))
  whole = list(data.PoissonBatches(split, 0.2, 30, seed=0, epoch=1, steps=6))
  tail = list(data.PoissonBatches(split, 0.2, 30, seed=0, epoch=1, steps=6, start=4))
  for a, b in zip(whole[4:], tail):
    chex.assert_trees_all_equal(a, b)
  other = list(data.PoissonBatches(split, 0.2, 30, seed=0, epoch=2, steps=6))
  assert any(not np.array_equal(a["mask"], b["mask"]) for a, b in zip(whole, other))


def test_an_overflowing_draw_is_truncated_and_counted():
  split = data.Split(np.arange(100, dtype=np.float32)[:, None], np.zeros(100, np.int32))
  sampler = data.PoissonBatches(split, 0.5, 10, seed=0, epoch=0, steps=3)
  batches = list(sampler)
  assert sampler.truncated == 3
  for batch in batches:
    assert batch["mask"].sum() == 10 and batch["truncated"].sum() == 1.0


def _binomial_tail(n: int, q: float, bound: int) -> float:
  """P(Binomial(n, q) > bound), summed in log space (independent of scipy)."""
  k = np.arange(bound + 1, n + 1)
  logs = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
  logs += k * math.log(q) + (n - k) * math.log1p(-q)
  return float(np.exp(np.logaddexp.reduce(logs))) if len(k) else 0.0


def test_the_padded_batch_is_the_smallest_that_overflows_rarely_enough():
  n, q, steps = 1294, 64 / 1294, 315
  bound = privacy.padded_batch_size(n, q, steps)
  assert steps * _binomial_tail(n + 1, q, bound) <= privacy.OVERFLOW
  assert steps * _binomial_tail(n + 1, q, bound - 1) > privacy.OVERFLOW
  assert privacy.padded_batch_size(n, q, steps, multiple=16) % 16 == 0


@pytest.mark.slow
def test_chunked_private_gradient_skips_padding_and_equals_the_direct_sum(setup):
  model, tx, state, batch = setup
  real = 6  # A Poisson draw of 6 examples, padded to 16.
  padded = {k: v.copy() for k, v in batch.items()}
  padded["mask"] = (np.arange(16) < real).astype(np.float32)
  settings = {"clip_norm": 0.5, "noise_multiplier": 0.0, "expected_batch": 8}
  sgd = optax.sgd(1.0)
  chunked = jax.jit(make_train_step(model, sgd, classification, privacy={**settings, "chunk": 4}))
  whole = jax.jit(make_train_step(model, sgd, classification, privacy={**settings, "chunk": 16}))
  a, sums = chunked(state.replace(opt_state=sgd.init(state.params)), padded)
  b, _ = whole(state.replace(opt_state=sgd.init(state.params)), padded)
  chex.assert_trees_all_close(a.params, b.params, rtol=1e-5, atol=1e-7)

  @jax.jit  # One compile for the six examples (they share shapes).
  @jax.grad
  def grad_of(params, one):
    return classification(apply_model(model, {"params": params}, one, train=False), one)[1]["loss"]

  clipped, norms = [], []
  for i in range(real):
    g = grad_of(state.params, {k: v[i:i + 1] for k, v in batch.items()})
    norms.append(float(optax.tree.norm(g)))
    clipped.append(jax.tree_util.tree_map(lambda x, n=norms[-1]: x * min(1.0, 0.5 / n), g))
  expected = jax.tree_util.tree_map(lambda p, *gs: p - sum(gs) / 8, state.params, *clipped)
  chex.assert_trees_all_close(a.params, expected, rtol=1e-4, atol=1e-6)
  assert float(sums["count"]) == real
  # The fraction clipped is over the drawn examples, not the padded batch.
  assert float(sums["clipped"]) == pytest.approx(sum(n > 0.5 for n in norms) / real)


@pytest.mark.slow
def test_a_dp_run_samples_as_its_accountant_assumes_and_refuses_batch_norm(tmp_path,
                                                                          monkeypatch):
  # A one-conv model on 8x8 digits: the sampling and accounting do not depend on the model.
  # Selection on the worst validation accuracy picks an earlier epoch than the last: the
  # epsilon spent is still that of every step taken.
  cfg = experiment("dp_cnn_digits", "num_epochs=3", "data.image_size=0",
                   "model.name=plugin_models:TinyCNN", "model.batch_norm=false",
                   "select.metric=val_accuracy", "select.mode=min")
  drawn = []
  real = feeding.stream_batches

  def counting(plan, *args, **kwargs):  # The examples each training step actually drew.
    def counted(step):
      batch = plan(step)
      drawn.append(float(batch["mask"].sum()))
      return batch
    return real(counted, *args, **kwargs)

  monkeypatch.setattr(feeding, "stream_batches", counting)
  results = train_and_evaluate(cfg, tmp_path, quiet=True)
  assert results["selected_epoch"] < results["last_epoch"] == 3
  # Binomial(N, q) draws: their mean over the run's steps is q * N = 64 within 4 of its stds.
  assert len(drawn) == results["steps"]
  assert abs(np.mean(drawn) - 64) < 4 * np.sqrt(64 / len(drawn))
  assert results["privacy_epsilon"] == pytest.approx(privacy.epsilon(
      1.1, results["privacy_sampling_rate"], results["steps"], results["privacy_delta"]), rel=1e-9)
  assert 0 < results["privacy_epsilon"] < 10 and results["privacy_noise_multiplier"] == 1.1
  assert results["privacy_sampling"] == "poisson" and results["privacy_accountant"] == "rdp"
  assert results["privacy_sampling_rate"] == pytest.approx(64 / results["num_train"])
  assert results["privacy_padded_batch"] > 64 and results["privacy_padded_batch"] % 16 == 0
  # The truncated mechanism differs from the analysed one on an event of chance OVERFLOW,
  # whose privacy loss is bounded by the neighbouring datasets' odds: (1 + e^eps) * OVERFLOW.
  assert results["privacy_truncation_delta"] == pytest.approx(
      (1 + math.exp(results["privacy_epsilon"])) * privacy.OVERFLOW, rel=1e-9, abs=0)
  row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
  assert "truncated_steps" not in row and row["epsilon"] == results["privacy_epsilon"]
  with pytest.raises(ConfigError, match="batch norm"):
    train_and_evaluate(experiment("dp_cnn_digits", "model.name=deep_cnn", "model.widths=(8,)"),
                       tmp_path / "bn", quiet=True)


def test_each_parameter_draws_its_own_noise(getkey):
  """Noise correlated across parameters of one shape (one key reused) is not the analysed
  mechanism: each coordinate's noise must be independent."""
  zeros = {"a": jnp.zeros(4000), "b": jnp.zeros(4000)}
  noisy = privacy.add_noise(zeros, 1.0, 2.0, 4.0, getkey())
  a, b = np.asarray(noisy["a"]), np.asarray(noisy["b"])
  assert abs(np.corrcoef(a, b)[0, 1]) < 0.1
  assert np.std(a) == pytest.approx(2.0 / 4.0, rel=0.05)


def test_each_example_draws_its_own_dropout_key(getkey):
  """Per-example gradients with one key for all would give every example the same dropout
  mask: the gradient of ``w * noise(key)`` is each example's own draw."""
  batch = {"inputs": jnp.zeros((6, 1)), "mask": jnp.ones(6)}
  loss_of_one = lambda w, example, key: (w * jax.random.normal(key), {})
  grads, _ = privacy.per_example_grads(loss_of_one, jnp.float32(1.0), batch, getkey())
  assert len(np.unique(np.asarray(grads))) == 6


def test_the_truncation_delta_is_the_overflow_chance_times_the_neighbours_odds():
  settings = {"overflow_probability": 1e-12}
  assert privacy.truncation_delta(settings, 2.0) == pytest.approx((1 + math.e**2) * 1e-12,
                                                                   rel=1e-12, abs=0)
  assert math.isfinite(privacy.truncation_delta(settings, 1e6))  # Capped, not overflowing.
