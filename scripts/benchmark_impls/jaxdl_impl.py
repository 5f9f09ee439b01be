"""jaxdl: the training step ``jaxdl train`` runs, built through jaxdl's API from the experiments."""

import math
import os
import pathlib

import jax
import numpy as np

from benchmark_impls import workloads
from benchmark_impls.workloads import BATCH, LEARNING_RATE, POOL_BATCHES, Workload, random_data
from jaxdl import cost, data, models, peak
from jaxdl.configs import load_config
from jaxdl.data import DataSpec, Datasets, Split
from jaxdl.host import allocator_state
from jaxdl.models.native import build as native_build
from jaxdl.training.experiment import build_experiment
from jaxdl.training.group import MemberGroup
from jaxdl.training.jitted import jit_steps
from jaxdl.training.metric_sums import merge
from jaxdl.training.parallel import DataParallel

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / "experiments"
# The seed's models as jaxdl's experiments define them; data is replaced by random arrays.
EXPERIMENT_FILES = {"cnn": "seed_cnn_mnist.py", "lstm": "seed_lstm_mr.py"}


def _datasets(workload: Workload) -> Datasets:
  num = BATCH * POOL_BATCHES
  x, y = random_data(workload, num)
  if workload.model == "cnn":
    spec = DataSpec("random", "classification", workload.image_shape, "float32",
                    workload.num_classes, num, 0, 0)
    extra = {}
  else:
    spec = DataSpec("random", "classification", (workload.seq_len,), "int32",
                    workload.num_classes, num, 0, 0, vocab_size=workload.vocab_size)
    extra = {"lengths": np.full(num, workload.seq_len, np.int32)}  # Padding is masked.
  train = Split(x, y, extra)
  empty = train.take(np.arange(0))
  return Datasets(train, empty, empty, spec)


def _config(workload: Workload, seed: int):
  config = load_config(str(EXPERIMENTS / EXPERIMENT_FILES[workload.model]))
  config.unlock()
  config.seed = seed
  config.batch_size = BATCH
  config.num_epochs = 1
  config.optim.name = "adam"
  config.optim.learning_rate = LEARNING_RATE
  config.optim.schedule = "constant"
  config.data.augment_shift = 0
  config.dtype = "float32"
  return config


class Runner(workloads.Runner):
  def __init__(self, workload: Workload, lstm_kernel: str | None = None):
    datasets = _datasets(workload)
    configs = [_config(workload, seed) for seed in range(workload.members)]
    for config in configs if lstm_kernel else ():
      config.model.lstm_kernel = lstm_kernel
    exps = [build_experiment(c, datasets) for c in configs]
    vectorized = workload.members > 1
    self.members = MemberGroup(workload.members, vectorized)
    self.parallel = DataParallel.over_all_devices(stacked=vectorized)
    self.state = self.parallel.place_state(self.members.stack([e.initial_state for e in exps]))
    self.train_step, _ = jit_steps(exps[0], self.members, self.parallel,
                                   self.parallel.state_shardings(self.state))
    member_batches = [list(data.train_batches(datasets.train, BATCH, c.seed, 0)) for c in configs]
    self.batches = [self.members.stack(b) for b in zip(*member_batches)]
    self.examples_per_step = BATCH * workload.members
    self.sums = None
    self._add = jax.jit(merge)
    flops = models.flops_per_example(exps[0].model, exps[0].initial_state.variables(),
                                     datasets.spec.input_shape, datasets.spec.input_dtype)
    # NaN where the backend's cost analysis gives no FLOPs (GPU, from the unoptimized HLO).
    self.info = {"flops_per_example": (cost.TRAINING_FLOPS_PER_FORWARD * flops
                                       if math.isfinite(flops) else None),
                 "devices": [str(d) for d in jax.devices()],
                 "host_allocator": allocator_state(),
                 "xla_flags": os.environ.get("XLA_FLAGS", ""),
                 "lstm_kernel": configs[0].model.lstm_kernel if workload.model == "lstm" else None}
    self.step = 0

  def warm_up(self) -> None:
    self.run(1)
    # jaxdl's kernels the step traced, as results.json's native_kernels lists them: where
    # one cannot run (another backend, dtype or size) the step runs XLA's version.
    self.info["kernels"] = native_build.loaded()

  def run(self, steps: int) -> None:
    # What the training loop does per step: shard the host batch, step, add the metric sums.
    for _ in range(steps):
      batch = self.parallel.shard(self.batches[self.step % len(self.batches)])
      self.state, step_sums = self.train_step(self.state, batch)
      self.sums = step_sums if self.sums is None else self._add(self.sums, step_sums)
      self.step += 1
    jax.block_until_ready((self.state, self.sums))


def build(workload: Workload, lstm_kernel: str | None = None) -> Runner:
  """jaxdl's runner, with the experiment's own settings (``model.lstm_kernel`` unless given)."""
  return Runner(workload, lstm_kernel)


def matmul_peak() -> dict:
  """The float32 matmul peak, measured as ``jaxdl bench-peak`` measures it."""
  return peak.measure_matmul_peak()
