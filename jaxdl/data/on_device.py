"""The last input work, done on the device after the transfer: scaling pixels, shifting images.

Plans built with ``on_device=True`` (batches.py) leave uint8 pixels unscaled
and send random shifts as offsets (``shift``), so a quarter of float32's bytes
cross to the device. There each pixel is looked up in its ``Scaling.table``
(computed on the host by the same NumPy arithmetic, so the numbers are
bitwise those of host scaling; XLA's own division can differ from NumPy's by
an ulp), and the shifts are applied by padding and slicing. The result is the
batch the step would have received from host-side preparation.
"""

import weakref
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.data.arrays import Split

_IMAGE_DIMS = 3  # [height, width, channels] after the batch (and members) axes.

Finisher = Callable[[dict[str, jax.Array]], dict[str, jax.Array]]

# Compiled finishers by their first split's id, dropped with it (evaluation asks each epoch).
# By id: splits compare by value (their arrays), so they cannot be dictionary keys.
_CACHE: dict[int, dict] = {}


def finisher(splits: Sequence[Split], max_shift: int, stacked: bool) -> Finisher | None:
  """The jitted function that finishes placed batches of ``splits``, or None if nothing to do.

  There is something to do where every split stores uint8 pixels the device
  can scale (``Split.device_scaling``); float inputs are prepared on the host.

  Args:
    splits: the split each member's batches come from (one unless ``stacked``).
    max_shift: the plans' ``shift`` (0: no ``shift`` offsets in the batches).
    stacked: whether batches have a leading members axis, one split per member.
  """
  first = id(splits[0])
  if first not in _CACHE:
    _CACHE[first] = {}
    weakref.finalize(splits[0], _CACHE.pop, first, None)
  by_key = _CACHE[first]
  key = (tuple(map(id, splits[1:])), max_shift, stacked)
  if key not in by_key:  # The other splits are kept alive with the entry, so ids stay theirs.
    by_key[key] = (_compiled(splits, max_shift, stacked), tuple(splits[1:]))
  return by_key[key][0]


def _compiled(splits: Sequence[Split], max_shift: int, stacked: bool) -> Finisher | None:
  scalings = [split.device_scaling for split in splits]
  if any(s is None for s in scalings):
    # Inputs already float: shifting them here would move no fewer bytes than the host's.
    return None
  channels = splits[0].inputs.shape[-1]
  tables = np.stack([s.table(channels) for s in scalings])  # [members, 256, channels]
  return jax.jit(lambda batch: _finish(batch, tables, max_shift, stacked))


def _finish(batch: dict[str, jax.Array], tables: np.ndarray, max_shift: int,
            stacked: bool) -> dict[str, jax.Array]:
  batch = dict(batch)
  inputs = batch["inputs"]
  if stacked:
    inputs = jax.vmap(_look_up)(jnp.asarray(tables), inputs)
  else:
    inputs = _look_up(jnp.asarray(tables[0]), inputs)
  if max_shift:
    inputs = _over_leading(lambda image, offset: _shifted(image, offset, max_shift),
                           inputs.ndim - _IMAGE_DIMS)(inputs, batch.pop("shift"))
  batch["inputs"] = inputs
  return batch


def _look_up(table: jax.Array, pixels: jax.Array) -> jax.Array:
  """``<float32>[..., channels]``: ``table[pixel, channel]`` for each uint8 pixel."""
  return table[pixels.astype(jnp.int32), jnp.arange(table.shape[-1])]


def _shifted(image: jax.Array, offset: jax.Array, max_shift: int) -> jax.Array:
  """One ``[h, w, c]`` image moved by ``offset - max_shift`` pixels, zeros filling in."""
  h, w, c = image.shape
  s = max_shift
  padded = jnp.pad(image, ((s, s), (s, s), (0, 0)))
  return jax.lax.dynamic_slice(padded, (offset[0], offset[1], 0), (h, w, c))


def _over_leading(fn, axes: int):
  for _ in range(axes):
    fn = jax.vmap(fn)
  return fn

