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
  """A metric: a researcher's own per-example function, or a built-in's sums.

  Attributes:
    fn: ``(logits, batch) -> <float32>[batch]`` per-example values (averaged over a split).
    mode: ``'max'`` if higher is better, ``'min'`` if lower is; None where a bare function
      does not say (selecting on it then needs ``select.mode``).
    name: how metrics.jsonl names it (default: the attribute's name).
    sums: instead of ``fn``, ``(logits, batch) -> sums`` that the metric is finished from
      (the built-ins: top-K hits, a confusion matrix shared by macro-F1 and MCC).
  """

  fn: Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array] | None
  mode: str | None
  name: str = ""
  sums: SumsFn | None = None

  def __post_init__(self):
    if self.mode not in ("max", "min", None):
      raise ConfigError(f"Metric mode must be 'max' or 'min', got {self.mode!r}")


def _adapt(name: str, found) -> Metric:
  """A researcher's metric at an import path: a ``Metric``, or a bare per-example function."""
  if isinstance(found, Metric):
    return found
  if callable(found):
    return Metric(found, None)
  raise ConfigError(f"metric {name} is a {type(found).__name__}; give a jaxdl.Metric or a "
                    "function (logits, batch) -> per-example values")


class MetricRegistry(parts.Registry[Metric]):
  """Metrics by name: the built-ins, ``topK_accuracy`` for any K, and import paths."""

  def resolve(self, name: str, experiment: str = "") -> Metric:
    top = _TOP_K.fullmatch(name)
    if top and int(top.group(1)) >= 1:
      return Metric(None, "max", name, sums=_top_k(int(top.group(1))))
    return super().resolve(name, experiment)

  def names(self) -> list[str]:
    return [*super().names(), "topK_accuracy (any K, e.g. top5_accuracy)"]


METRICS = MetricRegistry("metric", _adapt)
for _name in FROM_CONFUSION:
  METRICS.register(_name, Metric(None, "max", _name, sums=_confusion))


def resolve(names: Sequence[str], experiment: str = ""
            ) -> tuple[list[str], list[SumsFn], dict[str, str]]:
  """The metric names ``config.metrics`` asks for (``topK_accuracy`` for any K too), the
  functions that sum them (a shared one once), and the directions that user metrics declare."""
  reported, functions, modes = [], [], {}
  for name in names:
    metric = METRICS.resolve(name, experiment)
    short = metric.name or name.rpartition(":")[2].rpartition(".")[2]
    reported.append(short)
    if metric.sums is None:
      functions.append(_per_example(short, metric.fn))
    elif metric.sums not in functions:
      functions.append(metric.sums)
    if parts.is_import_path(name) and metric.mode is not None:
      modes[short] = metric.mode
  return reported, functions, modes
