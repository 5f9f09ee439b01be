"""The members of a group as the loop sees them: which are done, their checkpoints, their hooks.

A member is done after its last epoch, once its selection rule stops it early, or once its
hook says stop (a search pruning a trial). Done members keep their slot in the stacked state
(trained, never recorded again) so the group's program keeps its shapes.
"""

from collections.abc import Callable, Sequence
from typing import Any

from jaxdl.errors import CheckpointError
from jaxdl.models.native import build as native_build
from jaxdl.training.checkpoint import Checkpointer
from jaxdl.training.experiment import Experiment
from jaxdl.training.group import MemberGroup
from jaxdl.training.parallel import DataParallel
from jaxdl.training.resume import (Progress, good_steps, restore_members, resume_point,
                                   resumed_progress)
from jaxdl.training.run_folder import RunFolder

EpochHook = Callable[[Sequence[dict[str, Any]]], bool]


class Members:
  """Each member's checkpoints and stopping state.

  Args:
    exps: one experiment per member.
    runs: one run folder per member.
    group: how the members are stacked.
    parallel: the device mesh.
    log: where messages go.
    epoch_hooks: per member, None or ``hook(history) -> stop``, called once with each new
      row (and with the restored history on resume); True stops that member.
  """

  def __init__(self, exps: Sequence[Experiment], runs: Sequence[RunFolder], group: MemberGroup,
               parallel: DataParallel, log: Callable[[str], None],
               epoch_hooks: Sequence[EpochHook | None] | None = None):
    self.exps, self.group, self.parallel, self.log = list(exps), group, parallel, log
    self.selection, self.num_epochs = exps[0].selection, exps[0].config.num_epochs
    self.names = [str(run.path) for run in runs]
    self.checkpointers = [Checkpointer(run.path, exp.config.checkpoints_to_keep, exp.selection)
                          for run, exp in zip(runs, exps)]
    self.hooks = list(epoch_hooks or [None] * len(runs))
    self.stopped = [False] * len(runs)  # Stopped by its hook.

  def is_done(self, member: int, history: Sequence[dict[str, Any]]) -> bool:
    return (len(history) >= self.num_epochs or self.stopped[member]
            or self.selection.should_stop(history))

  def active(self, progress: Progress) -> list[int]:
    """The members still training."""
    return [i for i, h in enumerate(progress.histories) if not self.is_done(i, h)]

  def call_hook(self, member: int, history: Sequence[dict[str, Any]]) -> None:
    if self.hooks[member] is not None and history and not self.stopped[member]:
      self.stopped[member] = bool(self.hooks[member](history))

  def resume(self) -> Progress:
    """Restores the latest point every unfinished member has a good checkpoint of."""
    good = [good_steps(ckpt, self.log) for ckpt in self.checkpointers]
    latest = [self.checkpointers[i].progress(steps[-1]) if steps else None
              for i, steps in enumerate(good)]
    for i, saved in enumerate(latest):
      self.call_hook(i, saved["history"] if saved else [])
    active, step = resume_point(good, latest, self.is_done)
    states, restored = restore_members(self.exps, self.checkpointers, step, active, latest)
    return resumed_progress(self.parallel.place_state(self.group.stack(states)), restored,
                            active, step)

  def save(self, progress: Progress, epoch_end: bool) -> None:
    """Checkpoints every unfinished member (epoch ends carry the selection metric)."""
    states = self.group.unstack(progress.state)
    progress.native_kernels = tuple(dict.fromkeys([*progress.native_kernels,
                                                   *native_build.loaded()]))
    for i in self._saving(progress, epoch_end):
      metrics = (self.selection.checkpoint_metrics(progress.histories[i][-1]) if epoch_end
                 else None)
      self.checkpointers[i].save(states[i], progress.saved(i), metrics)
    progress.saved_step = progress.step

  def _saving(self, progress: Progress, epoch_end: bool) -> list[int]:
    # At an epoch's end the members that just stopped early save their last state too.
    if not epoch_end:
      return self.active(progress)
    return [i for i, h in enumerate(progress.histories) if h and h[-1]["step"] == progress.step]

  def restore(self, steps: Sequence[int]) -> Any:
    """The (stacked) state of each member's checkpoint of ``steps[member]``, on the devices."""
    states = []
    for ckpt, exp, step in zip(self.checkpointers, self.exps, steps):
      try:
        states.append(ckpt.restore(exp.initial_state, step)[0])
      except CheckpointError as e:
        raise CheckpointError(f"cannot test the checkpoint of step {step}: {e}") from e
    return self.parallel.place_state(self.group.stack(states))

  def close(self) -> None:
    for ckpt in self.checkpointers:
      ckpt.close()
