"""The training state: one explicit pytree that the jitted step maps to its successor."""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxdl.data.spec import DataSpec


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
                       spec: DataSpec) -> TrainState:
  """Initialises parameters from ``key`` and the optimizer state from them."""
  init_key, dropout_key = jax.random.split(key)
  variables = model.init({"params": init_key}, dummy_inputs(spec), train=False)
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    batch_stats=variables.get("batch_stats", {}), key=dropout_key)
