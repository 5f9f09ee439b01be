"""Evaluation over a whole split, and the per-epoch record the loop writes.

Every example of a split counts exactly once: the last batch is padded and
masked, and the metric sums are merged before they are divided (metric_sums.py).
"""

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jaxdl.data import on_device, pipeline
from jaxdl.data.arrays import Split
from jaxdl.data.batches import InOrderPlan
from jaxdl.errors import NonFiniteError
from jaxdl.training.group import MemberGroup
from jaxdl.training.metric_sums import merge
from jaxdl.training.parallel import DataParallel
from jaxdl.training.state import TrainState
from jaxdl.training.steps import EvalStep, PredictStep

_merge = jax.jit(merge)


def evaluate_group(group: MemberGroup, eval_step: EvalStep, state: TrainState, split: Split,
                   batch_size: int, parallel: DataParallel | None = None, *, workers: int = 0,
                   prefetch: int = 0, read_on_demand: bool = False, skip_bad: bool = False,
                   bucket: int = 0) -> list[dict[str, float]]:
  """Each member's mean metrics over every example of ``split`` ({} for an empty split).

  ``workers``, ``prefetch`` and ``read_on_demand`` set the input pipeline (pipeline.py); with
  ``skip_bad`` unreadable examples are left out and counted (``skipped_examples``); ``bucket``
  cuts each batch's padding (``data.length_bucket``, batches.py).
  """
  if len(split) == 0:
    return [{} for _ in range(group.size)]
  finish = on_device.finisher([split], 0, stacked=False)
  plan = InOrderPlan(split, batch_size, parallel.process_rows(batch_size) if parallel else None,
                     skip_bad, on_device=finish is not None, bucket=bucket)
  shard = (functools.partial(parallel.shard, stacked=False, batch_length=batch_size)
           if parallel else None)
  place = pipeline.chain(shard, finish)
  sums = None
  for batch in pipeline.batches(plan, 0, plan.steps, workers=workers, prefetch=prefetch,
                                read_on_demand=read_on_demand, place=place):
    batch_sums = eval_step(state, batch)
    sums = batch_sums if sums is None else _merge(sums, batch_sums)
  return group.means(sums)


def predict_group(group: MemberGroup, predict_step: PredictStep, state: TrainState, split: Split,
                  batch_size: int, parallel: DataParallel | None = None, *, workers: int = 0,
                  prefetch: int = 0, read_on_demand: bool = False, skip_bad: bool = False,
                  bucket: int = 0) -> list[dict[str, np.ndarray]]:
  """Each member's per-example predictions on ``split``, in the split's order.

  Returns, per member: ``index <int64>[n]`` (the example's position in the split; examples
  left out as unreadable have none), ``label``, ``predicted`` (the class, or the regression
  output) and ``loss <float32>[n]`` (the objective's per-example loss). Paired tests and
  bootstrap intervals resample these (sweeps/intervals.py).
  """
  finish = on_device.finisher([split], 0, stacked=False)
  plan = InOrderPlan(split, batch_size, parallel.process_rows(batch_size) if parallel else None,
                     skip_bad, on_device=finish is not None, bucket=bucket)
  shard = (functools.partial(parallel.shard, stacked=False, batch_length=batch_size)
           if parallel else None)
  parts: list[list[dict[str, np.ndarray]]] = [[] for _ in range(group.size)]
  batches = pipeline.batches(plan, 0, plan.steps, workers=workers, prefetch=prefetch,
                             read_on_demand=read_on_demand, place=pipeline.chain(shard, finish))
  for step, batch in enumerate(batches):
    out = group.unstack(jax.device_get(predict_step(state, batch)))
    for member, values in zip(parts, out):
      real = np.asarray(values.pop("mask")) > 0
      index = step * batch_size + np.arange(len(real))
      member.append({"index": index[real], **{k: np.asarray(v)[real] for k, v in values.items()}})
  return [{k: np.concatenate([p[k] for p in member]) for k in member[0]} if member else {}
          for member in parts]


def evaluate(eval_step: EvalStep, state: TrainState, split: Split,
             batch_size: int) -> dict[str, float]:
  """Mean metrics of one run's ``state`` over every example of ``split``."""
  return evaluate_group(MemberGroup(1, False), eval_step, state, split, batch_size)[0]


def epoch_row(epoch: int, step: int, train: dict[str, float], val: dict[str, float],
              examples: int, seconds: float) -> dict[str, Any]:
  """One line of metrics.jsonl: train and validation means, throughput, seconds."""
  row: dict[str, Any] = {"epoch": epoch, "step": step}
  row.update({f"train_{k}": v for k, v in train.items()})
  row.update({f"val_{k}": v for k, v in val.items()})
  row.update({"examples_per_s": examples / seconds if seconds > 0 else None, "wall_s": seconds})
  return row


def check_finite(sums: Sequence[dict[str, float]], names: Sequence[str],
                 last_good: int | None) -> None:
  """Raises NonFiniteError if a member's sums record a non-finite loss or gradient.

  Args:
    sums: host metric sums, one per member checked.
    names: the members' run folders, for the message.
    last_good: the step of the last checkpoint written (kept, and named).
  """
  for name, member in zip(names, sums):
    if member.get("nonfinite_steps", 0.0) > 0:
      loss_step, grad_step = int(member["first_nonfinite_loss"]), int(
          member["first_nonfinite_grad"])
      what, step = ("loss", loss_step) if loss_step <= grad_step else ("gradient", grad_step)
      kept = (f"the last good checkpoint (step {last_good}) is kept" if last_good
              else "no checkpoint had been written yet")
      raise NonFiniteError(f"{name}: non-finite {what} at step {step}; {kept}. Lower "
                           "optim.learning_rate, set optim.grad_clip_norm, or set "
                           "nonfinite=skip to skip such steps")
