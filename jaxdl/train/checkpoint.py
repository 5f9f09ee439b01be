"""Checkpoints of the train state and the loop's host-side progress, via orbax.

Each checkpoint holds two items: ``state`` (the TrainState pytree) and
``progress`` (JSON: the metrics history so far and the partial epoch's metric
sums), so a resumed run continues exactly where the saved one stood. Orbax
writes into a temporary folder and renames it when complete, so a crash
mid-write never replaces the last good checkpoint.
"""

import logging
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxdl.errors import CheckpointError
from jaxdl.train.state import TrainState

# Orbax logs every save at INFO through absl; a run's own output is enough.
logging.getLogger("absl").setLevel(logging.WARNING)


class Checkpointer:
  """Saves and restores (state, progress) pairs under ``workdir/checkpoints``."""

  def __init__(self, workdir: str | pathlib.Path, max_to_keep: int = 2):
    self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=max(max_to_keep, 1), create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "progress"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, state: TrainState, progress: dict[str, Any]) -> None:
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     progress=ocp.args.JsonSave(progress)))
    self._manager.wait_until_finished()

  def restore(self, template: TrainState, step: int | None = None) -> tuple[TrainState, dict]:
    """Restores the checkpoint at ``step`` (default: the latest) into ``template``'s structure."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}; train first with "
                            "`jaxdl train CONFIG --workdir DIR`")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax raises many types for a damaged or foreign checkpoint.
      first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
      raise CheckpointError(
          f"checkpoint {self.directory / str(step)} cannot be restored into this model "
          f"({type(e).__name__}: {first_line[:300]}); it is corrupt or from a different "
          "model/config: delete it or use a new --workdir") from e
    return restored.state, restored.progress

  def close(self) -> None:
    self._manager.close()
