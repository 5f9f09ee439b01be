"""Parameter constraints: projections applied to the parameters after every update.

``config.constraints`` maps a label of the researcher's choosing to one
constraint: its ``name`` (a built-in below or an import path), ``params`` (a
regular expression matched in full against each parameter's path, its names
joined by ``/``, e.g. ``Dense_1/kernel``) and the constraint's own fields::

    config.constraints.softmax = dict(name="max_norm", params=".*Dense_1/kernel",
                                      max_norm=3.0)

Built in:

- ``max_norm``: rescales each unit's incoming weights to l2 norm at most
  ``max_norm``: ``w * min(|w|, c) / (eps + |w|)``, a unit being one index of the
  last axis (a Dense kernel's columns, as Keras's ``MaxNorm(axis=0)`` and Kim's
  (2014) code); ``per_unit=False`` bounds the whole tensor's norm instead (a
  per-layer constraint). Srivastava et al. (2014) and Kim (2014) use it with
  dropout.
- ``non_negative``: ``max(w, 0)``.

A researcher's constraint is an import path to a ``ConstraintPart``, or to
a function ``project(param, **fields) -> param`` (its keyword arguments with
defaults are its fields). Projections are elementwise or reduce over axes of
one parameter, so they hold for each member of a vectorized sweep (vmap), for
DP-SGD (they act on the noisy update's result) and for parameters sharded over
devices (XLA gathers what a norm needs).
"""

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxdl.errors import ConfigError
from jaxdl.parts import Registry, did_you_mean

KEYS = ("name", "params")  # Keys every constraint has; the rest are its own fields.


@dataclasses.dataclass(frozen=True)
class ConstraintPart:
  """A projection jaxdl applies to matching parameters after each update.

  Attributes:
    name: what ``config.constraints.LABEL.name`` says.
    project: ``(param, **fields) -> param`` of the same shape and dtype.
    fields: its own fields and their defaults.
    cite_keys: BibTeX keys of the papers behind it.
  """

  name: str
  project: Callable[..., jax.Array]
  fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  cite_keys: tuple[str, ...] = ()


def max_norm(param: jax.Array, max_norm: float = 3.0, per_unit: bool = True,
             eps: float = 1e-7) -> jax.Array:
  """``param`` rescaled so each unit's l2 norm (``per_unit``) or its whole norm is at most
  ``max_norm``: ``param * min(norm, max_norm) / (eps + norm)``.

  A unit is one index of the last axis (Flax kernels put output units last: a Dense
  kernel ``[in, out]``, a convolution's ``[h, w, in, out]``), its norm taken over all
  other axes.
  """
  axes = tuple(range(param.ndim - 1)) if per_unit and param.ndim > 1 else None
  norms = jnp.sqrt(jnp.sum(jnp.square(param), axis=axes, keepdims=True))
  desired = jnp.clip(norms, 0.0, max_norm)
  return (param * (desired / (eps + norms))).astype(param.dtype)


def non_negative(param: jax.Array) -> jax.Array:
  return jnp.maximum(param, jnp.zeros((), param.dtype))


def _fields_of(project: Callable[..., Any]) -> dict[str, Any]:
  params = list(inspect.signature(project).parameters.values())[1:]
  return {p.name: p.default for p in params
          if p.default is not p.empty and isinstance(p.default, (bool, int, float, str))}


def _adapt(name: str, obj: Any) -> ConstraintPart:
  if isinstance(obj, ConstraintPart):
    return dataclasses.replace(obj, name=name)
  if callable(obj):
    return ConstraintPart(name, obj, _fields_of(obj))
  raise ConfigError(f"constraint {name!r} is a {type(obj).__name__}; give a ConstraintPart or "
                    "a function project(param, **fields) -> param")


CONSTRAINTS: Registry[ConstraintPart] = Registry("constraint", _adapt,
                                                     "constraint name")
CONSTRAINTS.register("max_norm", ConstraintPart("max_norm", max_norm, _fields_of(max_norm),
                                                ("srivastava2014dropout",)))
CONSTRAINTS.register("non_negative", ConstraintPart("non_negative", non_negative))


@dataclasses.dataclass(frozen=True)
class _Bound:
  label: str
  pattern: re.Pattern
  part: ConstraintPart
  fields: Mapping[str, Any]


def _bind(label: str, spec: Mapping[str, Any], experiment: str) -> _Bound:
  where = f"constraints.{label}"
  missing = [k for k in KEYS if k not in spec]
  if missing:
    raise ConfigError(f"{where} needs {' and '.join(missing)}: e.g. dict(name='max_norm', "
                      "params='.*Dense_1/kernel', max_norm=3.0)")
  part = CONSTRAINTS.resolve(spec["name"], experiment)
  given = {k: v for k, v in spec.items() if k not in KEYS}
  unknown = [k for k in given if k not in part.fields]
  if unknown:
    raise ConfigError(f"{where}.{unknown[0]} is not a field of constraint {part.name!r}"
                      f"{did_you_mean(unknown[0], part.fields)}; its fields: "
                      f"{', '.join(part.fields) or 'none'}")
  try:
    pattern = re.compile(spec["params"])
  except re.error as e:
    raise ConfigError(f"{where}.params {spec['params']!r} is not a regular expression: "
                      f"{e}") from e
  return _Bound(label, pattern, part, {**part.fields, **given})


def path_name(path) -> str:
  """``Dense_1/kernel``: a parameter's key path, its names joined by ``/``."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                  for k in path)


def build_constraints(constraints: ml_collections.ConfigDict | Mapping[str, Any], params,
                      experiment: str = "") -> Callable[[Any], Any] | None:
  """``params -> params`` projecting every matched parameter, or None without constraints.

  Each constraint must match at least one parameter of ``params`` (a pattern that
  matches nothing is a typo, refused here, before training), and no parameter may
  match two (their order would matter).
  """
  specs = constraints.to_dict() if isinstance(constraints, ml_collections.ConfigDict) \
      else dict(constraints)
  if not specs:
    return None
  bound = [_bind(label, spec, experiment) for label, spec in specs.items()]
  names = [path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  chosen: dict[str, _Bound] = {}
  for b in bound:
    matched = [n for n in names if b.pattern.fullmatch(n)]
    if not matched:
      raise ConfigError(f"constraints.{b.label}.params {b.pattern.pattern!r} matches no "
                        f"parameter; the model's parameters: {', '.join(names)}")
    for n in matched:
      if n in chosen:
        raise ConfigError(f"parameter {n} matches constraints.{chosen[n].label} and "
                          f"constraints.{b.label}; make their params patterns disjoint")
      chosen[n] = b

  def project(params):
    def one(path, param):
      b = chosen.get(path_name(path))
      return param if b is None else b.part.project(param, **b.fields)
    return jax.tree_util.tree_map_with_path(one, params)

  return project
