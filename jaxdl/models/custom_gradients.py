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

The train step also says over which mesh its batch is split (``batch_mesh``: the
mesh's ``data`` axis, when it has more than one device), so that kernels that
work sequence by sequence run on each device's own rows rather than on the
whole batch gathered on every device (XLA cannot split a custom call itself).
"""

import contextlib
import contextvars
from collections.abc import Iterator

from jax.sharding import Mesh

_ENABLED = contextvars.ContextVar("jaxdl_custom_gradients", default=False)
_BATCH_MESH = contextvars.ContextVar("jaxdl_batch_mesh", default=None)


@contextlib.contextmanager
def custom_gradients(batch_mesh: Mesh | None = None) -> Iterator[None]:
  """Models traced inside the block use the custom-VJP kernels (reverse mode only).

  Args:
    batch_mesh: the mesh whose ``data`` axis splits the batch of the arrays the
      model sees (None: one device, or a batch that is not split).
  """
  tokens = _ENABLED.set(True), _BATCH_MESH.set(batch_mesh)
  try:
    yield
  finally:
    _BATCH_MESH.reset(tokens[1])
    _ENABLED.reset(tokens[0])


def enabled() -> bool:
  return _ENABLED.get()


def batch_mesh() -> Mesh | None:
  """The mesh the traced model's batch is split over (see ``custom_gradients``), or None."""
  return _BATCH_MESH.get()
