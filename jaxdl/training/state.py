"""The training state: one explicit pytree that the jitted step maps to its successor."""

import functools
from collections.abc import Mapping
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxdl.data.spec import DataSpec
from jaxdl.training.model_call import model_arguments


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, and nothing else.

  Attributes:
    step: ``<int32>[]`` optimizer steps taken.
    params: the model's parameters.
    opt_state: the optimizer's state (hyperparameters included, as arrays).
    batch_stats: batch-norm running averages (``{}`` for models without them).
    key: ``<uint32>[2]`` root of the per-step dropout keys, which are
      ``fold_in(key, step)``, so a resumed run replays the same stream.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  batch_stats: Any
  key: jax.Array

  def variables(self) -> dict[str, Any]:
    """The Flax variables dict for ``model.apply``."""
    if self.batch_stats:
      return {"params": self.params, "batch_stats": self.batch_stats}
    return {"params": self.params}


def dummy_inputs(spec: DataSpec, batch_size: int = 1) -> jax.Array:
  return jnp.zeros((batch_size, *spec.input_shape), spec.input_dtype)


def create_train_state(key: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
                       spec: DataSpec, example: Mapping[str, Any] | None = None) -> TrainState:
  """Initialises parameters from ``key`` and the optimizer state from them.

  Args:
    key: the run's root key (split into the init key and the dropout root).
    model: the Flax module.
    tx: the optimizer.
    spec: the data's facts (a zero input of its shape initialises the model).
    example: a batch of one real example (inputs, mask and the per-example
      arrays the model may take, such as ``lengths``); default: zero inputs.
  """
  init_key, dropout_key = jax.random.split(key)
  if example is None:
    example = {"inputs": dummy_inputs(spec), "mask": jnp.ones((1,), jnp.float32)}
  inputs, kwargs = model_arguments(model, example, train=False)
  arrays = {k: v for k, v in kwargs.items() if hasattr(v, "shape")}
  flags = {k: v for k, v in kwargs.items() if k not in arrays}  # The mode: static.
  # Compiled as one program: run op by op, initialising a model compiled each layer's
  # operations on their own (seconds per run start); the parameters are the same bits.
  init = jax.jit(functools.partial(model.init, **flags))
  # A dropout stream too: Flax NNX modules (through nnx.bridge) draw dropout keys at init.
  variables = init({"params": init_key, "dropout": jax.random.fold_in(init_key, 1)},
                   inputs, **arrays)
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    batch_stats=variables.get("batch_stats", {}), key=dropout_key)
