"""Optimizer records: every gradient-only optax optimizer by name, or a researcher's own.

``config.optim`` holds settings every optimizer shares (``COMMON``: learning
rate, weight decay, clipping, schedule) and the chosen optimizer's own fields,
read from optax's signature (``optim.name=adadelta`` gives ``optim.rho`` and
``optim.eps`` with optax's defaults), completed and checked like a model's.

Own fields listed in ``injected`` become arrays in the optimizer state
(``optax.inject_hyperparams``), so sweep members that differ only there train
as one program; the others are fixed when the optimizer is built. adam, adamw
and sgd keep the fields jaxdl has always injected (sgd's momentum), so their
runs are bitwise those of earlier releases.

A researcher's optimizer is an import path ``PKG.MODULE:ATTR`` to an
``OptimizerPart``, or to a factory ``f(learning_rate, **fields) ->
optax.GradientTransformation`` whose keyword arguments with defaults are its
fields (as optax's own functions are).
"""

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import optax

from jaxdl.errors import ConfigError
from jaxdl.parts import Registry

# Keys of config.optim that every optimizer has (default.py documents them).
COMMON = ("name", "learning_rate", "weight_decay", "grad_clip_norm", "schedule", "warmup_epochs",
          "end_lr_fraction")
# Factory arguments that config.optim's common keys set. Arguments whose default is not a
# plain value (masks, dtypes, callables: None) are left at their defaults.
_NOT_FIELDS = ("learning_rate", "weight_decay")


@dataclasses.dataclass(frozen=True)
class OptimizerPart:
  """An optimizer jaxdl can build.

  Attributes:
    name: what ``config.optim.name`` says.
    make: ``(learning_rate, **fields) -> optax.GradientTransformation``; also given
      ``weight_decay=`` where ``decoupled_decay`` is set.
    fields: its own ``config.optim`` fields and their defaults.
    injected: the fields kept as arrays in the optimizer state (sweepable in one program).
    decoupled_decay: ``make`` takes ``weight_decay`` itself (adamw, lion, ...); otherwise
      jaxdl adds coupled L2 decay (``optax.add_decayed_weights``) before it.
    cite_keys: BibTeX keys of the papers behind it, for ``jaxdl cite``.
  """

  name: str
  make: Callable[..., optax.GradientTransformation]
  fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  injected: tuple[str, ...] = ()
  decoupled_decay: bool = False
  cite_keys: tuple[str, ...] = ()
  required: tuple[str, ...] = ()


def _config_default(value: Any) -> bool:
  return isinstance(value, (bool, int, float, str)) and not (
      isinstance(value, float) and value != value)


def from_factory(name: str, make: Callable[..., Any], defaults: Mapping[str, Any] | None = None,
                 injected: tuple[str, ...] | None = None, cite_keys: tuple[str, ...] = ()
                 ) -> OptimizerPart:
  """A record from an optax-style factory: its keyword arguments with plain defaults are fields.

  Args:
    defaults: jaxdl's defaults where they differ from the factory's (or it has none).
    injected: the fields to inject; by default every float field.
  """
  try:
    params = inspect.signature(make).parameters
  except (TypeError, ValueError) as e:
    raise ConfigError(f"optimizer {name!r}: cannot read the signature of {make!r}") from e
  if "learning_rate" not in params:
    raise ConfigError(f"optimizer {name!r}: {getattr(make, '__name__', make)} takes no "
                      "learning_rate argument; an optimizer factory is "
                      "f(learning_rate, **fields) -> optax.GradientTransformation")
  defaults = dict(defaults or {})
  fields, required = {}, []
  for arg, p in params.items():
    if arg in _NOT_FIELDS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
      continue
    value = defaults.get(arg, p.default)
    if value is p.empty:
      required.append(arg)
    elif _config_default(value):
      fields[arg] = value
  if injected is None:
    injected = tuple(k for k, v in fields.items() if isinstance(v, float))
  return OptimizerPart(name, make, fields, injected, "weight_decay" in params, cite_keys,
                       tuple(required))


def _adapt(name: str, obj: Any) -> OptimizerPart:
  if isinstance(obj, OptimizerPart):
    return dataclasses.replace(obj, name=name)
  if callable(obj):
    return from_factory(name, obj)
  raise ConfigError(f"optimizer {name!r} is a {type(obj).__name__}; give an OptimizerPart or a "
                    "factory f(learning_rate, **fields) -> optax.GradientTransformation")


OPTIMIZERS: Registry[OptimizerPart] = Registry("optimizer", _adapt, "optim.name")

# jaxdl's own choices where optax's defaults differ or are missing; the papers behind each.
_BUILT_IN = {
    "adam": dict(injected=(), cite_keys=("kingma2015adam",)),
    "adamw": dict(injected=(), cite_keys=("loshchilov2019decoupled",)),
    "sgd": dict(defaults={"momentum": 0.9}, injected=("momentum",)),
    "adadelta": dict(cite_keys=("zeiler2012adadelta",)),
    "adagrad": dict(cite_keys=("duchi2011adaptive",)),
    "rmsprop": dict(), "lion": dict(), "lamb": dict(), "lars": dict(), "nadam": dict(),
    "nadamw": dict(), "radam": dict(), "adamax": dict(), "adamaxw": dict(), "amsgrad": dict(),
    "adabelief": dict(), "adafactor": dict(), "adan": dict(), "novograd": dict(), "yogi": dict(),
    "fromage": dict(), "sm3": dict(), "sign_sgd": dict(),
    "optimistic_gradient_descent": dict(),
}
# Left out: optimizers whose update needs more than the gradient (lbfgs and polyak_sgd
# need the loss, noisy_sgd a PRNG key of its own) and rprop, whose first step is not
# proportional to the learning rate (jaxdl's schedules scale the update).
for _name, _options in _BUILT_IN.items():
  if hasattr(optax, _name):  # Older optax releases lack a few.
    OPTIMIZERS.register(_name, from_factory(_name, getattr(optax, _name), **_options))
