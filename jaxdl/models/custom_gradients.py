"""Where jaxdl's hand-written backward passes run: only inside its own gradient.

The custom-VJP kernels (``lstm_scan``'s backward pass through the whole
recurrence, ``matmul.project``'s chunked weight gradient) are faster, and they
are reverse-mode only: JAX cannot push forward-mode derivatives (``jax.jvp``,
``jax.jacfwd``, forward-over-reverse Hessian products) through a
``custom_vjp``. So they are switched on only while jaxdl's train step traces
its reverse-mode gradient (``enabled()`` is read when a model is traced, not
when it runs); everywhere else, a researcher's ``jax.jvp``, ``jax.jacfwd`` or
``jax.hessian`` of a model, ``jaxdl explain``, the same math runs as plain JAX
that every transformation differentiates. The choice is made when a function
is traced, and JAX caches traced functions: a function jitted outside the
block keeps the plain path when called inside it (the train step traces a
fresh gradient each time it is built).
"""

import contextlib
import contextvars
from collections.abc import Iterator

_ENABLED = contextvars.ContextVar("jaxdl_custom_gradients", default=False)


@contextlib.contextmanager
def custom_gradients() -> Iterator[None]:
  """Models traced inside the block use the custom-VJP kernels (reverse mode only)."""
  token = _ENABLED.set(True)
  try:
    yield
  finally:
    _ENABLED.reset(token)


def enabled() -> bool:
  return _ENABLED.get()
