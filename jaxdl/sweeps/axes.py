"""Sweep axes and their expansion into members.

An axis is ``KEY=SPEC`` (on the command line) or ``{KEY: SPEC}`` (from an
experiment's ``sweep()``):

  grid      ``1e-3,3e-3,1e-2`` (a list), ``0:5`` (the integers 0..4), ``0:10:2``
  random    ``loguniform(1e-4,1e-2)``, ``uniform(0,0.5)``, ``randint(1,4)`` (both
            ends included), ``choice(lstm,gru)``; drawn ``--samples N`` times
            from ``--sweep-seed``.

Members are the grid's cartesian product, crossed with the N random draws.
"""

import ast
import dataclasses
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxdl.errors import ConfigError

_RANDOM = re.compile(r"^(loguniform|uniform|randint|choice)\((.*)\)$")
_RANGE = re.compile(r"^(-?\d+):(-?\d+)(?::(\d+))?$")


@dataclasses.dataclass(frozen=True)
class Axis:
  """One swept config key.

  Attributes:
    key: dotted config key.
    values: the grid values (for a grid axis).
    distribution: 'loguniform', 'uniform', 'randint' or 'choice' (random axis).
    arguments: the distribution's arguments.
  """

  key: str
  values: tuple[Any, ...] = ()
  distribution: str = ""
  arguments: tuple[Any, ...] = ()

  @property
  def is_random(self) -> bool:
    return bool(self.distribution)

  def describe(self) -> dict[str, Any]:
    if self.is_random:
      return {"key": self.key, "distribution": self.distribution,
              "arguments": list(self.arguments)}
    return {"key": self.key, "values": list(self.values)}

  def draw(self, rng: np.random.Generator) -> Any:
    a = self.arguments
    if self.distribution == "loguniform":
      return float(math.exp(rng.uniform(math.log(a[0]), math.log(a[1]))))
    if self.distribution == "uniform":
      return float(rng.uniform(a[0], a[1]))
    if self.distribution == "randint":
      return int(rng.integers(a[0], a[1] + 1))
    return a[int(rng.integers(len(a)))]


def _number(text: str, spec: str) -> float:
  try:
    return float(text)
  except ValueError:
    raise ConfigError(f"sweep axis {spec!r}: {text!r} is not a number") from None


def _scalar(text: str) -> Any:
  """'3' -> 3, '1e-3' -> 0.001, 'true' -> True, anything else stays a string."""
  text = text.strip()
  if re.fullmatch(r"-?\d+", text):
    return int(text)
  try:
    return float(text)
  except ValueError:
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_axis(text: str) -> Axis:
  """Parses ``KEY=SPEC``."""
  key, sep, spec = text.partition("=")
  key, spec = key.strip().removeprefix("config."), spec.strip()
  if not sep or not key or not spec:
    raise ConfigError(f"sweep axis {text!r} must be KEY=VALUES, e.g. "
                      "optim.learning_rate=1e-3,3e-3 or seed=0:5")
  return axis_from_spec(key, spec)


def _random_axis(key: str, spec: str, name: str, args: list[str]) -> Axis:
  if name == "choice":
    if not args:
      raise ConfigError(f"sweep axis {key}={spec}: choice() needs at least one value")
    return Axis(key, distribution=name, arguments=tuple(_scalar(a) for a in args))
  if len(args) != 2:
    raise ConfigError(f"sweep axis {key}={spec}: {name}(low,high) takes two numbers")
  low, high = (_number(a, spec) for a in args)
  if high < low or (name == "loguniform" and low <= 0):
    raise ConfigError(f"sweep axis {key}={spec}: need low <= high"
                      + (" and low > 0" if name == "loguniform" else ""))
  if name == "randint":
    low, high = int(low), int(high)
  return Axis(key, distribution=name, arguments=(low, high))


def _range_axis(key: str, spec: str, span: re.Match) -> Axis:
  start, stop, step = int(span.group(1)), int(span.group(2)), int(span.group(3) or 1)
  if step < 1:
    raise ConfigError(f"sweep axis {key}={spec}: the step must be at least 1 (start:stop:step)")
  values = tuple(range(start, stop, step))
  if not values:
    raise ConfigError(f"sweep axis {key}={spec} is an empty range")
  return Axis(key, values=values)


def axis_from_spec(key: str, spec: Any) -> Axis:
  """An axis from a spec string, or from a list of values (an experiment's ``sweep()``)."""
  if isinstance(spec, (list, tuple)):
    if not spec:
      raise ConfigError(f"sweep axis {key!r} has no values")
    return Axis(key, values=tuple(spec))
  spec = str(spec).strip()
  random = _RANDOM.match(spec)
  if random:
    args = [a.strip() for a in random.group(2).split(",") if a.strip()]
    return _random_axis(key, spec, random.group(1), args)
  span = _RANGE.match(spec)
  if span:
    return _range_axis(key, spec, span)
  try:  # Python literals: numbers, strings, tuples such as (64,),(128,).
    values = ast.literal_eval(f"[{spec}]")
  except (ValueError, SyntaxError):  # Bare words: lstm,gru.
    values = [_scalar(v) for v in spec.split(",") if v.strip()]
  return Axis(key, values=tuple(values))


def _check_axes(axes: Sequence[Axis], samples: int) -> None:
  keys = [a.key for a in axes]
  duplicated = {k for k in keys if keys.count(k) > 1}
  if duplicated:
    raise ConfigError(f"sweep axis {sorted(duplicated)[0]!r} is given twice")
  random = [a for a in axes if a.is_random]
  if random and samples < 1:
    raise ConfigError(f"random sweep axis {random[0].key!r} needs --samples N (N >= 1)")
  if samples and not random:
    raise ConfigError("--samples needs at least one random axis, e.g. "
                      "--sweep optim.learning_rate=loguniform(1e-4,1e-2)")


def expand(axes: Sequence[Axis], samples: int = 0, sweep_seed: int = 0) -> list[dict[str, Any]]:
  """The members: one dict of ``{key: value}`` overrides each, in a stable order."""
  _check_axes(axes, samples)
  grid = [a for a in axes if not a.is_random]
  rng = np.random.default_rng(sweep_seed)
  draws = [{a.key: a.draw(rng) for a in axes if a.is_random} for _ in range(max(samples, 1))]
  members = [{**draw, **dict(zip((a.key for a in grid), combo))}
             for draw in draws for combo in itertools.product(*(a.values for a in grid))]
  return [{a.key: m[a.key] for a in axes} for m in members]


def axes_from_mapping(mapping: Mapping[str, Any]) -> list[Axis]:
  return [axis_from_spec(k, v) for k, v in mapping.items()]
