"""Model size and cost: parameter count and FLOPs per example."""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.models.part import call_kwargs


def count_params(params: Any) -> int:
  """Number of scalars in a parameter pytree."""
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def flops_per_example(model: nn.Module, variables: Any, input_shape: tuple[int, ...],
                      input_dtype: str = "float32",
                      extras: Mapping[str, np.ndarray] | None = None) -> float:
  """FLOPs of one example's forward pass in eval mode, from XLA's cost analysis.

  The forward pass is lowered for a batch of one and its HLO analysed before
  optimisation (no compile needed); a multiply-add counts as two FLOPs. XLA
  counts a loop body once, so recurrent models are lowered with their scan
  fully unrolled. Returns NaN where the backend gives no cost analysis.
  ``extras`` are one example's per-example arrays (``lengths``, ...), passed
  where the model takes them.
  """
  x = jnp.zeros((1, *input_shape), input_dtype)
  kwargs = call_kwargs(model, {"train": False, "mask": jnp.ones((1,), jnp.float32),
                               **{k: jnp.asarray(v[:1]) for k, v in (extras or {}).items()}})
  if hasattr(model, "unroll") and len(input_shape) >= 1:
    model = model.clone(unroll=int(input_shape[0]))
  analysis = jax.jit(lambda v, x: model.apply(v, x, **kwargs)).lower(variables, x).cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Older JAX: one dict per device program.
    analysis = analysis[0] if analysis else {}
  return float((analysis or {}).get("flops", float("nan")))
