"""jaxdl: a JAX functional research framework for CNNs, deep CNNs, RNNs and LSTMs.

Importing jaxdl changes nothing in the process (allocator, flags, logging). The
``jaxdl`` command tunes the host allocator for its own process (see host.py);
a script opts in with ``tune_host_allocator`` or ``JAXDL_HOST_ALLOCATOR=tuned``.
XLA:CPU flags that speed up convolutions are opt-in for both (``tune_xla_flags``,
``JAXDL_XLA_CPU=tuned``).
"""

import os as _os
from typing import TYPE_CHECKING

from jaxdl.errors import CheckpointError, ConfigError, DataError, JaxdlError
from jaxdl.host import tune_allocator as tune_host_allocator
from jaxdl.host import tune_xla_flags
from jaxdl.version import __version__

if _os.environ.get("JAXDL_HOST_ALLOCATOR") == "tuned":  # The user's explicit opt-in.
  tune_host_allocator()
if _os.environ.get("JAXDL_XLA_CPU") == "tuned":  # Likewise.
  tune_xla_flags()

# The API, by name. They import JAX, so they load on first use: `import jaxdl` stays
# light, and the jaxdl command tunes its allocator before any of them starts JAX.
_EXPORTS = {
    "train": ("jaxdl.api", "train"), "sweep": ("jaxdl.api", "sweep"),
    "tune": ("jaxdl.api", "tune"),
    "evaluate": ("jaxdl.api", "evaluate"), "load_run": ("jaxdl.api", "load_run"),
    "get_config": ("jaxdl.api", "get_config"), "Run": ("jaxdl.api", "Run"),
    "predict_file": ("jaxdl.api", "predict_file"), "Study": ("jaxdl.studies", "Study"),
    "explain": ("jaxdl.interpret.run", "explain"), "report": ("jaxdl.sweeps.report", "report"),
    "compare": ("jaxdl.sweeps.report", "compare_folders"), "cite": ("jaxdl.bibtex", "cite"),
    "build_data": ("jaxdl.data", "build"), "build_model": ("jaxdl.models", "build"),
    "DataSpec": ("jaxdl.data", "DataSpec"), "Datasets": ("jaxdl.data", "Datasets"),
    "DataSource": ("jaxdl.data", "DataSource"),
    "Split": ("jaxdl.data", "Split"), "ModelPart": ("jaxdl.models", "ModelPart"),
    "Objective": ("jaxdl.training.objectives", "Objective"),
    "Metric": ("jaxdl.training.metrics", "Metric"),
    "OptimizerPart": ("jaxdl.optim", "OptimizerPart"),
    "ConstraintPart": ("jaxdl.optim", "ConstraintPart"),
}

if TYPE_CHECKING:  # What IDEs and type checkers see; tests/test_layering.py keeps it in step.
  from jaxdl.bibtex import cite
  from jaxdl.api import Run, evaluate, get_config, load_run, predict_file, sweep, train, tune
  from jaxdl.data import DataSource, DataSpec, Datasets, Split
  from jaxdl.data import build as build_data
  from jaxdl.interpret.run import explain
  from jaxdl.models import ModelPart
  from jaxdl.models import build as build_model
  from jaxdl.optim import ConstraintPart, OptimizerPart
  from jaxdl.studies import Study
  from jaxdl.sweeps.report import compare_folders as compare
  from jaxdl.sweeps.report import report
  from jaxdl.training.metrics import Metric
  from jaxdl.training.objectives import Objective


def __getattr__(name: str):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'jaxdl' has no attribute {name!r}")
  import importlib

  module, attribute = _EXPORTS[name]
  return getattr(importlib.import_module(module), attribute)


__all__ = ["CheckpointError", "ConfigError", "ConstraintPart", "DataError", "DataSource",
           "DataSpec",
           "Datasets", "JaxdlError", "Metric", "ModelPart", "Objective", "OptimizerPart", "Run",
           "Split", "Study", "__version__", "build_data", "build_model", "cite", "compare",
           "evaluate", "explain",
           "get_config", "load_run", "predict_file", "report", "sweep", "train", "tune",
           "tune_host_allocator", "tune_xla_flags"]
