"""Shared test setup: strict JAX numerics, paths to the shared real data, small configs."""

import json
import pathlib

import jax
import pytest

from jaxdl.configs import apply_overrides, load_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
EXPERIMENTS = ROOT / "experiments"

# Catch silent broadcasting bugs in our code.
jax.config.update("jax_numpy_rank_promotion", "raise")


def shared_data(name: str) -> pathlib.Path:
  """A folder of ../shared/data, or skip the test where it is absent (a user's machine)."""
  path = SHARED_DATA / name
  if not path.is_dir():
    pytest.skip(f"{path} is not present")
  return path


def comparable_files(workdir: pathlib.Path) -> tuple[list[dict], dict]:
  """A run's metrics.jsonl rows and results.json without their wall-clock fields."""
  from jaxdl.training.results import WALL_CLOCK

  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  rows = [{k: v for k, v in r.items() if k not in ("wall_s", "examples_per_s")} for r in rows]
  results = json.loads((workdir / "results.json").read_text())
  return rows, {k: v for k, v in results.items() if k not in WALL_CLOCK}


def experiment(name: str, *overrides: str):
  """The config of experiments/NAME.py with ``key=value`` overrides applied."""
  return apply_overrides(load_config(str(EXPERIMENTS / f"{name}.py")), overrides)


@pytest.fixture
def key():
  return jax.random.PRNGKey(0)
