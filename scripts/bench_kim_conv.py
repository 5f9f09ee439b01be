"""Kim's CNN convolution: XLA's 1-D convolution against ``WindowConv``'s one matmul.

For each sentence set's padded length, the gradient (with respect to the
kernels and the word vectors) of one batch of 50 through the three filter
widths, ReLU and max-over-time pooling, computed both ways in one process,
alternating, after a check that both give the same gradient. Medians with min
and max over ``--repeats`` timings; the ratio is what the model's docstring
quotes.

  python scripts/bench_kim_conv.py [--repeats 7] [--lengths 40,62,131]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.models.kim import WindowConv

WIDTHS, EMBED, FEATURES, BATCH = (3, 4, 5), 300, 100, 50


def _lax_conv(x, kernel, width):
  return jax.lax.conv_general_dilated(x, kernel, (1,), ((width - 1, width - 1),),
                                      dimension_numbers=("NWC", "WIO", "NWC"))


def _window_conv(x, kernel, width):
  layer = WindowConv(width, FEATURES, lambda *_: kernel)
  params = {"params": {"kernel": kernel, "bias": jnp.zeros(FEATURES)}}
  return layer.apply(params, x)


def _gradient(conv):
  def loss(kernels, x):
    return sum(jnp.sum(jax.nn.relu(conv(x, kernels[i], w)).max(axis=1) ** 2)
               for i, w in enumerate(WIDTHS))
  return jax.jit(jax.grad(loss, argnums=(0, 1)))


def measure(length: int, repeats: int) -> dict[str, list[float]]:
  key = jax.random.PRNGKey(length)
  x = jax.random.normal(key, (BATCH, length, EMBED))
  kernels = [jax.random.normal(jax.random.fold_in(key, w), (w, EMBED, FEATURES)) * 0.01
             for w in WIDTHS]
  fns = {"xla_conv": _gradient(_lax_conv), "window_matmul": _gradient(_window_conv)}
  want = fns["xla_conv"](kernels, x)
  for fn in fns.values():
    got = fn(kernels, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(kernels, x))
      times[name].append(time.perf_counter() - start)
  return times


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--lengths", default="40,62,131", help="padded lengths (TREC, MR, Subj)")
  args = parser.parse_args()
  print(f"{jax.devices()[0].platform}, batch {BATCH}, widths {WIDTHS}, {EMBED}-d, "
        f"{FEATURES} maps; ms per gradient: median [min, max]")
  for length in (int(v) for v in args.lengths.split(",")):
    times = measure(length, args.repeats)
    row = "  ".join(f"{name} {1e3 * np.median(t):.1f} [{1e3 * min(t):.1f}, {1e3 * max(t):.1f}]"
                    for name, t in times.items())
    ratio = np.median(times["xla_conv"]) / np.median(times["window_matmul"])
    print(f"length {length}: {row}  ratio {ratio:.2f}x")


if __name__ == "__main__":
  main()
