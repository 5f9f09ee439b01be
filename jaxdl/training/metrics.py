"""Extra classification metrics, as masked sums (``config.metrics``).

Each metric adds sums to a step's metric sums, so padding masks, devices and
vectorized members stay exact like the loss:

  ``topK_accuracy`` (e.g. ``top5_accuracy``): the label among the K largest logits.
  ``macro_f1``, ``mcc``: from a summed confusion matrix (``confusion``,
    ``<float32>[classes, classes]``, rows true, columns predicted), finished on
    the host: the unweighted mean of the per-class F1 scores, and Matthews'
    correlation coefficient in its multi-class form (Gorodkin 2004). Accuracy
    alone rewards a spam filter that never says "spam"; these two do not.

A researcher's own metric is ``PKG.MODULE:ATTR`` naming a ``Metric``
(which says whether higher or lower is better) or a bare function
``(logits, batch) -> <float32>[batch]`` of per-example values; it is summed
over real examples and averaged like accuracy. Selecting on a bare function's
metric needs ``select.mode``: jaxdl does not guess a direction from a name.
"""

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from jaxdl import parts
from jaxdl.errors import ConfigError
from jaxdl.training.metric_sums import Sums, from_confusion  # noqa: F401 (re-exported)

SumsFn = Callable[[jax.Array, Mapping[str, jax.Array]], Sums]
_TOP_K = re.compile(r"top(\d+)_accuracy")
CONFUSION = "confusion"
FROM_CONFUSION = ("macro_f1", "mcc")


def _top_k(k: int) -> SumsFn:
  def sums(logits, batch):
    top = jax.lax.top_k(logits.astype(jnp.float32), k)[1]
    hit = jnp.any(top == batch["label"][:, None], axis=-1).astype(jnp.float32)
    return {f"top{k}_accuracy": jnp.sum(hit * batch["mask"])}
  return sums


def _confusion(logits, batch) -> Sums:
  classes = logits.shape[-1]
  true = jax.nn.one_hot(batch["label"], classes, dtype=jnp.float32) * batch["mask"][:, None]
  predicted = jax.nn.one_hot(jnp.argmax(logits, -1), classes, dtype=jnp.float32)
  return {CONFUSION: true.T @ predicted}


def _per_example(name: str, fn: Callable) -> SumsFn:
  def sums(logits, batch):
    values = jnp.asarray(fn(logits, batch), jnp.float32).reshape(batch["mask"].shape)
    return {name: jnp.sum(values * batch["mask"])}
  return sums


@dataclasses.dataclass(frozen=True)
class Metric:
  """A researcher's own per-example metric.

  Attributes:
    fn: ``(logits, batch) -> <float32>[batch]`` per-example values (averaged over a split).
    mode: ``'max'`` if higher is better, ``'min'`` if lower is.
    name: how metrics.jsonl names it (default: the attribute's name).
  """

  fn: Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array]
  mode: str
  name: str = ""

  def __post_init__(self):
    if self.mode not in ("max", "min"):
      raise ConfigError(f"Metric mode must be 'max' or 'min', got {self.mode!r}")


def resolve(names: Sequence[str], experiment: str = ""
            ) -> tuple[list[str], list[SumsFn], dict[str, str]]:
  """The metric names ``config.metrics`` asks for, the functions that sum them, and the
  directions that user metrics declare."""
  reported, functions, modes, confusion = [], [], {}, False
  for name in names:
    top = _TOP_K.fullmatch(name)
    if top and int(top.group(1)) >= 1:
      reported.append(name)
      functions.append(_top_k(int(top.group(1))))
    elif name in FROM_CONFUSION:
      reported.append(name)
      if not confusion:
        functions.append(_confusion)
        confusion = True
    elif parts.is_import_path(name):
      found = parts.import_object(name, experiment, "metric")
      short = (found.name if isinstance(found, Metric) else "") or \
          name.rpartition(":")[2].rpartition(".")[2]
      reported.append(short)
      if isinstance(found, Metric):
        modes[short] = found.mode
      functions.append(_per_example(short, found.fn if isinstance(found, Metric) else found))
    else:
      raise ConfigError(f"unknown metric {name!r} in config.metrics; use topK_accuracy (e.g. "
                        f"top5_accuracy), {', '.join(FROM_CONFUSION)}, or PKG.MODULE:ATTR of a "
                        "function (logits, batch) -> per-example values")
  return reported, functions, modes
