"""The input pipeline measured: bounded memory, start-up, in-memory speed, worker throughput.

Four measurements, each in fresh worker processes (``python -c``), on data
generated into a temporary folder (never committed):

1. **Bounded memory and start-up**: the seed CNN trains from ArrayRecord
   folders and PNG image folders of two sizes, read on demand
   (``data.in_memory=no``); each run reports its peak RSS, the seconds from
   launch to its first training step, and examples/s. The reference is the same
   run on the in-memory digits (the model's own needs).
2. **No speed lost in memory**: MNIST-size data (60,000 28x28 uint8 images in an
   IDX folder) and the default experiment (digits), trained by this checkout
   (prefetch 2, the default, and 0) and by ``--old`` (a checkout of the code
   before the pipeline, e.g. a ``git worktree``), in rotated order, each over
   the same steps.
3. **Pipeline alone**: examples/s of the image folder's batches (decode + pad,
   no model) with 0, 1, 2 and 4 Grain worker processes.

Every training run stops after ``--steps`` steps (the bench wraps the loop's
batch stream to count and stop; nothing else changes). Medians with min and
max over ``--repeats`` runs.

  python scripts/bench_input.py [--quick] [--old PATH] [--out results.json]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs one training session in a fresh process and prints one JSON line.
_CHILD = r"""
import json, resource, sys, time
launched = float(sys.argv[1]); steps = int(sys.argv[2]); warm = int(sys.argv[3])
overrides = json.loads(sys.argv[4]); workdir = sys.argv[5]
from jaxdl.configs import apply_overrides, load_config
from jaxdl.training import feeding, loop, train_and_evaluate

class Done(Exception):
  pass

marks = {"n": -1}

def counted(batches):  # Counts steps over all epochs.
  for batch in batches:
    marks["n"] += 1
    n = marks["n"]
    if n == 1:
      marks["first_step"] = time.time()  # Step 0 was dispatched: its batch was taken.
    if n == warm:
      marks["warm"] = time.perf_counter()
    if n == steps:
      marks["end"] = time.perf_counter()
      raise Done
    yield batch

if hasattr(feeding, "stream_batches"):  # The Grain pipeline, fed by training/feeding.py.
  real = feeding.stream_batches
  feeding.stream_batches = lambda *a, **k: counted(real(*a, **k))
elif hasattr(loop, "stream_batches"):  # The Grain pipeline, before feeding.py.
  real = loop.stream_batches
  loop.stream_batches = lambda *a, **k: counted(real(*a, **k))
else:  # The code before it: one generator per member.
  real = loop.data_lib.train_batches
  loop.data_lib.train_batches = lambda *a, **k: counted(real(*a, **k))
config = apply_overrides(load_config(overrides[0]), overrides[1:])
try:
  train_and_evaluate(config, workdir, quiet=True)
except Done:
  pass
batch = config.batch_size
print(json.dumps({"startup_s": marks["first_step"] - launched,
                  "examples_per_s": (steps - warm) * batch / (marks["end"] - marks["warm"]),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_PIPELINE = r"""
import json, sys, time
folder, workers, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from jaxdl.configs import apply_overrides, load_config
from jaxdl import data
from jaxdl.data import batches as plans, pipeline
config = apply_overrides(load_config(sys.argv[4]), [f"data.name=imagefolder:{folder}",
                         "data.in_memory=no", "data.image_size=0"])
split = data.build(config.data).train
plan = plans.ShuffledPlan(split, 128, seed=0, epoch=0)
stream = pipeline.batches(plan, 0, batches, workers=workers, prefetch=4)
next(stream)  # Workers started, first batch in.
start = time.perf_counter()
count = sum(1 for _ in stream)
print(json.dumps({"examples_per_s": count * 128 / (time.perf_counter() - start)}))
"""

SEED_CNN = str(ROOT / "experiments" / "seed_cnn_digits.py")


def child(code: str, args: list[str], pythonpath: pathlib.Path = ROOT,
          env: dict | None = None) -> dict:
  """Runs ``code`` in a fresh process (``env``: extra environment variables)."""
  env = {**os.environ, "PYTHONPATH": str(pythonpath), "JAXDL_COMPILATION_CACHE": "off",
         **(env or {})}
  out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       env=env, cwd=pythonpath, timeout=3600)
  if out.returncode:
    raise RuntimeError(out.stderr[-3000:])
  return json.loads(out.stdout.strip().splitlines()[-1])


def train(overrides: list[str], steps: int, warm: int, workdir: pathlib.Path,
          pythonpath: pathlib.Path = ROOT, env: dict | None = None) -> dict:
  args = [str(time.time()), str(steps), str(warm), json.dumps([SEED_CNN, *overrides]),
          str(workdir)]
  return child(_CHILD, args, pythonpath, env)


def write_records(folder: pathlib.Path, gigabytes: float) -> pathlib.Path:
  """A generated ArrayRecord folder of 28x28 uint8 images, ``gigabytes`` of pixels."""
  sys.path.insert(0, str(ROOT))
  from jaxdl.data import arrayrecord

  n = int(gigabytes * 2**30 / 784)
  rng = np.random.default_rng(0)
  with arrayrecord.Writer(folder, num_classes=10, examples_per_file=250_000) as writer:
    for start in range(0, n, 100_000):
      count = min(100_000, n - start)
      labels = rng.integers(0, 10, count)
      images = rng.integers(0, 64, (count, 28, 28, 1), np.uint8) + (labels * 19).astype(
          np.uint8)[:, None, None, None]  # Learnable: brightness says the class.
      held = min(10_000, count // 10) if start == 0 else 0  # The test split.
      if held:
        writer.add("test", images[:held], labels[:held])
      writer.add("train", images[held:], labels[held:])
  return folder


def write_pngs(folder: pathlib.Path, count: int, size: int = 28) -> pathlib.Path:
  """``count`` generated ``size``x``size`` grayscale PNGs in 10 class folders."""
  from PIL import Image

  rng = np.random.default_rng(0)
  for c in range(10):
    (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
  for i in range(count):
    c = i % 10
    pixels = rng.integers(0, 64, (size, size), np.uint8) + np.uint8(c * 19)
    Image.fromarray(pixels).save(folder / f"class{c}" / f"{i:07d}.png")
  return folder


def write_idx(folder: pathlib.Path, count: int) -> pathlib.Path:
  """MNIST-size IDX files (``count`` 28x28 uint8 images) with learnable labels."""
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, count).astype(np.uint8)
  images = rng.integers(0, 64, (count, 28, 28), np.uint8) + (labels * 19)[:, None, None]
  for name, array, magic in (("train-images-idx3-ubyte", images, 3),
                             ("train-labels-idx1-ubyte", labels, 1)):
    header = bytes([0, 0, 0x08, magic]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    (folder / name).write_bytes(header + array.tobytes())
  return folder


def summary(values: list[float]) -> dict:
  return {"median": statistics.median(values), "min": min(values), "max": max(values),
          "n": len(values)}


def bounded_memory(tmp: pathlib.Path, sizes_gb, png_counts, steps: int) -> dict:
  common = ["data.in_memory=no", "data.image_size=0", "data.augment_shift=0", "batch_size=128",
            "num_epochs=1000", "data.val_fraction=0.001"]
  out = {"digits_in_memory": train(["batch_size=128", "num_epochs=100"], steps, 10,
                                   tmp / "run-digits")}
  for gb in sizes_gb:
    folder = write_records(tmp / f"records-{gb}", gb)
    out[f"arrayrecord_{gb}GiB"] = train([f"data.name=arrayrecord:{folder}", *common], steps, 10,
                                        tmp / f"run-ar-{gb}")
  for count in png_counts:
    folder = write_pngs(tmp / f"png-{count}", count)
    out[f"imagefolder_{count}"] = train([f"data.name=imagefolder:{folder}",
                                         "data.test_fraction=0.05", *common], steps, 10,
                                        tmp / f"run-png-{count}")
  return out


def in_memory_speed(tmp: pathlib.Path, old: pathlib.Path | None, repeats: int, steps: int) -> dict:
  """Examples/s on MNIST-size data and on the default experiment: old code vs new, interleaved."""
  folder = write_idx(tmp / "mnist-size", 60_000)
  workloads = {"mnist_size": [f"data.name=idx:{folder}", "data.image_size=0",
                              "data.augment_shift=0", "batch_size=128", "num_epochs=1000"],
               "default_digits": ["num_epochs=1000"]}  # experiments/seed_cnn_digits.py as is.
  variants = {"new": (ROOT, []), "new_prefetch0": (ROOT, ["data.prefetch=0"])}
  if old:
    variants["old"] = (old, [])
  out = {}
  for workload, overrides in workloads.items():
    runs = {name: [] for name in variants}
    names = list(variants)
    for r in range(repeats):  # Rotated order: a noisy spell hits every variant alike.
      for name in names[r % len(names):] + names[:r % len(names)]:
        path, extra = variants[name]
        runs[name].append(train([*overrides, *extra], steps, 20, tmp / f"speed-{workload}-{name}-{r}",
                                path)["examples_per_s"])
    out[workload] = {name: summary(values) for name, values in runs.items()}
    if old:
      out[workload]["ratio_new_over_old"] = (out[workload]["new"]["median"]
                                             / out[workload]["old"]["median"])
  return out


def pipeline_alone(folder: pathlib.Path, workers_list, batches: int) -> dict:
  return {f"workers_{w}": child(_PIPELINE, [str(folder), str(w), str(batches), SEED_CNN])
          for w in workers_list}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
  parser.add_argument("--old", type=pathlib.Path, help="a checkout of the code before the pipeline")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", type=pathlib.Path)
  args = parser.parse_args()
  sizes, pngs = ((0.01, 0.02), (2_000, 4_000)) if args.quick else ((0.5, 2.0), (25_000, 100_000))
  steps = 30 if args.quick else args.steps
  with tempfile.TemporaryDirectory(prefix="jaxdl-bench-input-") as tmp:
    tmp = pathlib.Path(tmp)
    results = {"memory_and_startup": bounded_memory(tmp, sizes, pngs, steps)}
    print(json.dumps(results, indent=1), flush=True)
    results["pipeline_alone"] = pipeline_alone(tmp / f"png-{pngs[-1]}", (0, 1, 2, 4),
                                               20 if args.quick else 200)
    print(json.dumps(results["pipeline_alone"], indent=1), flush=True)
    results["in_memory_speed"] = in_memory_speed(tmp, args.old, 1 if args.quick else args.repeats,
                                                 steps)
  results["machine"] = {"cpus": os.cpu_count(), "steps": steps}
  print(json.dumps(results, indent=1))
  if args.out:
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
  main()
