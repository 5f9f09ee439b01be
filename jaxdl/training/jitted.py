"""The jitted steps of a group of runs: train, evaluate, predict, sharded over the mesh."""

from typing import Any

import jax

from jaxdl.training.experiment import Experiment
from jaxdl.training.group import MemberGroup
from jaxdl.training.heaps import HeapSplitJit
from jaxdl.training.parallel import DataParallel
from jaxdl.training.steps import make_eval_step, make_predict_step, make_train_step


def jit_steps(exp: Experiment, group: MemberGroup, parallel: DataParallel,
              state_sharding: Any) -> tuple[Any, Any]:
  """The jitted train and eval steps that ``jaxdl train`` runs, for ``exp``'s model.

  Args:
    exp: the first member's experiment: model, optimizer, objective, dtype and privacy.
    group: how many runs the steps train at once (vmapped when vectorized).
    parallel: the device mesh; batches are sharded over its data axis.
    state_sharding: the (stacked) state's shardings, from ``parallel.state_shardings``.

  Returns:
    ``(train_step, eval_step)``: ``train_step(state, batch) -> (state, metric sums)``
    donates its state; ``eval_step(state, batch) -> metric sums``. On CPU both keep
    their temporaries in blocks the C allocator reuses where the process needs and
    allows it (``heaps.HeapSplitJit``).
  """
  config = exp.config
  batch_mesh = parallel.mesh if parallel.num_devices > 1 else None
  platform = parallel.mesh.devices.flat[0].platform
  train_step = HeapSplitJit(group.vmap_if_vectorized(make_train_step(
      exp.model, exp.tx, exp.objective, config.nonfinite, exp.privacy, exp.compute_dtype,
      batch_mesh, exp.constrain)), platform,
      donate_argnums=0, in_shardings=(state_sharding, parallel.batch_sharding()),
      out_shardings=(state_sharding, parallel.replicated))
  eval_step = HeapSplitJit(group.vmap_if_vectorized(make_eval_step(exp.model, exp.objective,
                                                                   exp.compute_dtype),
                                                    in_axes=(0, None)), platform,
                           in_shardings=(state_sharding, parallel.batch_sharding(stacked=False)),
                           out_shardings=parallel.replicated)
  return train_step, eval_step


def jit_predict_step(exp: Experiment, group: MemberGroup, parallel: DataParallel,
                     state_sharding: Any):
  """``predict_step(state, batch) -> per-example predictions`` (for paired tests)."""
  step = make_predict_step(exp.model, exp.objective,
                           exp.datasets.spec.task == "classification", exp.compute_dtype)
  return jax.jit(group.vmap_if_vectorized(step, in_axes=(0, None)),
                 in_shardings=(state_sharding, parallel.batch_sharding(stacked=False)),
                 out_shardings=parallel.replicated)
