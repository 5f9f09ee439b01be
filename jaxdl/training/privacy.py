"""Differentially private training (DP-SGD, Abadi et al. 2016) and its privacy accounting.

Each step computes every example's gradient with ``jax.vmap``, clips each to
L2 norm ``clip_norm``, sums them, adds Gaussian noise of std
``noise_multiplier * clip_norm`` to every coordinate and divides by the batch
size (a constant, so the noise scale does not depend on the data).

Sampling and accounting match: with privacy on, every step includes each of
the N training examples independently with probability q = B / N (Poisson
sampling; ``data.arrays.PoissonBatches``), and the ``dp-accounting`` package
(RDP by default, or PLD) accounts T steps of the Poisson-subsampled Gaussian
mechanism. Shuffled fixed-size batches, which many tutorials use, do not get
the amplification this analysis credits (Chua et al. 2024, "How Private are
DP-SGD Implementations?").

So that every step has one shape, a step's examples are padded to a bound
that the drawn count exceeds with probability ``OVERFLOW`` over the whole run;
were it exceeded, a random subset would be kept. That truncated mechanism
differs from the analysed one only on that event, so the run is
(ε, δ + (1 + e^ε) · OVERFLOW)-DP; ``truncation_delta`` reports the second term.
"""

import logging
import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats

from jaxdl.errors import ConfigError
from jaxdl.training.checkpoint import quiet_absl

if TYPE_CHECKING:
  import dp_accounting

ACCOUNTANTS = ("rdp", "pld")
# The chance that any step of a run draws more examples than its padded batch holds.
OVERFLOW = 1e-12


def _dp_accounting():
  """The dp-accounting package, imported on first use: its import takes about half a
  second, and only runs with privacy on need it."""
  import dp_accounting
  return dp_accounting


def _accountant(kind: str):
  if kind == "rdp":
    return _dp_accounting().rdp.RdpAccountant()
  if kind == "pld":
    return _dp_accounting().pld.PLDAccountant()
  raise ConfigError(f"privacy.accountant must be one of {', '.join(ACCOUNTANTS)}, got {kind!r}")


def _event(noise_multiplier: float, sampling_rate: float, steps: int) -> "dp_accounting.DpEvent":
  dp = _dp_accounting()
  gaussian = dp.GaussianDpEvent(noise_multiplier)
  if sampling_rate < 1.0:
    gaussian = dp.PoissonSampledDpEvent(sampling_rate, gaussian)
  return dp.SelfComposedDpEvent(gaussian, steps)


def _quiet_accountant():
  # The RDP accountant logs a warning for every order it skips as numerically
  # unstable (hundreds during calibration); the orders it keeps give the bound.
  return quiet_absl(logging.ERROR)


def epsilon(noise_multiplier: float, sampling_rate: float, steps: int, delta: float,
            accountant: str = "rdp") -> float:
  """The ε of ``steps`` DP-SGD steps at ``delta`` (inf without noise)."""
  if noise_multiplier <= 0:
    return math.inf
  if steps == 0:
    return 0.0
  acc = _accountant(accountant)
  with _quiet_accountant():
    acc.compose(_event(noise_multiplier, sampling_rate, steps))
    return float(acc.get_epsilon(delta))


def calibrate_noise(target_epsilon: float, sampling_rate: float, steps: int, delta: float,
                    accountant: str = "rdp") -> float:
  """The smallest noise multiplier whose ε after ``steps`` steps is at most ``target_epsilon``."""
  dp = _dp_accounting()
  with _quiet_accountant():
    return float(dp.calibrate_dp_mechanism(
        lambda: _accountant(accountant),
        lambda sigma: _event(sigma, sampling_rate, steps), target_epsilon, delta,
        dp.LowerEndpointAndGuess(1e-2, 1.0)))


def padded_batch_size(num_train: int, rate: float, steps: int, multiple: int = 1) -> int:
  """The smallest multiple of ``multiple`` that ``steps`` Poisson draws exceed with chance OVERFLOW.

  A draw counts Binomial(N + 1, q) examples at most (N + 1: the bound must also
  hold for the neighbouring dataset with one more example).
  """
  per_step = OVERFLOW / max(steps, 1)
  bound = int(stats.binom.isf(per_step, num_train + 1, rate))
  while stats.binom.sf(bound, num_train + 1, rate) > per_step:
    bound += 1
  bound = max(bound, 1)
  return -(-bound // multiple) * multiple


def settings(cfg: ml_collections.ConfigDict, num_train: int, batch_size: int,
            total_steps: int, data_devices: int = 1) -> dict:
  """Checks ``config.privacy`` and returns the settings the run uses (noise calibrated if asked).

  Args:
    cfg: ``config.privacy``.
    num_train: N, the training examples.
    batch_size: B, the expected examples per step (q = B / N).
    total_steps: T.
    data_devices: the devices a batch is split over (the padded batch divides by it).
  """
  if cfg.clip_norm <= 0:
    raise ConfigError(f"privacy.clip_norm must be > 0, got {cfg.clip_norm}")
  if not 0.0 <= cfg.delta < 1.0:
    raise ConfigError(f"privacy.delta must be in [0, 1) (0: 1 / (10 N)), got {cfg.delta}")
  if cfg.target_epsilon < 0:
    raise ConfigError(f"privacy.target_epsilon must be >= 0 (0: use privacy.noise_multiplier), "
                      f"got {cfg.target_epsilon}")
  _accountant(cfg.accountant)
  delta = cfg.delta or 1.0 / (10 * num_train)
  rate = min(batch_size / num_train, 1.0)
  noise = cfg.noise_multiplier
  if cfg.target_epsilon > 0:
    noise = calibrate_noise(cfg.target_epsilon, rate, total_steps, delta, cfg.accountant)
  elif noise < 0:
    raise ConfigError(f"privacy.noise_multiplier must be >= 0, got {noise}")
  # Per-example gradients run in chunks; chunks without a drawn example are skipped.
  chunk = batch_size // 4 if data_devices == 1 and batch_size % 4 == 0 else 0
  padded = padded_batch_size(num_train, rate, total_steps, np.lcm(chunk or 1, data_devices))
  return {"clip_norm": cfg.clip_norm, "noise_multiplier": noise, "delta": delta,
          "sampling": "poisson", "sampling_rate": rate, "expected_batch": batch_size,
          "padded_batch": int(padded), "chunk": chunk or int(padded),
          "overflow_probability": OVERFLOW, "accountant": cfg.accountant}


def truncation_delta(settings: dict, eps: float) -> float:
  """What the padded bound adds to δ: (1 + e^ε) times the chance any step overflowed it."""
  return (1.0 + math.exp(min(eps, 700.0))) * settings["overflow_probability"]


def clipped_sum(per_example_grads, mask: jax.Array, clip_norm: float):
  """The sum of per-example gradients, each clipped to L2 norm ``clip_norm``.

  Args:
    per_example_grads: pytree of ``[batch, ...]``.
    mask: ``<float32>[batch]``: padding contributes nothing.
    clip_norm: C.

  Returns:
    The sum (a pytree like one example's gradient) and the number of real
    examples whose gradient was clipped.
  """
  leaves = jax.tree_util.tree_leaves(per_example_grads)
  norms = jnp.sqrt(sum(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1) for g in leaves))
  factor = jnp.minimum(1.0, clip_norm / jnp.maximum(norms, 1e-12)) * mask
  summed = jax.tree_util.tree_map(lambda g: jnp.tensordot(factor, g, axes=(0, 0)),
                                  per_example_grads)
  return summed, jnp.sum((norms > clip_norm).astype(mask.dtype) * mask)


def add_noise(summed, noise_multiplier: float, clip_norm: float, divisor: float,
              key: jax.Array):
  """Gaussian noise of std ``noise_multiplier * clip_norm`` on every coordinate, then ``/ divisor``."""
  leaves, treedef = jax.tree_util.tree_flatten(summed)
  keys = jax.random.split(key, len(leaves))
  noisy = [s + noise_multiplier * clip_norm * jax.random.normal(k, s.shape, s.dtype)
           for s, k in zip(leaves, keys)]
  return jax.tree_util.tree_map(lambda g: g / divisor, jax.tree_util.tree_unflatten(treedef, noisy))


def clipped_noisy_gradient(per_example_grads, mask: jax.Array, clip_norm: float,
                           noise_multiplier: float, batch_size: int, key: jax.Array):
  """DP-SGD's gradient from per-example gradients (leading axis = examples).

  Args:
    per_example_grads: pytree of ``[batch, ...]``.
    mask: ``<float32>[batch]``: padding contributes nothing.
    clip_norm: C.
    noise_multiplier: sigma (noise std = sigma * C).
    batch_size: the constant divisor (the expected batch size B).
    key: PRNG key of this step's noise.

  Returns:
    The privatised mean gradient (a pytree like one example's gradient) and the
    fraction of real examples whose gradient was clipped.
  """
  summed, clipped = clipped_sum(per_example_grads, mask, clip_norm)
  noisy = add_noise(summed, noise_multiplier, clip_norm, batch_size, key)
  return noisy, clipped / jnp.maximum(jnp.sum(mask), 1.0)


def per_example_grads(loss_of_one, params, batch: dict, key: jax.Array):
  """Every example's gradient, with ``jax.vmap``.

  Args:
    loss_of_one: ``(params, example, key) -> (loss, aux)`` for one example (the
      batch dict's entries without their leading axis).
    params: the parameters.
    batch: dict of ``[batch, ...]`` arrays.
    key: split into one key per example (e.g. for dropout).

  Returns:
    Per-example gradients (pytree of ``[batch, ...]``) and per-example aux.
  """
  keys = jax.random.split(key, batch["mask"].shape[0])
  return jax.vmap(jax.grad(loss_of_one, has_aux=True), in_axes=(None, 0, 0))(params, batch, keys)

