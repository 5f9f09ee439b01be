"""Claiming a group's run folders before training: lock each, refuse a changed experiment,
then write what the run starts from (config, data spec, vocabulary, provenance)."""

import contextlib
from collections.abc import Callable, Iterator, Sequence

import jax

from jaxdl.configs.loading import config_to_dict
from jaxdl.training import user_code
from jaxdl.training.experiment import Experiment
from jaxdl.training.run_folder import RunFolder


def _sync(name: str) -> None:
  """All processes wait here (multi-host); a no-op in one process."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def claimed_folders(runs: Sequence[RunFolder], exps: Sequence[Experiment],
                    overwrite: bool, command: Sequence[str],
                    log: Callable[[str], None]) -> Iterator[None]:
  """Holds every member's folder lock for the block, its claim checked and its start written.

  Every folder is checked before any is written: a refused member (a changed config or
  code, see ``RunFolder.check_claim``) leaves all of them as they were.
  """
  code = [user_code.record(exp.config) for exp in exps]  # The researcher's files.
  with contextlib.ExitStack() as held:
    for run in runs:
      held.enter_context(run.lock(log))
    for run, exp, files in zip(runs, exps, code):
      run.check_claim(config_to_dict(exp.config), exp.datasets.vocab, overwrite, files)
    _sync("jaxdl: run folders checked")
    for run, exp, files in zip(runs, exps, code):
      run.start(config_to_dict(exp.config), exp.datasets.spec.to_dict(), exp.datasets.vocab,
                command, overwrite, files)
    _sync("jaxdl: run folders ready")
    yield
