"""Training: optimizer, state, steps, checkpoints, the loop and its run folder."""

from jaxdl.training.evaluation import evaluate
from jaxdl.training.experiment import Experiment, build_experiment
from jaxdl.training.loop import train_and_evaluate, train_group
from jaxdl.training.saved_runs import load_run
from jaxdl.optim import build_optimizer
from jaxdl.training.state import TrainState, create_train_state
from jaxdl.training.steps import make_eval_step, make_train_step

__all__ = ["Experiment", "TrainState", "build_experiment", "build_optimizer",
           "create_train_state", "evaluate", "load_run", "make_eval_step", "make_train_step",
           "train_and_evaluate", "train_group"]
