"""The loop's input pipeline, on Grain: batch plans run ahead, in threads or worker processes.

::

  grain.MapDataset.range(start, steps).map(plan)  # the batch of each step (batches.py)
    .to_iter_dataset(ReadOptions(...))            # computed ahead in a background thread
    .mp_prefetch(workers)                         # data.workers > 0: in worker processes
    .map(place)                                   # onto the devices (this process's rows),
                                                  # uint8 pixels scaled there (on_device.py)
  ThreadPrefetchIterDataset(prefetch)             # transfers overlap the running step

A plan is a pure function of the step number, so the order of batches is
fixed by (seed, epoch) whatever the workers and prefetch depth. The
pipeline's state is the next step number, which every checkpoint holds (the
train state's step): a resumed run builds the pipeline from that step, which
is exactly what restoring Grain's index-based iterator state would do.
"""

import os
from collections.abc import Callable, Iterator
from typing import Any

import jax

from jaxdl.data.arrays import Batch
from jaxdl.errors import ConfigError


AUTO = -1  # data.prefetch: let the pipeline decide (see ``prefetch_depth``).


def check_settings(workers: int, prefetch: int) -> None:
  if workers < AUTO:
    raise ConfigError(f"data.workers={workers} must be >= 0 (0 reads in this process), or -1 "
                      "(auto)")
  if prefetch < AUTO:
    raise ConfigError(f"data.prefetch={prefetch} must be >= 0 (0: no batches ahead), or -1 "
                      "(auto)")


def prefetch_depth(setting: int, read_on_demand: bool, backend: str) -> int:
  """The batches to prepare ahead: ``setting``, or for auto (-1) what measured fastest.

  On CPU with data in memory a batch is a cheap gather the step's own threads
  would wait for anyway, and a prefetch thread only contends with them (the
  default experiment ran 0.94x with 2 batches ahead on 2 cores; docs/benchmarks.md):
  none. Reading files, or feeding an accelerator, the host work overlaps the
  step: 2.
  """
  if setting != AUTO:
    return setting
  return 2 if read_on_demand or backend != "cpu" else 0


# Auto workers on an accelerator host: at most this many, and at most half the cores (the
# rest dispatch steps and run XLA's host work).
MAX_AUTO_WORKERS = 8


def worker_count(setting: int, read_on_demand: bool, backend: str, cores: int) -> int:
  """Grain worker processes: ``setting``, or for auto (-1) none unless they can help.

  On 2 CPU cores workers were slower at every count (pipeline alone on 100k PNGs:
  9,936 ex/s in a thread, 6,690 / 5,978 / 3,722 with 1 / 2 / 4 workers;
  docs/benchmarks.md): on a CPU backend they compete with the step for the same
  cores, and data in memory needs no decoding. Reading and decoding files for an
  accelerator, one thread bounds the input rate (about 10k PNGs/s here, while an
  H100 trains the seed CNN at 73k examples/s), so auto starts half the cores, at
  most ``MAX_AUTO_WORKERS`` (not yet measured on a many-core host).
  """
  if setting != AUTO:
    return setting
  if not read_on_demand or backend == "cpu":
    return 0
  return min(MAX_AUTO_WORKERS, cores // 2)


def batches(plan: Callable[[int], Batch], start: int, stop: int, *, workers: int = 0,
            prefetch: int = 2, read_on_demand: bool = False,
            place: Callable[[Batch], Any] | None = None) -> Iterator[Any]:
  """The batches ``plan(step)`` for ``step`` in ``[start, stop)``, in order.

  Args:
    plan: a picklable ``step -> batch`` (batches.py); it runs in worker
      processes when ``workers`` > 0.
    start, stop: the steps to yield (``start`` > 0 when resuming mid-epoch).
    workers: Grain worker processes computing batches (0: a thread of this process; -1
      decides, ``worker_count``).
    prefetch: batches computed (and placed) ahead of the one in use; 0 computes
      each when asked, in this thread; -1 decides (``prefetch_depth``).
    read_on_demand: whether the plan reads files (lazy columns), for ``prefetch_depth``.
    place: moves a host batch onto the devices (e.g. ``DataParallel.shard``).
  """
  check_settings(workers, prefetch)
  backend = jax.default_backend()
  workers = worker_count(workers, read_on_demand, backend, len(os.sched_getaffinity(0)))
  prefetch = prefetch_depth(prefetch, read_on_demand or workers > 0, backend)
  if stop <= start:
    return iter(())
  if workers == 0 and prefetch == 0:  # Nothing ahead: plain, in order, in this thread.
    return (place(plan(step)) if place else plan(step) for step in range(start, stop))
  import grain  # Imported here: the in-memory path above needs none of it.

  dataset = grain.MapDataset.range(start, stop).map(plan).to_iter_dataset(
      grain.ReadOptions(num_threads=1, prefetch_buffer_size=max(prefetch, 1)))
  if workers:
    _allow_unparsed_flags()
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=workers, per_worker_buffer_size=max(prefetch, 1)))
  if place is not None:
    dataset = dataset.map(place)
  if prefetch:
    dataset = grain.experimental.ThreadPrefetchIterDataset(dataset,
                                                           prefetch_buffer_size=prefetch)
  return iter(dataset)


def chain(*steps: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
  """The ``place`` that runs ``steps`` (Nones left out) in order; None if there are none."""
  steps = [step for step in steps if step is not None]
  if len(steps) <= 1:
    return steps[0] if steps else None

  def run(batch):
    for step in steps:
      batch = step(batch)
    return batch

  return run


def _allow_unparsed_flags() -> None:
  """Lets Grain's worker processes start in a program that does not use absl's flags.

  Grain 0.2.18 reads one of its absl flags when starting workers and fails if
  the program never parsed flags (google/grain#1355, fixed after 0.2.18). Only
  then are the flags marked parsed, keeping their defaults (what the fix does).
  """
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
