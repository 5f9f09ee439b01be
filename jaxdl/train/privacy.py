"""Differentially private training (DP-SGD, Abadi et al. 2016) and its privacy accounting.

Each step computes every example's gradient with ``jax.vmap``, clips each to
L2 norm ``clip_norm``, sums them, adds Gaussian noise of std
``noise_multiplier * clip_norm`` to every coordinate and divides by the batch
size (a constant, so the noise scale does not depend on the data).

Accounting uses the ``dp-accounting`` package (RDP by default, or PLD): T
steps of the Gaussian mechanism on batches of B of the N training examples,
treated as Poisson subsampling with rate q = B / N. jaxdl draws shuffled
fixed-size batches, as the TF Privacy and Opacus tutorials do; the Poisson
analysis is the customary approximation for that sampling.
"""

import contextlib
import logging
import math

import dp_accounting
import jax
import jax.numpy as jnp
import ml_collections

from jaxdl.errors import ConfigError

ACCOUNTANTS = ("rdp", "pld")


def _accountant(kind: str):
  if kind == "rdp":
    return dp_accounting.rdp.RdpAccountant()
  if kind == "pld":
    return dp_accounting.pld.PLDAccountant()
  raise ConfigError(f"privacy.accountant must be one of {', '.join(ACCOUNTANTS)}, got {kind!r}")


def _event(noise_multiplier: float, sampling_rate: float, steps: int) -> dp_accounting.DpEvent:
  gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
  if sampling_rate < 1.0:
    gaussian = dp_accounting.PoissonSampledDpEvent(sampling_rate, gaussian)
  return dp_accounting.SelfComposedDpEvent(gaussian, steps)


@contextlib.contextmanager
def _quiet_accountant():
  # The RDP accountant logs a warning for every order it skips as numerically
  # unstable (hundreds during calibration); the orders it keeps give the bound.
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def epsilon(noise_multiplier: float, sampling_rate: float, steps: int, delta: float,
            accountant: str = "rdp") -> float:
  """The ε of ``steps`` DP-SGD steps at ``delta`` (inf without noise)."""
  if noise_multiplier <= 0:
    return math.inf
  if steps == 0:
    return 0.0
  acc = _accountant(accountant)
  acc.compose(_event(noise_multiplier, sampling_rate, steps))
  with _quiet_accountant():
    return float(acc.get_epsilon(delta))


def calibrate_noise(target_epsilon: float, sampling_rate: float, steps: int, delta: float,
                    accountant: str = "rdp") -> float:
  """The smallest noise multiplier whose ε after ``steps`` steps is at most ``target_epsilon``."""
  with _quiet_accountant():
    return float(dp_accounting.calibrate_dp_mechanism(
        lambda: _accountant(accountant),
        lambda sigma: _event(sigma, sampling_rate, steps), target_epsilon, delta,
        dp_accounting.LowerEndpointAndGuess(1e-2, 1.0)))


def resolve(cfg: ml_collections.ConfigDict, num_train: int, batch_size: int,
            total_steps: int) -> dict:
  """Checks ``config.privacy`` and returns the settings the run uses (noise calibrated if asked)."""
  if cfg.clip_norm <= 0:
    raise ConfigError(f"privacy.clip_norm must be > 0, got {cfg.clip_norm}")
  delta = cfg.delta or 1.0 / (10 * num_train)
  rate = min(batch_size / num_train, 1.0)
  noise = cfg.noise_multiplier
  if cfg.target_epsilon > 0:
    noise = calibrate_noise(cfg.target_epsilon, rate, total_steps, delta, cfg.accountant)
  elif noise < 0:
    raise ConfigError(f"privacy.noise_multiplier must be >= 0, got {noise}")
  _accountant(cfg.accountant)
  return {"clip_norm": cfg.clip_norm, "noise_multiplier": noise, "delta": delta,
          "sampling_rate": rate, "accountant": cfg.accountant}


def clipped_noisy_gradient(per_example_grads, mask: jax.Array, clip_norm: float,
                           noise_multiplier: float, batch_size: int, key: jax.Array):
  """DP-SGD's gradient from per-example gradients (leading axis = examples).

  Args:
    per_example_grads: pytree of ``[batch, ...]``.
    mask: ``<float32>[batch]``: padding contributes nothing.
    clip_norm: C.
    noise_multiplier: sigma (noise std = sigma * C).
    batch_size: the constant divisor (the configured batch size).
    key: PRNG key of this step's noise.

  Returns:
    The privatised mean gradient (a pytree like one example's gradient) and the
    fraction of real examples whose gradient was clipped.
  """
  leaves = jax.tree_util.tree_leaves(per_example_grads)
  norms = jnp.sqrt(sum(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1) for g in leaves))
  factor = jnp.minimum(1.0, clip_norm / jnp.maximum(norms, 1e-12)) * mask
  summed = jax.tree_util.tree_map(
      lambda g: jnp.tensordot(factor, g, axes=(0, 0)), per_example_grads)
  keys = jax.random.split(key, len(leaves))
  treedef = jax.tree_util.tree_structure(summed)
  noisy = [s + noise_multiplier * clip_norm * jax.random.normal(k, s.shape, s.dtype)
           for s, k in zip(jax.tree_util.tree_leaves(summed), keys)]
  clipped = jnp.sum((norms > clip_norm) * mask) / jnp.maximum(jnp.sum(mask), 1.0)
  return jax.tree_util.tree_map(lambda g: g / batch_size,
                                jax.tree_util.tree_unflatten(treedef, noisy)), clipped


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

