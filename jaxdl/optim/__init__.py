"""Optimizers, learning-rate schedules and parameter constraints: parts found by name or import path, built from config."""

from jaxdl.optim.build import build_optimizer
from jaxdl.optim.constraints import CONSTRAINTS, ConstraintPart, build_constraints
from jaxdl.optim.optimizers import OPTIMIZERS, OptimizerPart
from jaxdl.optim.schedules import SCHEDULES, SchedulePart

__all__ = ["CONSTRAINTS", "OPTIMIZERS", "SCHEDULES", "ConstraintPart", "OptimizerPart",
           "SchedulePart", "build_constraints", "build_optimizer"]
