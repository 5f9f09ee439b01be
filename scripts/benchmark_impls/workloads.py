"""The benchmark's workloads: the seed's two Keras models, batch 128, float32, Adam 1e-3.

Every implementation builds the same model from these numbers and trains it on
random data of the right shapes (speed does not depend on the values). A Runner
is what an implementation module returns:

  runner.examples_per_step  examples one step trains (all members of a sweep)
  runner.warm_up()          the first step, compile or trace included
  runner.prepare(steps)     anything ``run(steps)`` needs that must not be timed
  runner.run(steps)         ``steps`` training steps, returning when all are done
  runner.info               dict of settings worth recording (resolved flags)
"""

import dataclasses

import numpy as np

BATCH = 128
LEARNING_RATE = 1e-3
POOL_BATCHES = 8  # Distinct random batches cycled through by the step loops.


@dataclasses.dataclass(frozen=True)
class Workload:
  """One benchmark workload.

  Attributes:
    name: 'cnn', 'lstm' or 'lstm-sweep8'.
    model: 'cnn' (the seed's section 4.1 CNN) or 'lstm' (section 4.2 text model).
    members: models trained at once (a vectorized sweep when > 1).
  """

  name: str
  model: str
  members: int = 1

  # The seed's CNN: 28x28x1 images, 10 classes.
  image_shape = (28, 28, 1)
  num_classes = 10
  # The seed's text model: Embedding(10000, 64, input_length=100) -> LSTM(64, seq) -> LSTM(64)
  # -> Dense(10, softmax).
  vocab_size = 10_000
  seq_len = 100
  embed_dim = 64
  hidden = 64


WORKLOADS = {w.name: w for w in (Workload("cnn", "cnn"), Workload("lstm", "lstm"),
                                  Workload("lstm-sweep8", "lstm", members=8))}


def random_data(workload: Workload, num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """``num`` random examples: NHWC float32 images in [0, 1) or int32 token ids, int32 labels."""
  rng = np.random.default_rng(seed)
  if workload.model == "cnn":
    x = rng.random((num, *workload.image_shape), dtype=np.float32)
  else:
    x = rng.integers(2, workload.vocab_size, (num, workload.seq_len), dtype=np.int32)
  y = rng.integers(0, workload.num_classes, num, dtype=np.int32)
  return x, y


class Unavailable(RuntimeError):
  """An implementation cannot run on this machine (the benchmark skips it and says why)."""


class Runner:
  """The Runner protocol's defaults: warm up with one step; nothing to prepare."""

  examples_per_step: int = BATCH
  info: dict

  def warm_up(self) -> None:
    self.run(1)

  def prepare(self, steps: int) -> None:
    del steps

  def run(self, steps: int) -> None:
    raise NotImplementedError
