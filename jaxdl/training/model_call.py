"""How a batch is passed to a model: positional inputs, keyword extras, the compute dtype.

Used by the steps, and by the state's initialisation on one example (state.py sits below
steps.py, so this lives below both).
"""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.models.part import call_kwargs, train_flags

_NOT_MODEL_INPUTS = ("label", "mask", "truncated", "skipped")


def model_arguments(model: nn.Module, batch: Mapping[str, jax.Array], *, train: bool,
                    compute_dtype=None) -> tuple[jax.Array, dict[str, Any]]:
  """How a batch is passed to a model: ``inputs`` positionally; by keyword the mode (as
  ``__call__`` spells it: ``train``, Keras's ``training`` or ``deterministic``), ``mask``
  and the batch's per-example arrays (``lengths``, ...) where ``__call__`` accepts them.
  Floating-point arrays are cast to ``compute_dtype`` (None: unchanged).
  """
  extras = {k: cast(v, compute_dtype) for k, v in batch.items()
            if k not in _NOT_MODEL_INPUTS and k != "inputs"}
  kwargs = call_kwargs(model, {"mask": batch["mask"], **extras})
  return cast(batch["inputs"], compute_dtype), {**train_flags(model, train), **kwargs}


def apply_model(model: nn.Module, variables: Mapping[str, Any], batch: Mapping[str, jax.Array],
                *, train: bool, compute_dtype=None, rngs=None, mutable=False):
  """``model.apply`` on a batch, its arguments as ``model_arguments`` gives them."""
  inputs, kwargs = model_arguments(model, batch, train=train, compute_dtype=compute_dtype)
  # Mixed precision mixes dtypes by design (bfloat16 activations, float32 batch-norm
  # statistics), which Flax's layers promote; strict promotion would refuse them.
  promotion = "standard" if compute_dtype is not None else jax.config.jax_numpy_dtype_promotion
  with jax.numpy_dtype_promotion(promotion):
    return model.apply(variables, inputs, rngs=rngs, mutable=mutable, **kwargs)


def cast(tree, dtype):
  """Floating-point leaves of ``tree`` as ``dtype`` (None: unchanged); integers stay."""
  if dtype is None:
    return tree
  return jax.tree_util.tree_map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


