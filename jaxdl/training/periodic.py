"""Work done every so many training steps, in the shape of ``clu.periodic_actions``.

The loop calls each action after every step with the step, the group's progress and the
epoch's metric sums so far; an action does its work when it is due. clu itself is not a
dependency: its actions are timed by the wall clock and carry its profiler and writers,
where these two need the step and the sums only.
"""

import time
from typing import Any

import jax

from jaxdl.training.group import MemberGroup
from jaxdl.training.resume import Progress
from jaxdl.training.signals import StopSignals


class TrainClock:
  """Seconds spent in training steps, added to ``progress.train_s``.

  Dispatch is asynchronous: the clock waits for the queued steps before it reads the time,
  so it times the steps, not their dispatch.
  """

  def __init__(self):
    self.mark = time.perf_counter()

  def start(self) -> None:
    self.mark = time.perf_counter()

  def stop(self, progress: Progress) -> None:
    jax.block_until_ready(progress.state.step)
    progress.train_s += time.perf_counter() - self.mark


class PeriodicAction:
  """Runs ``apply`` after every ``every_steps``-th step (never, for 0)."""

  def __init__(self, every_steps: int):
    self.every_steps = every_steps

  def due(self, step: int) -> bool:
    return bool(self.every_steps) and step % self.every_steps == 0

  def __call__(self, step: int, progress: Progress, sums: Any) -> None:
    if self.due(step):
      self.apply(step, progress, sums)

  def apply(self, step: int, progress: Progress, sums: Any) -> None:
    raise NotImplementedError


class RunningLog(PeriodicAction):
  """The epoch's running training means to TensorBoard / W&B (``log.every_steps``).

  Args:
    every_steps: steps between two writes.
    writers: per member, its writers (none: nothing is due).
    group: how the members are stacked.
    active: ``active(progress)``, the members still training.
  """

  def __init__(self, every_steps: int, writers: list[list], group: MemberGroup, active):
    super().__init__(every_steps)
    self.writers, self.group, self.active = writers, group, active

  def due(self, step: int) -> bool:
    return super().due(step) and any(self.writers)

  def apply(self, step: int, progress: Progress, sums: Any) -> None:
    means = self.group.means(sums)
    for i in self.active(progress):
      for writer in self.writers[i]:
        writer.running(step, means[i])


class MidEpochCheckpoint(PeriodicAction):
  """A checkpoint inside an epoch, every ``checkpoint_every_steps`` and on a stop signal.

  Never at an epoch's last step: that checkpoint is written with the epoch's row. After
  the checkpoint of a stop signal, raises ``Preempted``.

  Args:
    every_steps: steps between two checkpoints.
    steps_per_epoch: the group's steps in one epoch.
    stop: the signals that ask for a checkpoint now (SIGTERM, SIGINT).
    clock: the training-time clock, paused while the checkpoint is written.
    save_partial: ``save_partial(progress, sums)``, the checkpoint with the epoch's sums.
  """

  def __init__(self, every_steps: int, steps_per_epoch: int, stop: StopSignals,
               clock: TrainClock, save_partial):
    super().__init__(every_steps)
    self.steps_per_epoch, self.stop, self.clock = steps_per_epoch, stop, clock
    self.save_partial = save_partial

  def due(self, step: int) -> bool:
    if step % self.steps_per_epoch == 0:
      return False
    return super().due(step) or self.stop.received

  def apply(self, step: int, progress: Progress, sums: Any) -> None:
    self.clock.stop(progress)
    self.save_partial(progress, sums)
    if self.stop.received:
      raise self.stop.preempted(step)
    self.clock.start()
