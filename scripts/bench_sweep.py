"""Vectorized vs sequential sweeps, measured side by side on this machine.

Workloads: 8 seeds of the seed CNN on the digits, and 8 seeds of the seed
LSTM (one layer of 64) on the adding problem. Each is trained once as 8
sequential runs and once as one vectorized group, interleaved over rounds so
a noisy machine hits both alike. Reports training examples/s (all members'
examples over training time) with compile time included and excluded, the
median over rounds with min and max, and the ratio vectorized / sequential.

  python scripts/bench_sweep.py [--rounds 3] [--members 8] [--out FILE.jsonl]
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

import jax

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

from jaxdl.configs import apply_overrides, load_config  # noqa: E402
from jaxdl.training.loop import train_group  # noqa: E402

WORKLOADS = {
    "cnn-digits": ("seed_cnn_digits.py", ["num_epochs=2", "data.augment_shift=0"]),
    "lstm-adding": ("adding_lstm.py", ["num_epochs=2", "data.num_train=4000",
                                       "data.seq_len=50"]),
}


def _measure(configs, vectorized: bool) -> dict[str, float]:
  with tempfile.TemporaryDirectory() as tmp:
    folders = [pathlib.Path(tmp) / f"m{i}" for i in range(len(configs))]
    t0 = time.perf_counter()
    if vectorized:
      results = train_group(configs, folders, vectorized=True, quiet=True)
      train_s, compile_s = results[0]["train_s"], results[0]["compile_s"]
    else:
      results = [train_group([c], [f], vectorized=False, quiet=True)[0]
                 for c, f in zip(configs, folders)]
      train_s = sum(r["train_s"] for r in results)
      compile_s = sum(r["compile_s"] for r in results)
    wall = time.perf_counter() - t0
  examples = results[0]["epochs"] * results[0]["num_train"] * len(configs)
  return {"with_compile": examples / train_s,
          "without_compile": examples / max(train_s - compile_s, 1e-9),
          "compile_s": compile_s, "wall_s": wall}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--members", type=int, default=8)
  parser.add_argument("--out", help="JSON lines, one per workload and mode")
  args = parser.parse_args()
  rows = []
  for name, (file, overrides) in WORKLOADS.items():
    base = apply_overrides(load_config(str(ROOT / "experiments" / file)), overrides)
    configs = [apply_overrides(base, [f"seed={s}"]) for s in range(args.members)]
    runs = {"sequential": [], "vectorized": []}
    for _ in range(args.rounds):
      for mode in runs:  # Interleaved: A B A B ...
        runs[mode].append(_measure(configs, mode == "vectorized"))
    for mode, samples in runs.items():
      row = {"workload": name, "mode": mode, "members": args.members, "rounds": args.rounds,
             "device": jax.devices()[0].device_kind, "backend": jax.default_backend()}
      for key in ("with_compile", "without_compile"):
        values = [s[key] for s in samples]
        row[f"examples_per_s_{key}"] = statistics.median(values)
        row[f"min_{key}"], row[f"max_{key}"] = min(values), max(values)
      row["compile_s"] = statistics.median(s["compile_s"] for s in samples)
      rows.append(row)
  if args.out:
    pathlib.Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
  print(f"| workload ({args.members} members) | mode | examples/s, compile excluded (min-max) "
        "| examples/s, compile included | compile s | ratio (excl. / incl.) |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    seq = next(x for x in rows if x["workload"] == r["workload"] and x["mode"] == "sequential")
    ratio = (f"{r['examples_per_s_without_compile'] / seq['examples_per_s_without_compile']:.2f}x"
             f" / {r['examples_per_s_with_compile'] / seq['examples_per_s_with_compile']:.2f}x")
    print(f"| {r['workload']} | {r['mode']} | {r['examples_per_s_without_compile']:,.0f} "
          f"({r['min_without_compile']:,.0f}-{r['max_without_compile']:,.0f}) | "
          f"{r['examples_per_s_with_compile']:,.0f} | {r['compile_s']:.2f} | {ratio} |")


if __name__ == "__main__":
  main()
