"""The LSTM recurrence alone, forward and backward, under each implementation jaxdl has for it.

Measures one gradient of the recurrence at the seed LSTM's shape (T=100
steps, batch 128, H=64; ``--members 8`` vmaps it as a vectorized sweep does):
``autodiff`` (JAX's gradient of the ``lax.scan``, what ``lstm_vjp=False``
runs), ``scan`` (``lstm_scan``: the hand-written backward pass on
``lax.scan``, ``model.lstm_kernel=xla``) and, on a GPU, ``pallas`` under each
launch setting in ``--launches`` (``lstm_pallas.Launch``: sequences per program,
warps, weights kept or reloaded, pipelining stages; by default a grid of 36; a
launch that fails to compile or run, e.g. for want of shared memory, is
reported as failed). scripts/triton_resources.py shows, without a GPU, what
each launch needs in registers and shared memory. It picks the Pallas launch the models use and
shows what the kernels gain over the scan; the whole model against PyTorch is
scripts/benchmark.py's job (``--impls jaxdl,jaxdl-xla,torch-eager``).

Every implementation's gradient is checked against ``scan``'s first (max
relative difference, at the backend's default matmul precision: TF32 on recent
GPUs). Timing rounds are interleaved over the implementations; the result is
the median ms per gradient with min and max over ``--rounds``.

  python scripts/bench_lstm_kernels.py [--members 8] [--rounds 7] [--out lstm_kernels.jsonl]
"""

import argparse
import functools
import itertools
import json
import statistics
import time

import jax
import jax.numpy as jnp

from jaxdl.models import lstm_pallas
from jaxdl.models.lstm_scan import autodiff_lstm_scan, lstm_scan


TOLERANCE = 1e-2  # Beyond TF32 rounding over 100 steps: a wrong gradient, flagged in the table.


def launches(spec: str) -> list[lstm_pallas.Launch]:
  """``all`` (a grid of 36) or comma-separated ``block_batch:num_warps:reload[:stages]``
  (``16:4:0``, ``32:8:1:1``; no stages: Pallas's default)."""
  if spec == "all":
    return [lstm_pallas.Launch(b, w, r, s) for b, w, r, s in
            itertools.product((16, 32, 64), (2, 4, 8), (False, True), (None, 1))]
  found = []
  for item in spec.split(","):
    b, w, r, *s = item.split(":")
    found.append(lstm_pallas.Launch(int(b), int(w), bool(int(r)), int(s[0]) if s else None))
  return found


def launch_name(launch: lstm_pallas.Launch) -> str:
  return (f"pallas b{launch.block_batch} w{launch.num_warps}"
          + (f" s{launch.num_stages}" if launch.num_stages else "")
          + (" reload" if launch.reload_weights else ""))


def implementations(pallas_launches: list[lstm_pallas.Launch]) -> dict:
  found = {"autodiff": autodiff_lstm_scan, "scan": lstm_scan}
  for launch in pallas_launches:
    found[launch_name(launch)] = functools.partial(lstm_pallas.lstm_recurrence, launch=launch)
  return found


def gradient_fn(recurrence, members: int):
  def loss(kernel, projected, valid, c0, h0, weights):
    c_last, h_last, outputs = recurrence(kernel, projected, valid, c0, h0)
    return jnp.sum(outputs * weights) + jnp.sum(c_last) + jnp.sum(h_last)
  grad = jax.grad(loss, argnums=(0, 1, 3, 4))
  return jax.jit(jax.vmap(grad) if members > 1 else grad)


def inputs(steps: int, batch: int, hidden: int, members: int) -> tuple:
  keys = jax.random.split(jax.random.PRNGKey(0), 6)
  lead = (members,) if members > 1 else ()
  lengths = jax.random.randint(keys[0], lead + (batch,), steps // 2, steps + 1)
  valid = jnp.arange(steps)[:, None] < lengths[..., None, :]
  return (0.3 * jax.random.normal(keys[1], lead + (hidden, 4 * hidden)),
          jax.random.normal(keys[2], lead + (steps, batch, 4 * hidden)), valid,
          jnp.zeros(lead + (batch, hidden)), jnp.zeros(lead + (batch, hidden)),
          jax.random.normal(keys[3], lead + (steps, batch, hidden)))


def max_relative_difference(got, want) -> float:
  return max(float(jnp.max(jnp.abs(g - w)) / (jnp.max(jnp.abs(w)) + 1e-30))
             for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)))


def calibrate(fn, args, seconds: float) -> int:
  """Calls per round so that one round takes about ``seconds``."""
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--members", type=int, default=1)
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--round-s", type=float, default=0.2)
  parser.add_argument("--launches", default="all",
                      help="Pallas launches (GPU only): 'all' or e.g. '16:4:0,32:8:1'")
  parser.add_argument("--out", help="JSON lines: one per implementation")
  args = parser.parse_args()
  on_gpu = jax.default_backend() == "gpu"
  data = inputs(args.steps, args.batch, args.hidden, args.members)
  fns = {name: gradient_fn(r, args.members)
         for name, r in implementations(launches(args.launches) if on_gpu else []).items()}
  reference = jax.block_until_ready(fns["scan"](*data))
  rows, failed = {}, {}
  for name, fn in list(fns.items()):
    start = time.perf_counter()
    try:
      got = jax.block_until_ready(fn(*data))  # Compiles.
    except Exception as e:  # noqa: BLE001 (a launch that does not fit the GPU: reported)
      failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
      del fns[name]
      continue
    rows[name] = {"impl": name, "compile_s": time.perf_counter() - start,
                  "max_rel_diff_vs_scan": max_relative_difference(got, reference),
                  "calls": calibrate(fn, data, args.round_s), "ms": []}
  for _ in range(args.rounds):
    for name, fn in fns.items():
      calls = rows[name]["calls"]
      start = time.perf_counter()
      for _ in range(calls):
        out = fn(*data)
      jax.block_until_ready(out)
      rows[name]["ms"].append(1e3 * (time.perf_counter() - start) / calls)
  scan_ms = statistics.median(rows["scan"]["ms"])
  print(f"device: {jax.devices()[0].device_kind}; T={args.steps} B={args.batch} "
        f"H={args.hidden} members={args.members}; median ms per gradient (min-max)")
  print("| implementation | ms | vs scan | max rel. diff vs scan | compile s |\n"
        "|---|---|---|---|---|")
  for row in sorted(rows.values(), key=lambda r: statistics.median(r["ms"])):
    median = statistics.median(row["ms"])
    row.update(median_ms=median, min_ms=min(row["ms"]), max_ms=max(row["ms"]),
               device=jax.devices()[0].device_kind,
               shape=dict(steps=args.steps, batch=args.batch, hidden=args.hidden,
                          members=args.members))
    print(f"| {row['impl']} | {median:.3f} ({row['min_ms']:.3f}-{row['max_ms']:.3f}) | "
          f"{scan_ms / median:.2f}x | {row['max_rel_diff_vs_scan']:.1e}"
          f"{'' if row['max_rel_diff_vs_scan'] < TOLERANCE else ' WRONG'} | "
          f"{row['compile_s']:.1f} |")
  for name, why in failed.items():
    print(f"| {name} | failed: {why} | | | |")
  if args.out:
    with open(args.out, "w") as f:
      for row in rows.values():
        f.write(json.dumps(row) + "\n")
      for name, why in failed.items():
        f.write(json.dumps({"impl": name, "failed": why}) + "\n")


if __name__ == "__main__":
  main()
