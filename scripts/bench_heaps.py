"""A step's temporaries in one heap or split into kept heaps, under both host allocators.

XLA:CPU allocates a step's temporaries per call; glibc's malloc keeps a block for
reuse only below 32 MiB, so one larger heap is mapped and faulted in again on every
step unless the process raises the threshold (the ``jaxdl`` command does,
jaxdl/host.py). jaxdl now compiles its steps with their temporaries split into
heaps of at most 30 MiB (jaxdl/training/heaps.py). This script measures, side by
side in one run, jaxdl's step with ``JAXDL_XLA_HEAPS=one`` (as before) and
``split`` (jaxdl's default) under glibc's defaults, and the tuned allocator (where
jaxdl keeps one heap):
the seed CNN, the seed LSTM with the kernel ``auto`` picks and with XLA's
recurrence (``jaxdl-xla``), and the vectorized sweep of 8 seed LSTMs. Every
setting's worker is interleaved with the others' (scripts/benchmark.py's windows).

With split heaps the speed varies from process to process: glibc keeps a heap in
the malloc arena of the XLA thread that allocated it, and a step's heaps do not
always fit the arenas they land in (measured: 3,461-5,017 examples/s over four
processes, where one heap gave 2,553-2,876). So ``--processes K`` repeats the
whole measurement with fresh workers K times; the table gives the median of the
processes' medians and their range.

  python scripts/bench_heaps.py [--quick] [--out FILE.json] [--runs jaxdl:lstm,jaxdl:cnn]
"""

import argparse
import json
import os
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_allocator  # noqa: E402
import benchmark  # noqa: E402

HEAPS = "JAXDL_XLA_HEAPS"
# Under the tuned allocator jaxdl keeps one heap (it is kept already; jaxdl/training/heaps.py).
SETTINGS = {
    "glibc defaults, one heap": ("defaults", {HEAPS: "one"}),
    "glibc defaults, split heaps": ("defaults", {HEAPS: "split"}),
    "tuned allocator": ("same", {}),
}
RUNS = (("jaxdl", "lstm"), ("jaxdl-xla", "lstm"), ("jaxdl", "lstm-sweep8"), ("jaxdl", "cnn"))


def across_processes(repeats: list[list[dict]]) -> list[dict]:
  """One row per (setting, impl, workload): the median of each process's median examples/s,
  with the range of those medians (``min``, ``max``) and every process's row."""
  rows = []
  for first in repeats[0]:
    key = (first["setting"], first["impl"], first["workload"])
    same = [r for rep in repeats for r in rep if (r["setting"], r["impl"], r["workload"]) == key]
    medians = [r["examples_per_s"] for r in same]
    rows.append({**{k: first[k] for k in ("setting", "impl", "workload", "kernels")},
                 "examples_per_s": statistics.median(medians), "min": min(medians),
                 "max": max(medians), "processes": same})
  return rows


def markdown(rows: list[dict], runs) -> str:
  columns = [f"{impl} {workload}" for impl, workload in runs]
  lines = [f"| setting | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
  by = {(r["setting"], r["impl"], r["workload"]): r for r in rows}
  for label in SETTINGS:
    cells = []
    for impl, workload in runs:
      r = by.get((label, impl, workload))
      cells.append(f"{r['examples_per_s']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f})" if r else "")
    lines.append(f"| {label} | {' | '.join(cells)} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="3 windows of 0.5 s")
  parser.add_argument("--windows", type=int, default=7)
  parser.add_argument("--window-s", type=float, default=2.0)
  parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
  parser.add_argument("--out", help="the measurements as JSON")
  parser.add_argument("--processes", type=int, default=1,
                      help="repeat with fresh workers; the table gives the medians' median")
  parser.add_argument("--runs", default=",".join(f"{i}:{w}" for i, w in RUNS),
                      help="IMPL:WORKLOAD pairs, comma-separated")
  args = parser.parse_args()
  runs = [tuple(pair.split(":")) for pair in args.runs.split(",") if pair]
  if args.quick:
    args.windows, args.window_s = 3, 0.5
  meta = {"machine": benchmark.machine(), "threads": args.threads, "windows": args.windows,
          "window_s": args.window_s, "processes": args.processes}
  rows = across_processes([bench_allocator.speed(SETTINGS, args, runs)
                           for _ in range(args.processes)])
  print(markdown(rows, runs))
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps({"meta": meta, "speed": rows}, indent=1))


if __name__ == "__main__":
  main()
