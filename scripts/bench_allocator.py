"""The host allocator's trim threshold: training speed against peak memory, side by side.

The ``jaxdl`` command asks glibc to serve blocks of up to 1 GiB from the heap and
to keep up to ``trim_threshold`` bytes of freed heap for reuse (jaxdl/host.py).
The first setting is what makes XLA:CPU's per-step buffers cheap; the second
decides how much freed memory the process holds on to. This script measures, for
glibc's defaults and for the tuned settings at several trim thresholds
(``$JAXDL_HOST_TRIM_MB``):

1. **Speed**: examples/s of the seed CNN, the seed LSTM and the vectorized sweep of
   8 seed LSTMs (scripts/benchmark.py's workers and windows; every setting's worker
   interleaved in one group, so a noisy machine hits all alike).
2. **Memory**: the peak RSS of one epoch of the seed CNN streaming generated 64x64
   PNG folders of two sizes (``data.in_memory=no``, scripts/bench_input.py's
   child), and its examples/s. With bounded input the peak should not grow with the
   folder; what it grows by is memory the allocator kept.

  python scripts/bench_allocator.py [--quick] [--trims 64,256,1024] [--out FILE.json]
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_input  # noqa: E402
import benchmark  # noqa: E402

TRIM = "JAXDL_HOST_TRIM_MB"


def settings(trims: list[int]) -> dict[str, tuple[str, dict]]:
  """Label -> (benchmark allocator mode, extra environment) for each setting measured."""
  out = {"glibc defaults": ("defaults", {})}
  for mb in trims:
    out[f"tuned, trim {mb} MiB"] = ("same", {TRIM: str(mb)})
  return out


def speed(modes: dict[str, tuple[str, dict]], args,
          runs=(("jaxdl", "cnn"), ("jaxdl", "lstm"), ("jaxdl", "lstm-sweep8"))) -> list[dict]:
  """examples/s per (implementation, workload) of ``runs`` and setting; each run's settings
  interleaved."""
  rows = []
  for impl, workload in runs:
    specs = [(impl, workload, mode, env) for mode, env in modes.values()]
    for label, row in zip(modes, benchmark.measure_interleaved(specs, args)):
      rows.append({"setting": label, "impl": impl, **{k: row[k] for k in (
          "workload", "examples_per_s", "min", "max", "windows", "compile_s")},
          "kernels": row["info"].get("kernels")})
  return rows


def memory(modes: dict[str, tuple[str, dict]], counts: list[int], repeats: int,
           tmp: pathlib.Path) -> list[dict]:
  """Peak RSS and examples/s of one epoch streaming each PNG folder, per setting."""
  common = ["data.in_memory=no", "data.image_size=0", "data.augment_shift=0",
            "batch_size=128", "num_epochs=1000", "data.val_fraction=0.001",
            "data.test_fraction=0.05"]
  folders = {n: bench_input.write_pngs(tmp / f"png-{n}", n, size=64) for n in counts}
  runs: dict[tuple[str, int], list[dict]] = {}
  for repeat in range(repeats):  # Rotated order: repeat r starts at setting r.
    labels = list(modes)
    labels = labels[repeat % len(labels):] + labels[:repeat % len(labels)]
    for label in labels:
      mode, env = modes[label]
      env = {**env, "JAXDL_HOST_ALLOCATOR": "tuned" if mode == "same" else "default"}
      for n, folder in folders.items():
        steps = max(4, int(n * 0.95) // 128)  # One epoch of the training split.
        print(f"memory: {label}, {n} PNGs, repeat {repeat + 1}", file=sys.stderr, flush=True)
        runs.setdefault((label, n), []).append(bench_input.train(
            [f"data.name=imagefolder:{folder}", *common], steps, min(5, steps // 4),
            tmp / f"run-{label.replace(' ', '_')}-{n}-{repeat}", env=env))
  rows = []
  for (label, n), results in runs.items():
    rows.append({"setting": label, "pngs": n,
                 "peak_rss_mb": bench_input.summary([r["peak_rss_mb"] for r in results]),
                 "examples_per_s": bench_input.summary([r["examples_per_s"] for r in results])})
  return rows


def markdown(speed_rows: list[dict], memory_rows: list[dict], counts: list[int]) -> str:
  lines = ["| setting | seed CNN ex/s | seed LSTM ex/s | 8-LSTM sweep ex/s (/ one LSTM) |",
           "|---|---|---|---|"]
  by = {(r["setting"], r["workload"]): r for r in speed_rows}
  cell = lambda r: f"{r['examples_per_s']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f})"
  for label in dict.fromkeys(r["setting"] for r in speed_rows):
    sweep, lone = by[label, "lstm-sweep8"], by[label, "lstm"]
    lines.append(f"| {label} | {cell(by[label, 'cnn'])} | {cell(lone)} | {cell(sweep)} "
                 f"({sweep['examples_per_s'] / lone['examples_per_s']:.2f}x) |")
  small, large = min(counts), max(counts)
  lines += ["", f"| setting | peak RSS, {small:,} PNGs (MB) | peak RSS, {large:,} PNGs (MB) | "
            f"growth (MB) | ex/s, {large:,} PNGs |", "|---|---|---|---|---|"]
  mem = {(r["setting"], r["pngs"]): r for r in memory_rows}
  for label in dict.fromkeys(r["setting"] for r in memory_rows):
    a, b = mem[label, small], mem[label, large]
    rng = lambda s: f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})"
    lines.append(f"| {label} | {rng(a['peak_rss_mb'])} | {rng(b['peak_rss_mb'])} | "
                 f"{b['peak_rss_mb']['median'] - a['peak_rss_mb']['median']:+,.0f} | "
                 f"{b['examples_per_s']['median']:,.0f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="few windows, small folders")
  parser.add_argument("--trims", default="64,256,1024", help="trim thresholds in MiB")
  parser.add_argument("--pngs", default="4000,20000", help="the two PNG folder sizes")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--windows", type=int, default=7)
  parser.add_argument("--window-s", type=float, default=2.0)
  parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
  parser.add_argument("--out", help="the measurements as JSON")
  parser.add_argument("--skip", choices=("speed", "memory"), help="leave one part out")
  args = parser.parse_args()
  counts = [int(n) for n in args.pngs.split(",")]
  if args.quick:
    args.windows, args.window_s, args.repeats, counts = 3, 0.5, 1, [n // 4 for n in counts]
  modes = settings([int(mb) for mb in args.trims.split(",")])
  meta = {"machine": benchmark.machine(), "threads": args.threads, "windows": args.windows,
          "window_s": args.window_s, "repeats": args.repeats}
  speed_rows = [] if args.skip == "speed" else speed(modes, args)
  if args.out:  # Kept if the memory part fails.
    pathlib.Path(args.out).write_text(json.dumps({"meta": meta, "speed": speed_rows}, indent=1))
  with tempfile.TemporaryDirectory() as tmp:
    memory_rows = [] if args.skip == "memory" else memory(modes, counts, args.repeats,
                                                            pathlib.Path(tmp))
  if speed_rows and memory_rows:
    print(markdown(speed_rows, memory_rows, counts))
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(
        {"meta": meta, "speed": speed_rows, "memory": memory_rows}, indent=1))
  if not (speed_rows and memory_rows):
    print(json.dumps({"speed": speed_rows, "memory": memory_rows}, indent=1))


if __name__ == "__main__":
  main()
