"""Attributions: vanilla-gradient saliency and integrated gradients (Sundararajan et al. 2017).

Both explain one scalar output f(x), here the logit of a chosen class, of a
trained model. Integrated gradients average the gradient along the straight
path from a baseline x0 to x, batched over the path with ``jax.vmap``:

  IG_i(x) = (x_i - x0_i) * (1/m) sum_k df/dx_i (x0 + a_k (x - x0)),  a_k = (k + 1/2) / m

and satisfy completeness, sum_i IG_i(x) = f(x) - f(x0), up to the error of the
m-point midpoint rule, which is reported.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

ScalarFn = Callable[[jax.Array], jax.Array]  # One example -> a scalar.


def saliency(f: ScalarFn, x: jax.Array) -> jax.Array:
  """df/dx, the shape of ``x``."""
  return jax.grad(f)(x)


def integrated_gradients(f: ScalarFn, x: jax.Array, baseline: jax.Array,
                         steps: int = 64) -> tuple[jax.Array, jax.Array]:
  """Integrated gradients of ``f`` at ``x`` from ``baseline``.

  Args:
    f: maps one example (the shape of ``x``) to a scalar.
    x, baseline: arrays of the same shape.
    steps: points m of the midpoint rule along the path.

  Returns:
    The attributions (the shape of ``x``) and the completeness error
    ``sum(attributions) - (f(x) - f(baseline))``.
  """
  alphas = (jnp.arange(steps, dtype=x.dtype) + 0.5) / steps
  path = baseline[None] + alphas.reshape((-1,) + (1,) * x.ndim) * (x - baseline)[None]
  grads = jax.vmap(jax.grad(f))(path)
  attributions = (x - baseline) * grads.mean(axis=0)
  error = attributions.sum() - (f(x) - f(baseline))
  return attributions, error
