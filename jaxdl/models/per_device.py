"""jaxdl's kernels on each device's own examples, where the train step splits its batch.

XLA cannot split a kernel's call (a ``jax.ffi`` C++ kernel, a Pallas kernel) over
devices: given a batch split over a mesh, it gathers the whole batch on every
device and runs the kernel there, which is correct but no faster with more
devices (seen in the compiled program on two CPU devices). The train step says
over which mesh its batch is split (``custom_gradients.batch_mesh()``), and
``over_batch`` runs a kernel under ``shard_map``, so that each device works on
its own rows. Arguments without a batch axis (weights) reach every device whole;
``shard_map``'s transpose sums their gradients over the devices.
"""

from collections.abc import Callable

import jax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxdl.models import custom_gradients

BATCH_AXIS = "data"  # DataParallel's mesh axis for the batch.
SHARED = P()  # No batch axis (weights, biases): whole on every device.
BATCH_FIRST = P(BATCH_AXIS)  # [B, ...]: images, states.
TIME_MAJOR = P(None, BATCH_AXIS)  # [T, B, ...]: sequences.


def splitting(mesh: Mesh | None, batch_size: int) -> Mesh | None:
  """``mesh`` where its data axis divides a batch of ``batch_size`` evenly, else None (the
  kernel then runs on the whole batch)."""
  if mesh is None or batch_size % mesh.shape[BATCH_AXIS]:
    return None
  return mesh


def mesh_for(batch_size: int) -> Mesh | None:
  """The mesh over which the train step being traced splits a batch of ``batch_size`` (see
  ``custom_gradients``), or None."""
  return splitting(custom_gradients.batch_mesh(), batch_size)


def over_batch(kernel: Callable, mesh: Mesh | None, in_specs, out_specs) -> Callable:
  """``kernel`` run by each device on its own rows of the batch over ``mesh`` (unchanged
  where ``mesh`` is None). ``in_specs`` and ``out_specs`` place each argument's and
  result's batch axis (``SHARED``, ``BATCH_FIRST``, ``TIME_MAJOR``; one spec may cover a
  tuple); the kernel must treat every example independently."""
  if mesh is None:
    return kernel
  if hasattr(jax, "shard_map"):
    return jax.shard_map(kernel, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
  from jax.experimental.shard_map import shard_map  # JAX < 0.7.
  return shard_map(kernel, mesh, in_specs, out_specs, check_rep=False)
