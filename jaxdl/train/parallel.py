"""Data parallelism with ``jax.sharding``: one mesh over every device of every host.

The global batch (``config.batch_size``) is split along its batch axis over
the mesh's ``data`` axis; the train state is replicated. The train step is the
same jitted function on one device or many: only its shardings change, and
XLA inserts the gradient all-reduce. With several processes
(``jax.distributed``), every process builds the same global batch from the
seed on its host and places on its own devices only the part they hold.
"""

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DataParallel:
  """Shardings for data-parallel training over all devices.

  Attributes:
    mesh: a 1-D mesh with axis 'data' over ``jax.devices()``.
    stacked: the batch has a leading members axis (vectorized sweeps), so the
      examples axis to split is axis 1.
  """

  mesh: Mesh
  stacked: bool = False

  @classmethod
  def over_all_devices(cls, stacked: bool = False) -> "DataParallel":
    return cls(Mesh(np.array(jax.devices()), ("data",)), stacked)

  @property
  def num_devices(self) -> int:
    return self.mesh.size

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def batch_sharding(self, stacked: bool | None = None) -> NamedSharding:
    stacked = self.stacked if stacked is None else stacked
    return NamedSharding(self.mesh, P(None, "data") if stacked else P("data"))

  def check_batch_size(self, batch_size: int, key: str = "batch_size") -> None:
    if batch_size % self.num_devices:
      raise ConfigError(f"{key}={batch_size} (the global batch) is not divisible by the "
                        f"{self.num_devices} devices; use a multiple of {self.num_devices}")

  def eval_batch_size(self, batch_size: int) -> int:
    """The eval batch rounded up to a multiple of the devices (results do not change)."""
    return -(-batch_size // self.num_devices) * self.num_devices

  def _place(self, value: Any, sharding: NamedSharding) -> jax.Array:
    value = np.asarray(value) if not isinstance(value, jax.Array) or \
        not value.is_fully_addressable else value
    # Each process supplies, from its full host copy, only its own devices' part.
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

  def replicate(self, tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: self._place(x, self.replicated), tree)

  def shard(self, batch: dict[str, np.ndarray], stacked: bool | None = None) -> dict[str, jax.Array]:
    sharding = self.batch_sharding(stacked)
    return {k: self._place(v, sharding) for k, v in batch.items()}
