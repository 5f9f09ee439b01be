"""Compile time of a first and a second identical `jaxdl train`, with the persistent cache.

Each run is a fresh process of the jaxdl command (which turns on JAX's persistent
compilation cache) in a fresh run folder; the cache folder starts empty. The
first run compiles and stores the training step's XLA executable; the second
loads it. Reported: each run's `compile_s` (the first step, compile included)
from its results.json, medians over --repeats pairs, each pair with its own
empty cache.

  python scripts/compile_cache.py [--repeats 3] [--out FILE.jsonl]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKLOADS = {
    "seed CNN (digits)": ["experiments/seed_cnn_digits.py", "--config.num_epochs=1"],
    "seed LSTM (adding, T=50)": ["experiments/adding_lstm.py", "--config.num_epochs=1",
                                "--config.data.num_train=2048"],
}


def _run(args: list[str], workdir: pathlib.Path, cache: pathlib.Path) -> float:
  path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
  env = {**os.environ, "JAXDL_COMPILATION_CACHE": str(cache), "PYTHONPATH": path}
  out = subprocess.run([sys.executable, "-m", "jaxdl.cli", "train", *args, "--workdir",
                        str(workdir), "--quiet"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=900)
  if out.returncode:
    raise SystemExit(out.stderr[-3000:])
  return json.loads((workdir / "results.json").read_text())["compile_s"]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", help="JSON lines of every measurement")
  args = parser.parse_args()
  rows = []
  for name, workload in WORKLOADS.items():
    first, second = [], []
    for _ in range(args.repeats):
      with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        first.append(_run(workload, tmp / "a", tmp / "xla"))
        second.append(_run(workload, tmp / "b", tmp / "xla"))
    rows.append({"workload": name, "first_compile_s": first, "second_compile_s": second})
    print(f"{name}: first run {statistics.median(first):.2f} s ({min(first):.2f}-"
          f"{max(first):.2f}), second run {statistics.median(second):.2f} s "
          f"({min(second):.2f}-{max(second):.2f}), median of {args.repeats}", flush=True)
  if args.out:
    pathlib.Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
  main()
