"""Where a group of runs resumes: the latest step every unfinished member has a good
checkpoint of (corrupt checkpoints deleted), and the progress that checkpoint holds."""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxdl.training.checkpoint import Checkpointer, CorruptCheckpoint
from jaxdl.training.experiment import Experiment
from jaxdl.training.metric_sums import to_json


@dataclasses.dataclass
class Progress:
  """Where a group's training stands; a checkpoint holds all of it.

  Attributes:
    state: the (stacked) train state, on the devices.
    step: optimizer steps the group has taken.
    histories: each member's metrics.jsonl rows.
    partial_sums: each member's metric sums of the unfinished epoch (None at an
      epoch boundary).
    train_s: seconds spent in training steps, over every session.
    compile_s: seconds of the first step (compile included).
    saved_step: the step of the last checkpoint written (None: none yet).
    native_kernels: the native kernels loaded by every session that trained the group.
  """

  state: Any
  step: int
  histories: list[list[dict[str, Any]]]
  partial_sums: list[dict[str, float]] | None = None
  train_s: float = 0.0
  compile_s: float | None = None
  saved_step: int | None = None
  native_kernels: tuple[str, ...] = ()

  def saved(self, member: int) -> dict[str, Any]:
    """Member ``member``'s progress item for its checkpoint (JSON)."""
    return {"history": self.histories[member], "train_s": self.train_s,
            "compile_s": self.compile_s, "native_kernels": list(self.native_kernels),
            "epoch_sums": None if self.partial_sums is None else to_json(
                self.partial_sums[member])}


def partial_sums(restored: Sequence[dict], active: Sequence[int], step: int | None
                  ) -> list[dict] | None:
  """The unfinished epoch's metric sums of each member, where the group resumes mid-epoch.

  Members that are done contribute placeholder sums that are never read.
  """
  if not active or step is None or restored[active[0]].get("epoch_sums") is None:
    return None
  template = restored[active[0]]["epoch_sums"]
  return [restored[i]["epoch_sums"] if i in active else
          {k: np.zeros_like(np.asarray(v)).tolist() for k, v in template.items()}
          for i in range(len(restored))]


def good_steps(checkpointer: Checkpointer, log: Callable[[str], None]) -> list[int]:
  """A member's checkpoint steps whose files match their checksums (corrupt ones deleted)."""
  good = []
  for step in checkpointer.all_steps():
    try:
      checkpointer.verify(step)
      good.append(step)
    except CorruptCheckpoint as e:
      log(f"{e}; deleting it and resuming from the checkpoint before it")
      checkpointer.delete(step)
  return good


def resume_point(good: Sequence[list[int]], latest: Sequence[dict | None],
                 is_done: Callable[[int, Sequence[dict]], bool]) -> tuple[list[int], int | None]:
  """The unfinished members, and the latest step all of them have a good checkpoint of."""
  active = [i for i, saved in enumerate(latest) if saved is None or not is_done(i, saved["history"])]
  common = set.intersection(*(set(good[i]) for i in active)) if active else set()
  return active, (max(common) if common else None)


def restore_members(exps: Sequence[Experiment], checkpointers: Sequence[Checkpointer],
                    step: int | None, active: Sequence[int], latest: Sequence[dict | None]
                    ) -> tuple[list, list[dict]]:
  """Each member's state and progress: active ones at ``step``, done ones as they ended."""
  states, restored = [], []
  for i, (exp, checkpointer) in enumerate(zip(exps, checkpointers)):
    if i in active and step is not None:
      state, saved = checkpointer.restore(exp.initial_state, step)
    else:  # A fresh start, or a member that is done (its slot is a placeholder).
      state, saved = exp.initial_state, latest[i] if i not in active else None
    states.append(state)
    restored.append(saved or {"history": []})
  return states, restored


def resumed_progress(state: Any, restored: Sequence[dict], active: Sequence[int],
                     step: int | None) -> Progress:
  """The group's progress from each member's restored checkpoint item."""
  timing = restored[active[0] if active else 0]
  if not active:  # Every member is done (killed before results.json): where they ended.
    step = max((r["history"][-1]["step"] for r in restored if r["history"]), default=None)
  return Progress(state=state, step=step or 0, histories=[r["history"] for r in restored],
                  partial_sums=partial_sums(restored, active, step),
                  train_s=float(timing.get("train_s", 0.0)), compile_s=timing.get("compile_s"),
                  saved_step=step, native_kernels=tuple(timing.get("native_kernels", ())))
