"""Data parallelism with ``jax.sharding``: one mesh over every device of every host.

The mesh has axes ``data`` and ``model``. The global batch
(``config.batch_size``) is split along its batch axis over ``data``; the train
state is replicated, or, with ``config.parallel.model_axis`` = k > 1, each
parameter (and its optimizer state) is split over the k devices of the
``model`` axis along its last dimension where that divides by k (FSDP-style
sharding of large layers; small ones stay replicated). The train step is the
same jitted function on one device or many: only its shardings change, and
XLA inserts the collectives. With several processes (``jax.distributed``),
each process reads only its rows of every global batch (``local_rows``)
and the global array is assembled from the processes' parts
(``jax.make_array_from_process_local_data``).
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
    mesh: a 2-D mesh, axes ('data', 'model'), over ``jax.devices()``.
    stacked: the batch has a leading members axis (vectorized sweeps), so the
      examples axis to split is axis 1.
  """

  mesh: Mesh
  stacked: bool = False

  @classmethod
  def over_all_devices(cls, stacked: bool = False, model_axis: int = 1) -> "DataParallel":
    devices = jax.devices()
    if model_axis < 1 or len(devices) % model_axis:
      raise ConfigError(f"parallel.model_axis={model_axis} must divide the {len(devices)} "
                        "devices")
    grid = np.array(devices).reshape(len(devices) // model_axis, model_axis)
    return cls(Mesh(grid, ("data", "model")), stacked)

  @property
  def num_devices(self) -> int:
    return self.mesh.shape["data"]

  @property
  def model_axis(self) -> int:
    return self.mesh.shape["model"]

  def leaf_sharding(self, shape: tuple[int, ...]) -> NamedSharding:
    """A parameter's sharding: its last axis over 'model' if that divides, else replicated."""
    k = self.model_axis
    if k > 1 and shape and shape[-1] % k == 0 and shape[-1] >= k:
      return NamedSharding(self.mesh, P(*([None] * (len(shape) - 1)), "model"))
    return self.replicated

  def state_shardings(self, state: Any) -> Any:
    """The sharding of every leaf of a (possibly stacked) train state."""
    return jax.tree_util.tree_map(lambda x: self.leaf_sharding(np.shape(x)), state)

  def place_state(self, state: Any) -> Any:
    shardings = self.state_shardings(state)
    return jax.tree_util.tree_map(self._place, state, shardings)

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def batch_sharding(self, stacked: bool | None = None) -> NamedSharding:
    stacked = self.stacked if stacked is None else stacked
    return NamedSharding(self.mesh, P(None, "data") if stacked else P("data"))

  def check_batch_size(self, batch_size: int, key: str = "batch_size") -> None:
    if batch_size % self.num_devices:
      raise ConfigError(f"{key}={batch_size} (the global batch) is not divisible by the "
                        f"{self.num_devices} devices of the data axis; use a multiple of "
                        f"{self.num_devices}")

  def eval_batch_size(self, batch_size: int) -> int:
    """The eval batch rounded up to a multiple of the devices (results do not change)."""
    return -(-batch_size // self.num_devices) * self.num_devices

  def _place(self, value: Any, sharding: NamedSharding) -> jax.Array:
    value = np.asarray(value) if not isinstance(value, jax.Array) or \
        not value.is_fully_addressable else value
    # Each process supplies, from its full host copy, only its own devices' part.
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

  def process_rows(self, batch_length: int) -> tuple[int, int] | None:
    """This process's rows of a global batch, or None (all of them) in a single process."""
    return self.local_rows(batch_length) if jax.process_count() > 1 else None

  def local_rows(self, batch_length: int) -> tuple[int, int]:
    """``[start, stop)``: the rows of a global batch that this process's devices hold.

    The mesh lists devices process by process, so a process's part of the
    data axis is one contiguous block of rows.
    """
    sharding = NamedSharding(self.mesh, P("data"))
    slices = [index[0] for index in
              sharding.addressable_devices_indices_map((batch_length,)).values()]
    start = min(s.start or 0 for s in slices)
    stop = max(batch_length if s.stop is None else s.stop for s in slices)
    covered = sum((batch_length if s.stop is None else s.stop) - (s.start or 0)
                  for s in {(s.start, s.stop): s for s in slices}.values())
    if covered != stop - start:
      raise ConfigError("this process's devices do not hold one contiguous block of the batch; "
                        "jaxdl needs the mesh's data axis ordered by process")
    return start, stop

  def shard(self, batch: dict[str, np.ndarray], stacked: bool | None = None,
            batch_length: int | None = None) -> dict[str, jax.Array]:
    """A global batch on the devices, from this process's rows of it.

    Args:
      batch: ``{name: [(members,) rows, ...]}``, the rows ``local_rows``
        names (the whole batch in a single process).
      stacked: whether arrays have a leading members axis.
      batch_length: the global batch's rows (default: this batch's, one process).
    """
    stacked = self.stacked if stacked is None else stacked
    sharding = self.batch_sharding(stacked)
    axis = 1 if stacked else 0

    def place(local):
      local = np.asarray(local)
      shape = list(local.shape)
      shape[axis] = batch_length or shape[axis]
      return jax.make_array_from_process_local_data(sharding, local, tuple(shape))

    return {k: place(v) for k, v in batch.items()}
