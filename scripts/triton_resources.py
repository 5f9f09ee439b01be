"""What each launch of the Pallas LSTM kernels needs on a GPU, found without one.

JAX lowers the recurrence's gradient for CUDA (no GPU needed) and Pallas hands
each kernel to XLA as Triton IR; this script captures that IR and compiles it
with the ``triton`` package for a chosen compute capability (Hopper, sm_90, by
default), then reads from the binary what the GPU would have to give each
program: registers per thread, bytes spilled to local memory (``ptxas -v``) and
shared memory. A launch whose
shared memory is above the device's limit per block fails on the GPU; one that
spills is slow. The GPU run (scripts/gpu_check.sh) then times only the launches
that fit.

Needs ``pip install triton`` (its wheel carries ptxas; the IR it
compiles is the one jaxlib's own Triton compiles on a GPU, so the numbers are
close to, not exactly, the GPU's). Reads the IR through a private JAX function
(``jax._src.pallas.triton.lowering.lower_jaxpr_to_triton_module``): a
development tool, not part of jaxdl.

  python scripts/triton_resources.py [--launches all] [--hidden 64] [--capability 90]
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_lstm_kernels import launch_name, launches  # noqa: E402

from jaxdl.models import lstm_pallas  # noqa: E402

# Shared memory one block may use (KB) by compute capability: the opt-in maximum.
SHARED_LIMIT_KB = {80: 163, 86: 99, 89: 99, 90: 227, 100: 227}


def triton_ir(launch: lstm_pallas.Launch, steps: int, batch: int, hidden: int) -> list[str]:
  """The forward and backward kernels' Triton IR, as text, for the gradient at this shape."""
  from jax._src.pallas.triton import lowering

  captured, original = [], lowering.lower_jaxpr_to_triton_module

  def capture(*args, **kwargs):
    result = original(*args, **kwargs)
    captured.append(result.module.operation.get_asm(enable_debug_info=False))
    return result

  valid = jnp.ones((steps, batch), bool)
  loss = lambda k, p, c0, h0: jnp.sum(
      lstm_pallas.lstm_recurrence(k, p, valid, c0, h0, launch)[2])
  args = (jnp.zeros((hidden, 4 * hidden)), jnp.zeros((steps, batch, 4 * hidden)),
          jnp.zeros((batch, hidden)), jnp.zeros((batch, hidden)))
  lowering.lower_jaxpr_to_triton_module = capture
  try:
    jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3))).trace(*args).lower(
        lowering_platforms=("cuda",))
  finally:
    lowering.lower_jaxpr_to_triton_module = original
  return captured


def resources(ir: str, launch: lstm_pallas.Launch, capability: int) -> dict:
  """Registers, spilled bytes and shared memory of one kernel compiled by ``triton``
  (its PTX assembled again by ``ptxas -v``, which reports the spills)."""
  import triton
  from triton.backends.compiler import GPUTarget

  ptxas = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
  with tempfile.TemporaryDirectory() as folder:
    source = os.path.join(folder, "kernel.ttir")
    pathlib.Path(source).write_text(ir)
    options = {"num_warps": launch.num_warps, "num_stages": launch.num_stages or 3}
    kernel = triton.compile(source, target=GPUTarget("cuda", capability, 32), options=options)
    ptx = os.path.join(folder, "kernel.ptx")
    pathlib.Path(ptx).write_text(kernel.asm["ptx"])
    arch = f"sm_{capability}a" if capability >= 90 else f"sm_{capability}"
    report = subprocess.run([str(ptxas), "-v", "--gpu-name", arch, ptx, "-o",
                             os.path.join(folder, "kernel.cubin")],
                            capture_output=True, text=True, check=True).stderr
  registers = int(re.search(r"Used (\d+) registers", report).group(1))
  spilled = int(re.search(r"(\d+) bytes spill stores", report).group(1))
  return {"registers": registers, "spilled_bytes": spilled,
          "shared_kb": kernel.metadata.shared / 1024}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--launches", default="all")
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--capability", type=int, default=90, help="e.g. 90 (H100), 80 (A100)")
  args = parser.parse_args()
  limit = SHARED_LIMIT_KB.get(args.capability)
  print(f"sm_{args.capability}, T={args.steps} B={args.batch} H={args.hidden}; "
        f"shared memory limit per block {limit} KB")
  print("| launch | kernel | registers | spilled bytes | shared KB | fits |\n"
        "|---|---|---|---|---|---|")
  for launch in launches(args.launches):
    for name, ir in zip(("forward", "backward"),
                        triton_ir(launch, args.steps, args.batch, args.hidden)):
      try:
        r = resources(ir, launch, args.capability)
      except Exception as e:  # noqa: BLE001 (reported in the table)
        print(f"| {launch_name(launch)} | {name} | failed: {str(e).splitlines()[0][:120]} |"
              " | | no |")
        continue
      fits = (limit is None or r["shared_kb"] <= limit) and r["spilled_bytes"] == 0
      print(f"| {launch_name(launch)} | {name} | {r['registers']} | {r['spilled_bytes']} | "
            f"{r['shared_kb']:.1f} | {'yes' if fits else 'no'} |")


if __name__ == "__main__":
  main()
