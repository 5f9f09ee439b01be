"""An experiment: everything built from a config before the first step.

``build_experiment`` is where a config becomes data, a model, an optimizer, an
objective, a selection rule and an initial state. It runs every check a run
needs before anything is written to disk, so a bad config or bad data is
refused with the run folder untouched.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdl import data, models
from jaxdl.data import fields
from jaxdl.configs.checks import check_config
from jaxdl.errors import ConfigError, JaxdlError
from jaxdl.training import privacy, selection
from jaxdl.training import metrics, objectives
from jaxdl.training.objectives import Objective
from jaxdl.optim import build_constraints, build_optimizer
from jaxdl.training.contract import check_model
from jaxdl.training.state import TrainState, create_train_state
from jaxdl.training.steps import NONFINITE_POLICIES

# config.dtype -> the dtype the steps compute in (None: as stored, float32).
COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything built from a config before training starts.

  Attributes:
    config: the run's config.
    datasets: the splits and the DataSpec.
    model: the Flax module.
    tx: the optimizer.
    initial_state: the state at step 0 (parameters from ``config.seed``).
    steps_per_epoch: optimizer steps per epoch.
    objective: the loss and metrics.
    selection: which epoch is the run's result.
    privacy: DP-SGD settings in use (noise calibrated, sampling), or None.
    batch_length: the training batch arrays' length (see ``batch_length``).
    part: the model's record (how it is built, cited and explained).
    constrain: ``params -> params``, ``config.constraints`` applied after each update
      (None without constraints).
  """

  config: ml_collections.ConfigDict
  datasets: data.Datasets
  model: Any
  tx: optax.GradientTransformation
  initial_state: TrainState
  steps_per_epoch: int
  objective: Objective
  selection: selection.Selection
  privacy: dict | None = None
  batch_length: int = 0
  part: models.ModelPart | None = None
  constrain: Callable[[Any], Any] | None = None

  @property
  def total_steps(self) -> int:
    return self.steps_per_epoch * self.config.num_epochs

  @property
  def compute_dtype(self):
    return COMPUTE_DTYPES[self.config.dtype]


def build_experiment(config: ml_collections.ConfigDict,
                     datasets: data.Datasets | None = None) -> Experiment:
  """Data (unless given), model, optimizer, objective and initial state for ``config``.

  Args:
    config: the run's config (its parts by name; objects the API was given are found
      by theirs, ``parts.given``).
    datasets: the data, if already built from ``config.data``.
  """
  check_config(config)
  if config.dtype not in COMPUTE_DTYPES:
    raise ConfigError(f"dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {config.dtype!r}")
  if config.nonfinite not in NONFINITE_POLICIES:
    raise ConfigError(f"nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, got "
                      f"{config.nonfinite!r}")
  datasets = datasets or data.build(config.data, config.experiment)
  spec = datasets.spec
  shift = fields.augment_shift(config.data)
  if shift and not models.IMAGES.fits(spec):
    raise ConfigError(f"data.augment_shift={shift} shifts images, but "
                      f"{spec.name} gives {spec.input_dtype} inputs of shape {spec.input_shape}; "
                      "set data.augment_shift=0")
  _check_length_bucket(fields.length_bucket(config.data), datasets)
  if config.data.task != "auto" and config.data.task != spec.task:
    raise ConfigError(f"data.task={config.data.task}, but {spec.name} gives {spec.task} labels; "
                      f"set data.task=auto (or {spec.task})")
  part = models.resolve(config.model.name, config.experiment)
  module = models.build(config, spec, part)
  objective = _objective(config, spec)
  chosen = selection.from_config(config.select, spec, objective)
  steps_per_epoch = data.num_batches(spec.num_train, config.batch_size)
  tx = build_optimizer(config.optim, steps_per_epoch * config.num_epochs, steps_per_epoch,
                       config.experiment)
  state = _initial_state(config, module, part, tx, datasets)
  if part.prepare_params is not None:  # E.g. pretrained word vectors (models/kim.py).
    params = part.prepare_params(state.params, config.model, datasets)
    state = state.replace(params=params, opt_state=tx.init(params))
  if not part.is_builtin:  # The built-in models are held to the contract by their tests.
    _check_contract(config, module, part, state, datasets)
  constrain = build_constraints(config.constraints, state.params, config.experiment)
  data_devices = jax.device_count() // max(config.parallel.model_axis, 1)
  private = None
  if config.privacy.enabled:
    if state.batch_stats:
      raise ConfigError("DP-SGD needs per-example gradients, which batch norm mixes across the "
                        "batch; set model.batch_norm=false")
    private = privacy.settings(config.privacy, spec.num_train, config.batch_size,
                              steps_per_epoch * config.num_epochs, data_devices)
  return Experiment(config, datasets, module, tx, state, steps_per_epoch, objective, chosen,
                    private, batch_length(config.batch_size, spec.num_train, data_devices), part,
                    constrain)


def _check_length_bucket(bucket: int, datasets: data.Datasets) -> None:
  if bucket < 0:
    raise ConfigError(f"data.length_bucket must be >= 0 (0: keep data.max_len steps), got {bucket}")
  if bucket and "lengths" not in datasets.train.extra:
    raise ConfigError(f"data.length_bucket={bucket} cuts sequences to their lengths, but "
                      f"{datasets.spec.name} gives no lengths; set data.length_bucket=0")


def _objective(config: ml_collections.ConfigDict, spec) -> Objective:
  """The loss (``config.objective``) with the extra metrics of ``config.metrics``."""
  base = objectives.resolve(config.objective, spec.task, config.experiment)
  if config.metrics and spec.task != "classification":
    raise ConfigError(f"config.metrics ({', '.join(config.metrics)}) are classification metrics, "
                      f"but {spec.name} is a regression task; set metrics=()")
  names, functions, modes = metrics.resolve(tuple(config.metrics), config.experiment)
  return objectives.with_metrics(base, tuple(names), functions, modes)


def _first_examples(train: data.Split, n: int) -> dict[str, np.ndarray]:
  """The first ``n`` training examples (fewer in a smaller split) as a batch, all real."""
  batch = train.rows(np.arange(min(n, len(train))))[0]
  return {**batch, "mask": np.ones(len(batch["label"]), np.float32)}


def _initial_state(config: ml_collections.ConfigDict, module, part: models.ModelPart, tx,
                   datasets: data.Datasets) -> TrainState:
  """The state at step 0, initialised on one real training example (extras included)."""
  example = _first_examples(datasets.train, 1)
  try:
    return create_train_state(jax.random.PRNGKey(config.seed), module, tx, datasets.spec,
                              example)
  except JaxdlError:
    raise
  except Exception as e:  # The user's module failed on the data: say where, in one line.
    if part.is_builtin:
      raise
    shapes = ", ".join(f"{k} <{v.dtype}>{list(v.shape)}" for k, v in example.items())
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    raise ConfigError(f"model {part.name} failed on a batch of the data ({shapes}): "
                      f"{type(e).__name__}: {first}; its __call__(self, x, *, train) takes the "
                      "inputs and returns [batch, classes] logits") from e


def _check_contract(config, module, part: models.ModelPart, state: TrainState,
                    datasets: data.Datasets) -> None:
  """The user's model against jaxdl's conventions, on two training examples (contract.py)."""
  example = _first_examples(datasets.train, 2)
  check_model(part.name, module, state.variables(), example, datasets.spec,
              loss_reads_outputs=config.objective == "auto",
              key=jax.random.fold_in(jax.random.PRNGKey(config.seed), 2))


def batch_length(batch_size: int, num_examples: int, devices: int = 1) -> int:
  """The length of the batch arrays: ``batch_size``, or less where the split is smaller.

  A batch larger than the split is one padded, masked batch holding the whole
  split: its loss and gradient are those of the split's examples alone, so the
  padding is cut to the split's size (rounded up to the devices) and the
  result is unchanged; a ``batch_size`` of 100,000 on 1,295 examples must not
  allocate 100,000 examples' worth of activations.
  """
  if batch_size <= num_examples:
    return batch_size
  return min(batch_size, -(-max(num_examples, 1) // devices) * devices)


def eval_batch_length(exp: Experiment) -> int:
  """The evaluation batch arrays' length: no longer than the largest split needs."""
  spec = exp.datasets.spec
  return batch_length(exp.config.eval_batch_size, max(spec.num_val, spec.num_test))


def out_of_memory(error: Exception, exp: Experiment, members: int) -> JaxdlError:
  """A device OOM as one line with the sizes that caused it and what to change."""
  params = models.count_params(exp.initial_state.params)
  return JaxdlError(
      f"the device ran out of memory running {members} member(s) of {params:,} "
      f"parameters at batch_size={exp.config.batch_size} on {jax.device_count()} "
      f"device(s) ({str(error).strip().splitlines()[0][:200]}); lower batch_size (or "
      "eval_batch_size, or the model), or add devices; the last checkpoint is kept")
