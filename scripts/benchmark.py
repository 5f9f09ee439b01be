"""jaxdl against Keras and PyTorch on the seed's two models, measured side by side.

Workloads (scripts/benchmark_impls/workloads.py): the seed's CNN (28x28x1, 10
classes) and the seed's LSTM text classifier (vocab 10,000, length 100, LSTM 64
with sequences -> LSTM 64 -> Dense 10), batch 128, float32, Adam 1e-3, random
data; and the seed LSTM as a vectorized sweep of 8 members (jaxdl only).

Implementations: ``jaxdl`` (the step ``jaxdl train`` runs, built from the
experiments through jaxdl's API; on CPU its LSTM layers run jaxdl's C++ kernel,
the default ``model.lstm_kernel=auto``), ``jaxdl-tuned`` (the same with jaxdl's
opt-in ``jaxdl.tune_xla_flags()``: XLA's own convolution kernels), ``jaxdl-xla``
(the LSTMs with ``model.lstm_kernel=xla``: the recurrence on ``lax.scan``, without
jaxdl's native (CPU) or Pallas (GPU) kernels; run when named in ``--impls``), ``keras-fit``
(the seed's own code: compile + model.fit), ``keras-tfstep`` (a custom tf.function step),
``keras-jax`` (the seed's code on Keras 3's JAX backend: cuDNN's LSTM on a GPU),
``jax-cudnn`` (the seed LSTM in JAX and optax through ``jax.experimental.rnn.lstm``,
cuDNN's; GPU only), ``torch-eager`` and ``torch-compile``. Peers come from
``pip install -e '.[bench]'``; a missing one, or one this machine cannot run, is
skipped with a message.

Method: every implementation runs in its own worker process, pinned to the same
``--threads`` cores with its framework's intra-op threads set to that number.
Workers start and warm up (compile, trace) one at a time; warm-up is reported
as ``compile_s`` and excluded. Each window then times a number of steps
calibrated to ``--window-s`` seconds, and the windows are interleaved (A B C,
B C A, ...) so a noisy machine hits every implementation alike. Throughput is
the median examples/s over ``--windows`` windows, with min and max. FLOPs per
training example (3x the forward pass's, from XLA's cost analysis) and the
float32 matmul peak are measured in the same run.

Host settings are the same for every framework. ``--allocator`` picks them:
``defaults`` leaves every worker's C allocator as its framework leaves it (jaxdl
included: importing it changes nothing), ``same`` gives every worker, before its
framework loads, the glibc settings the ``jaxdl`` command uses (jaxdl/host.py),
and ``both`` (the default) measures the two modes one after the other.

  python scripts/benchmark.py [--quick] [--allocator both] [--out results.jsonl]
      [--markdown table.md]
"""

import argparse
import contextlib
import datetime
import importlib.util
import json
import math
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchmark_impls.workloads import WORKLOADS, Unavailable  # noqa: E402

IMPLS = ("jaxdl", "jaxdl-tuned", "jaxdl-xla", "keras-fit", "keras-tfstep", "keras-jax",
         "jax-cudnn", "torch-eager", "torch-compile")
OURS = ("jaxdl", "jaxdl-tuned", "jaxdl-xla")
# jaxdl-xla is the LSTM without jaxdl's kernels: what they gain, so named in --impls to run.
DEFAULT_IMPLS = tuple(i for i in IMPLS if i != "jaxdl-xla")
# Workloads an implementation is limited to.
ONLY = {"jaxdl-xla": ("lstm", "lstm-sweep8"), "jax-cudnn": ("lstm",)}
# What each implementation needs installed (pip install -e '.[bench]').
REQUIRES = {"jaxdl": ("jax",), "jaxdl-tuned": ("jax",), "jaxdl-xla": ("jax",),
            "keras-fit": ("tensorflow", "keras"),
            "keras-tfstep": ("tensorflow", "keras"), "keras-jax": ("keras", "jax"),
            "jax-cudnn": ("jax", "optax"), "torch-eager": ("torch",),
            "torch-compile": ("torch",)}
# Workloads an implementation runs; the vectorized sweep is jaxdl's alone.
SWEEP_IMPLS = OURS
# Workloads measured in one interleaved group (the sweep is compared with one member).
GROUPS = (("cnn",), ("lstm", "lstm-sweep8"))
PROTOCOL = "@@bench "  # Prefix of the worker's protocol lines (frameworks print too).


# ----------------------------------------------------------------------------- worker side


def _limit_threads(threads: int) -> None:
  """Pins this process to ``threads`` cores and sets every framework's thread count to it.

  Runs before any framework is imported: XLA and PyTorch size their pools from
  the cores this process may use, TensorFlow from its environment.
  """
  cores = sorted(os.sched_getaffinity(0))[:threads]
  os.sched_setaffinity(0, cores)
  for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "TF_NUM_INTRAOP_THREADS"):
    os.environ[var] = str(threads)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # On a GPU, JAX would otherwise take 75% of its memory per process; workers share the card.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def _build(impl: str, workload_name: str, threads: int):
  workload = WORKLOADS[workload_name]
  if impl in OURS:
    from benchmark_impls import jaxdl_impl
    return jaxdl_impl.build(workload, lstm_kernel="xla" if impl == "jaxdl-xla" else None)
  if impl == "keras-jax":
    from benchmark_impls import keras_jax_impl
    return keras_jax_impl.build(workload)
  if impl == "jax-cudnn":
    from benchmark_impls import jax_cudnn_impl
    return jax_cudnn_impl.build(workload)
  if impl.startswith("keras"):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    from benchmark_impls import keras_impl
    return keras_impl.build(workload, fit=impl == "keras-fit")
  import torch
  torch.set_num_threads(threads)
  from benchmark_impls import torch_impl
  return torch_impl.build(workload, compiled=impl == "torch-compile")


def _say(**message) -> None:
  sys.stdout.write(PROTOCOL + json.dumps(message) + "\n")
  sys.stdout.flush()


def worker(impl: str, workload_name: str, threads: int, allocator: str) -> None:
  """Builds one runner, warms it up, then runs the parent's commands from stdin."""
  if allocator == "same":  # Before any framework starts its threads; every framework alike.
    from jaxdl import host
    host.tune_allocator()
  if impl == "jaxdl-tuned":  # jaxdl's own compiler flags: before JAX starts, in its worker only.
    from jaxdl import host
    host.tune_xla_flags()
  _limit_threads(threads)
  if impl == "peak":
    from benchmark_impls import jaxdl_impl
    _say(event="peak", **jaxdl_impl.matmul_peak())
    return
  start = time.perf_counter()
  try:
    runner = _build(impl, workload_name, threads)
  except Unavailable as unavailable:
    _say(event="unavailable", why=str(unavailable))
    return
  setup_s = time.perf_counter() - start
  start = time.perf_counter()
  runner.warm_up()
  _say(event="ready", setup_s=setup_s, compile_s=time.perf_counter() - start,
       examples_per_step=runner.examples_per_step, info=runner.info,
       cores=sorted(os.sched_getaffinity(0)))
  for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    if command == "quit":
      return
    steps = int(arg)
    if command == "prepare":
      runner.prepare(steps)
      _say(event="prepared")
    elif command == "run":
      start = time.perf_counter()
      runner.run(steps)
      _say(event="ran", seconds=time.perf_counter() - start)


# ----------------------------------------------------------------------------- parent side


class Worker:
  """A worker process and its line protocol."""

  def __init__(self, impl: str, workload: str, threads: int, allocator: str,
               env: dict | None = None):
    """``env``: extra environment variables (scripts/bench_allocator.py's trim threshold)."""
    self.impl, self.workload = impl, workload
    # The mode decides, not the environment.
    env = {**os.environ, "JAXDL_HOST_ALLOCATOR": "", **(env or {})}
    self.proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", impl, workload, "--threads", str(threads),
         "--allocator", allocator],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env)

  def read(self) -> dict:
    for line in self.proc.stdout:
      if line.startswith(PROTOCOL):
        return json.loads(line[len(PROTOCOL):])
    raise RuntimeError(f"{self.impl} on {self.workload}: the worker exited with status "
                       f"{self.proc.wait()} (its output is above)")

  def ask(self, command: str) -> dict:
    self.proc.stdin.write(command + "\n")
    self.proc.stdin.flush()
    return self.read()

  def close(self) -> None:
    if self.proc.poll() is None:
      try:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=30)
      except (BrokenPipeError, subprocess.TimeoutExpired):
        self.proc.kill()
    self.proc.wait()
    for pipe in (self.proc.stdin, self.proc.stdout):
      with contextlib.suppress(BrokenPipeError):
        pipe.close()


def available(impl: str) -> bool:
  missing = [m for m in REQUIRES[impl] if importlib.util.find_spec(m) is None]
  if missing:
    print(f"skipping {impl}: {', '.join(missing)} not installed (pip install -e '.[bench]')",
          file=sys.stderr)
  return not missing


def measure_peak(threads: int, allocator: str) -> dict:
  worker_ = Worker("peak", "cnn", threads, allocator)
  try:
    return worker_.read()
  finally:
    worker_.close()


def measure_group(pairs: list[tuple[str, str]], args, allocator: str) -> list[dict]:
  """Warms up each (impl, workload) alone, then times interleaved windows of all."""
  return measure_interleaved([(impl, workload, allocator, {}) for impl, workload in pairs], args)


def measure_interleaved(specs: list[tuple[str, str, str, dict]], args) -> list[dict]:
  """Warms up each ``(impl, workload, allocator, env)`` worker alone, then times
  interleaved windows of all of them."""
  workers, ready, kept = [], [], []
  try:
    for spec in specs:
      impl, workload, allocator, env = spec
      print(f"warming up {impl} on {workload} ({allocator} allocator{', ' if env else ''}"
            f"{' '.join(f'{k}={v}' for k, v in env.items())}) ...", file=sys.stderr, flush=True)
      w = Worker(impl, workload, args.threads, allocator, env)
      message = w.read()
      if message["event"] == "unavailable":
        print(f"skipping {impl} on {workload}: {message['why']}", file=sys.stderr, flush=True)
        w.close()
        continue
      workers.append(w)
      ready.append(message)
      kept.append(spec)
    if not workers:
      return []
    steps = []
    for w in workers:  # Calibrate each window to about --window-s seconds.
      w.ask("prepare 2")
      # Discarded: the steps right after warm-up may still compile (jaxdl's first merge of
      # metric sums), which made 1-s windows on a GPU about 30 ms long.
      w.ask("run 2")
      probe = w.ask("run 2")["seconds"] / 2
      steps.append(max(1, math.ceil(args.window_s / max(probe, 1e-6))))
    for w, k in zip(workers, steps):
      w.ask(f"prepare {k}")
    rates = [[] for _ in workers]
    for window in range(args.windows):
      print(f"window {window + 1}/{args.windows}", file=sys.stderr, flush=True)
      order = list(range(len(workers)))
      order = order[window % len(order):] + order[:window % len(order)]
      for i in order:
        seconds = workers[i].ask(f"run {steps[i]}")["seconds"]
        rates[i].append(steps[i] * ready[i]["examples_per_step"] / seconds)
  finally:
    for w in workers:
      w.close()
  return [{"impl": w.impl, "workload": w.workload, "allocator": spec[2], "env": spec[3],
           "examples_per_s": statistics.median(r), "min": min(r), "max": max(r),
           "windows": r, "steps_per_window": k, "compile_s": rd["compile_s"],
           "setup_s": rd["setup_s"], "examples_per_step": rd["examples_per_step"],
           "cores": rd["cores"], "info": rd["info"]}
          for w, spec, r, k, rd in zip(workers, kept, rates, steps, ready)]


def machine() -> dict:
  cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
              if line.startswith("model name")), platform.processor())
  return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
          "python": platform.python_version(),
          "date": datetime.date.today().isoformat()}


def markdown(results: list[dict], meta: dict) -> str:
  """The throughput table, jaxdl's ratio to each peer, and the sweep's ratio to one member."""
  by = {(r["impl"], r["workload"]): r for r in results}
  workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in results)]
  impls = [i for i in IMPLS if any(r["impl"] == i for r in results)]
  peak = meta["peak"]["flops_per_s"]
  lines = [f"Allocator: {meta['allocator']} (every worker alike). "
           f"Machine: {meta['machine']['cpu']}, {meta['threads']} threads of "
           f"{meta['machine']['cores']} cores, {meta['machine']['date']}; JAX device: "
           f"{meta['peak']['machine']}; float32 matmul peak "
           f"{peak / 1e9:,.0f} GFLOP/s. Median examples/s over {meta['windows']} interleaved "
           f"windows of ~{meta['window_s']:g} s (min-max); compile/warm-up excluded, in s.",
           "",
           "| implementation | " + " | ".join(workloads) + " | compile s |",
           "|---|" + "---|" * len(workloads) + "---|"]
  for impl in impls:
    cells, compiles = [], []
    for w in workloads:
      r = by.get((impl, w))
      cells.append("" if r is None else
                   f"{r['examples_per_s']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f})")
      if r is not None:
        compiles.append(f"{r['compile_s']:.1f}")
    lines.append(f"| {impl} | " + " | ".join(cells) + f" | {' / '.join(compiles)} |")
  fractions = []
  for w in workloads:
    r = by.get(("jaxdl", w))
    flops = r and r["info"].get("flops_per_example")
    fractions.append(f"{r['examples_per_s'] * flops / peak:.0%} of peak "
                     f"({flops / 1e6:.1f} MFLOP/example)" if flops else "")
  lines.append("| jaxdl, fraction of matmul peak | " + " | ".join(fractions) + " | |")
  for our in (o for o in OURS if o in impls):
    lines += ["", f"| {our} / peer (median ratio) | " + " | ".join(workloads) + " |",
              "|---|" + "---|" * len(workloads)]
    for impl in impls:
      if impl == our:
        continue
      cells = []
      for w in workloads:
        ours, theirs = by.get((our, w)), by.get((impl, w))
        cells.append(f"{ours['examples_per_s'] / theirs['examples_per_s']:.2f}x"
                     if ours and theirs else "")
      lines.append(f"| {impl} | " + " | ".join(cells) + " |")
  sweep, one = by.get(("jaxdl", "lstm-sweep8")), by.get(("jaxdl", "lstm"))
  if sweep and one:
    lines += ["", f"Vectorized sweep of 8 seed LSTMs: {sweep['examples_per_s']:,.0f} examples/s "
              f"(all members) vs {one['examples_per_s']:,.0f} for one member alone: "
              f"{sweep['examples_per_s'] / one['examples_per_s']:.2f}x."]
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true",
                      help="5 windows of 0.5 s (about a minute with warm-ups)")
  parser.add_argument("--windows", type=int, default=7)
  parser.add_argument("--window-s", type=float, default=2.0)
  parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
  parser.add_argument("--impls", default=",".join(DEFAULT_IMPLS),
                      help="comma-separated; jaxdl-xla is not in the default")
  parser.add_argument("--workloads", default=",".join(WORKLOADS))
  parser.add_argument("--out", help="JSON lines: one per implementation and workload")
  parser.add_argument("--markdown", help="also write the Markdown table here")
  parser.add_argument("--allocator", default="both", choices=("defaults", "same", "both"),
                      help="host allocator of every worker: each framework's defaults, jaxdl's "
                      "command settings for all, or both modes in turn")
  parser.add_argument("--worker", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    worker(*args.worker, args.threads, args.allocator)
    return
  if args.quick:
    args.windows, args.window_s = 5, 0.5
  impls = [i for i in args.impls.split(",") if i]
  workloads = [w for w in args.workloads.split(",") if w]
  unknown = sorted(set(impls) - set(IMPLS)) + sorted(set(workloads) - set(WORKLOADS))
  if unknown:
    parser.error(f"unknown {unknown}; implementations: {IMPLS}, workloads: {tuple(WORKLOADS)}")
  impls = [i for i in impls if available(i)]
  modes = ("defaults", "same") if args.allocator == "both" else (args.allocator,)
  results, tables = [], []
  for mode in modes:
    meta = {"machine": machine(), "threads": args.threads, "windows": args.windows,
            "window_s": args.window_s, "peak": measure_peak(args.threads, mode),
            "allocator": mode}
    found = []
    for group in GROUPS:
      pairs = [(i, w) for w in group if w in workloads for i in impls
               if (WORKLOADS[w].members == 1 or i in SWEEP_IMPLS) and w in ONLY.get(i, (w,))]
      if pairs:
        found += measure_group(pairs, args, mode)
    results += [{**r, "meta": meta} for r in found]
    tables.append(markdown(found, meta))
  table = "\n".join(tables)
  print(table)
  if args.markdown:
    pathlib.Path(args.markdown).write_text(table)
  if args.out:
    _write_jsonl(args.out, results, args.threads)


def _write_jsonl(path: str, results: list[dict], threads: int) -> None:
  """One line per implementation, workload and allocator mode, with FLOPs and peak."""
  with open(path, "w") as f:
    for r in results:
      meta = r.pop("meta")
      flops = r["info"].get("flops_per_example") or next(
          (q["info"].get("flops_per_example") for q in results
           if q["impl"] == "jaxdl" and q["workload"] == r["workload"]), None)
      r = {**r, "flops_per_example": flops, "threads": threads,
           "fraction_of_peak": (r["examples_per_s"] * flops / meta["peak"]["flops_per_s"]
                                if flops else None),
           "matmul_peak_flops_per_s": meta["peak"]["flops_per_s"], "machine": meta["machine"]}
      f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
  main()
