"""Pure, unjitted train and eval steps; the loop jits them once.

A batch is a dict: ``inputs`` (and any further model inputs such as
``lengths``), ``label`` and ``mask``. Steps read no config and hide no
constants: everything they use is in the state, the batch or their closure.
"""

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxdl.models.custom_gradients import custom_gradients
from jaxdl.training.metric_sums import Sums
from jaxdl.training.model_call import apply_model, cast, model_arguments  # noqa: F401
from jaxdl.training.objectives import Objective
from jaxdl.training.privacy import add_noise, clipped_sum, per_example_grads
from jaxdl.training.state import TrainState

TrainStep = Callable[[TrainState, Mapping[str, jax.Array]], tuple[TrainState, Sums]]
EvalStep = Callable[[TrainState, Mapping[str, jax.Array]], Sums]
PredictStep = Callable[[TrainState, Mapping[str, jax.Array]], dict[str, jax.Array]]

NONFINITE_POLICIES = ("stop", "skip")
NO_STEP = 2**30  # "No non-finite step yet" for the min-reduced first_nonfinite_* sums.


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    objective: Objective, nonfinite: str = "stop",
                    privacy: Mapping[str, float] | None = None,
                    compute_dtype=None, batch_mesh: Mesh | None = None,
                    constrain: Callable[[Any], Any] | None = None) -> TrainStep:
  """Returns ``train_step(state, batch) -> (state, metric_sums)``.

  The loss is the mean over the batch's real examples; the metric sums also
  hold ``grad_norm``, the global gradient norm before clipping, and ``steps``
  (1), so that norms average per step and everything else per example.

  A non-finite loss or gradient is recorded in ``first_nonfinite_loss`` /
  ``first_nonfinite_grad`` (the step number, min-reduced; NO_STEP if none) and
  ``nonfinite_steps``. With ``nonfinite='skip'`` such a step leaves the
  parameters and optimizer state unchanged; with 'stop' the loop stops at its
  next check, before it could checkpoint the damaged state.

  With ``privacy`` (``privacy.settings``'s settings: ``clip_norm``,
  ``noise_multiplier``, ``expected_batch``, ``chunk``), the gradient is
  DP-SGD's: per-example gradients clipped and summed, Gaussian noise added,
  divided by the expected batch size (see privacy.py); ``clipped`` reports the
  fraction of examples whose gradient was clipped.

  With ``compute_dtype`` (e.g. bfloat16: mixed precision), the forward and
  backward passes run on copies of the parameters and inputs cast to it; the
  parameters, their gradients, the optimizer state and batch-norm statistics
  stay float32, and losses are computed in float32. bfloat16 has float32's
  exponent range, so no loss scaling is needed.

  ``batch_mesh``: the mesh whose ``data`` axis splits the batch (``jit_steps`` passes it
  when that axis has several devices); jaxdl's per-sequence kernels then run per device.

  ``constrain``: ``params -> params``, the parameter constraints
  (``jaxdl.optim.build_constraints``), applied to the parameters after every update.
  """
  if nonfinite not in NONFINITE_POLICIES:
    raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")

  def train_step(state: TrainState, batch: Mapping[str, jax.Array]) -> tuple[TrainState, Sums]:
    # One dropout stream per step, derived from the step: a resumed run replays it.
    dropout_key = jax.random.fold_in(state.key, state.step)
    extra = {}
    if privacy is None:
      grads, sums, batch_stats = _batch_gradient(model, objective, compute_dtype, state, batch,
                                                 dropout_key, batch_mesh)
    else:
      grads, sums, clipped = _private_gradient(model, objective, compute_dtype, privacy, state,
                                               batch, dropout_key)
      batch_stats, extra = state.batch_stats, {"clipped": clipped}
    grad_norm = optax.tree.norm(grads)
    loss_ok, grad_ok = jnp.isfinite(sums["loss"]), jnp.isfinite(grad_norm)
    ok = loss_ok & grad_ok
    new_state = _updated(tx, state, grads, batch_stats, constrain)
    if nonfinite == "skip":  # A bad step changes nothing but the step count.
      kept = state.replace(step=state.step + 1)
      new_state = jax.tree_util.tree_map(lambda new, old: jnp.where(ok, new, old), new_state, kept)
      sums = {k: jnp.where(ok, v, 0.0) for k, v in sums.items()}  # And counts no examples.
    extra.update(batch_counts(batch))
    step = state.step.astype(jnp.int32) + 1
    return new_state, {**sums, **extra, "grad_norm": jnp.where(ok, grad_norm, 0.0),
                       "steps": ok.astype(jnp.float32),
                       "nonfinite_steps": (~ok).astype(jnp.float32),
                       "first_nonfinite_loss": jnp.where(loss_ok, NO_STEP, step),
                       "first_nonfinite_grad": jnp.where(grad_ok, NO_STEP, step)}

  return train_step


def _updated(tx: optax.GradientTransformation, state: TrainState, grads, batch_stats,
             constrain: Callable[[Any], Any] | None = None) -> TrainState:
  """The state after one optimizer step on ``grads`` (and the new batch statistics), with
  the parameter constraints re-imposed."""
  # Optax mixes its int32 step count with Python floats (bias corrections, schedules), which
  # JAX's strict dtype promotion refuses; jaxdl's own code is tested under strict promotion.
  with jax.numpy_dtype_promotion("standard"):
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, param_updates)
  if constrain is not None:
    params = constrain(params)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                       batch_stats=batch_stats)


def _batch_gradient(model: nn.Module, objective: Objective, compute_dtype, state: TrainState,
                    batch: Mapping[str, jax.Array], dropout_key: jax.Array,
                    batch_mesh: Mesh | None = None):
  """The mean loss's gradient over the batch's real examples, its sums, the new batch stats."""
  mutable = ["batch_stats"] if state.batch_stats else False

  def loss_fn(params):
    variables = state.replace(params=cast(params, compute_dtype)).variables()
    outputs = apply_model(model, variables, batch, train=True, compute_dtype=compute_dtype,
                          rngs={"dropout": dropout_key}, mutable=mutable)
    outputs, updates = outputs if mutable else (outputs, {})
    _, sums = objective(outputs, batch)
    return sums["loss"] / jnp.maximum(sums["count"], 1.0), (sums, updates)

  # The fast reverse-mode kernels: this is a reverse-mode gradient.
  with custom_gradients(batch_mesh):
    grads, (sums, updates) = jax.grad(loss_fn, has_aux=True)(state.params)
  if not updates:
    return grads, sums, state.batch_stats
  # Running statistics stay in their own (float32) dtype.
  batch_stats = jax.tree_util.tree_map(lambda new, old: new.astype(old.dtype),
                                       updates["batch_stats"], state.batch_stats)
  return grads, sums, batch_stats


def _private_gradient(model: nn.Module, objective: Objective, compute_dtype,
                      privacy: Mapping[str, float], state: TrainState,
                      batch: Mapping[str, jax.Array], dropout_key: jax.Array):
  """DP-SGD's gradient: per-example gradients clipped, summed, noised, divided (privacy.py).

  Returns:
    The gradient, the batch's metric sums, and the fraction of clipped examples.
  """
  def loss_of_one(params, example, key):
    one = {k: v[None] for k, v in example.items()}
    outputs = apply_model(model, {"params": cast(params, compute_dtype)}, one, train=True,
                          compute_dtype=compute_dtype, rngs={"dropout": key})
    _, sums = objective(outputs, one)
    return sums["loss"], sums

  def chunk_sums(chunk, key):
    with custom_gradients():
      grads, sums = per_example_grads(loss_of_one, state.params, chunk, key)
    summed, clipped = clipped_sum(grads, chunk["mask"], privacy["clip_norm"])
    return summed, jax.tree_util.tree_map(lambda s: s.sum(0), sums), clipped

  # Poisson batches put their drawn examples first; the padding after them
  # fills whole chunks that lax.cond skips, so the cost follows the drawn count.
  size = batch["mask"].shape[0]
  chunk = privacy.get("chunk") or size
  chunk = chunk if size % chunk == 0 else size
  chunks = jax.tree_util.tree_map(lambda x: x.reshape(size // chunk, chunk, *x.shape[1:]),
                                  dict(batch))
  zeros = jax.eval_shape(chunk_sums, jax.tree_util.tree_map(lambda x: x[0], chunks), dropout_key)
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), zeros)

  def one_chunk(args):
    part, key = args
    return jax.lax.cond(part["mask"].sum() > 0, lambda: chunk_sums(part, key), lambda: zeros)

  keys = jax.random.split(dropout_key, size // chunk)
  summed, sums, clipped = jax.tree_util.tree_map(lambda x: x.sum(0),
                                                 jax.lax.map(one_chunk, (chunks, keys)))
  noise_key = jax.random.fold_in(dropout_key, 2**31 - 1)
  grads = add_noise(summed, privacy["noise_multiplier"], privacy["clip_norm"],
                    privacy["expected_batch"], noise_key)
  return grads, sums, clipped / jnp.maximum(sums["count"], 1.0)


def make_eval_step(model: nn.Module, objective: Objective, compute_dtype=None) -> EvalStep:
  """Returns ``eval_step(state, batch) -> metric_sums`` (running averages for batch norm)."""

  def eval_step(state: TrainState, batch: Mapping[str, jax.Array]) -> Sums:
    variables = state.replace(params=cast(state.params, compute_dtype)).variables()
    outputs = apply_model(model, variables, batch, train=False, compute_dtype=compute_dtype)
    _, sums = objective(outputs, batch)
    return {**sums, **batch_counts(batch)}

  return eval_step


def make_predict_step(model: nn.Module, objective: Objective, classify: bool,
                      compute_dtype=None) -> PredictStep:
  """Returns ``predict_step(state, batch) -> per-example arrays``: ``predicted`` (the argmax
  class when ``classify``, else the output), ``loss`` (the objective's), ``label``, ``mask``."""

  def predict_step(state: TrainState, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    variables = state.replace(params=cast(state.params, compute_dtype)).variables()
    outputs = apply_model(model, variables, batch, train=False, compute_dtype=compute_dtype)
    losses, _ = objective(outputs, batch)
    predicted = (jnp.argmax(outputs, -1).astype(jnp.int32) if classify
                 else outputs.reshape(batch["mask"].shape).astype(jnp.float32))
    return {"predicted": predicted, "loss": losses.astype(jnp.float32), "label": batch["label"],
            "mask": batch["mask"]}

  return predict_step


def batch_counts(batch: Mapping[str, jax.Array]) -> Sums:
  """What a batch says of itself, as sums: Poisson batches (DP-SGD) that overflowed their
  padded size (``truncated_steps``), examples left out because they failed to read
  (``skipped_examples``, with data.skip_bad_examples)."""
  counts = {}
  if "truncated" in batch:
    counts["truncated_steps"] = batch["truncated"].sum()
  if "skipped" in batch:
    counts["skipped_examples"] = batch["skipped"].sum()
  return counts
