"""A group of runs trained as one program: their states stacked, the steps vmapped.

A lone run is a group of one that is not vectorized, so the loop has one code
path for both.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.training.metric_sums import means, to_host


class MemberGroup:
  """Runs trained together: one state pytree, stacked on a leading axis when vectorized.

  Args:
    size: the number of runs (members).
    vectorized: stack the members and ``jax.vmap`` the steps (required for size > 1).
  """

  def __init__(self, size: int, vectorized: bool):
    if size > 1 and not vectorized:
      raise ValueError("several members are trained together only when vectorized")
    self.size, self.vectorized = size, vectorized

  def stack(self, trees: Sequence[Any]) -> Any:
    """One tree from one per member (stacked on axis 0 when vectorized)."""
    if not self.vectorized:
      return trees[0]
    return jax.tree_util.tree_map(lambda *xs: np.stack(xs) if isinstance(xs[0], np.ndarray)
                                  else jnp.stack(xs), *trees)

  def unstack(self, tree: Any) -> list[Any]:
    """One tree per member."""
    if not self.vectorized:
      return [tree]
    return [jax.tree_util.tree_map(lambda x, i=i: x[i], tree) for i in range(self.size)]

  def vmap_if_vectorized(self, fn, in_axes=0):
    """``fn`` over stacked members (vmapped), or ``fn`` itself for a lone run."""
    return jax.vmap(fn, in_axes=in_axes) if self.vectorized else fn

  def host_sums(self, sums: Any) -> list[dict[str, Any]]:
    """Each member's metric sums on the host (floats; arrays for array-valued sums)."""
    return [to_host(member) for member in self.unstack(jax.device_get(sums))]

  def means(self, sums: Any) -> list[dict[str, float]]:
    """Each member's mean metrics from (stacked) metric sums."""
    return [means(member) for member in self.host_sums(sums)]
