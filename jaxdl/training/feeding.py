"""A group's input: each member's batches of an epoch as one plan, streamed to the devices."""

import functools
from collections.abc import Sequence
from typing import Any

from jaxdl.data import batches as batches_lib
from jaxdl.data import fields
from jaxdl.data import on_device
from jaxdl.data.pipeline import batches as stream_batches, chain
from jaxdl.training.experiment import Experiment
from jaxdl.training.group import MemberGroup
from jaxdl.training.parallel import DataParallel


class GroupInput:
  """The training and evaluation batches of a group's members (``config.data``'s settings)."""

  def __init__(self, exps: Sequence[Experiment], group: MemberGroup, parallel: DataParallel):
    self.exps, self.group, self.parallel = list(exps), group, parallel

  def epoch_plan(self, epoch: int) -> batches_lib.GroupPlan:
    """Every member's batches of ``epoch`` as one plan (batches.py)."""
    plans = []
    device_side = self.train_finisher is not None
    for exp in self.exps:
      c = exp.config
      common = dict(split=exp.datasets.train, seed=c.seed, epoch=epoch,
                    shift=fields.augment_shift(c.data),
                    skip_bad=c.data.skip_bad_examples, on_device=device_side,
                    bucket=fields.length_bucket(c.data))
      if exp.privacy:
        size = exp.privacy["padded_batch"]
        plans.append(batches_lib.PoissonPlan(rate=exp.privacy["sampling_rate"], padded_size=size,
                                             steps=exp.steps_per_epoch, rows=self.parallel.process_rows(size),
                                             **common))
      else:
        plans.append(batches_lib.ShuffledPlan(batch_length=exp.batch_length,
                                              rows=self.parallel.process_rows(exp.batch_length), **common))
    return batches_lib.GroupPlan(plans, self.group.vectorized)

  @property
  def settings(self) -> dict[str, Any]:
    """``data.*``'s pipeline settings, as ``pipeline.batches`` and ``evaluate_group`` take them."""
    data, datasets = self.exps[0].config.data, self.exps[0].datasets
    lazy = any(split.lazy for split in (datasets.train, datasets.val, datasets.test))
    return dict(workers=data.workers, prefetch=data.prefetch, read_on_demand=lazy,
                skip_bad=data.skip_bad_examples, bucket=fields.length_bucket(data))

  @property
  def train_finisher(self) -> on_device.Finisher | None:
    """Scales (and shifts) the training batches on the devices (on_device.py), or None."""
    shift = fields.augment_shift(self.exps[0].config.data)
    return on_device.finisher([exp.datasets.train for exp in self.exps], shift,
                              self.group.vectorized)

  def stream(self, plan, start: int, stop: int, batch_length: int, stacked: bool):
    """The batches ``plan(start..stop-1)`` on the devices, through the Grain pipeline."""
    settings = self.settings
    shard = functools.partial(self.parallel.shard, stacked=stacked, batch_length=batch_length)
    return stream_batches(plan, start, stop, workers=settings["workers"],
                          prefetch=settings["prefetch"],
                          read_on_demand=settings["read_on_demand"],
                          place=chain(shard, self.train_finisher))
