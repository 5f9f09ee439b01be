"""A sweep's shards or a search's workers as one job array, through submitit.

``jaxdl sweep|tune ... --launcher slurm --tasks 8 --slurm.partition=gpu --slurm.time=240``
submits one SLURM job array (``map_array``, at most ``--parallelism`` tasks at once). Task I of
N runs the same command with ``--shard I/N`` (a sweep: whole vectorized groups stay together)
or as one more worker of the search's study (a search: Optuna's journal file on the shared
filesystem, unless ``--storage`` names a database). Each task resumes its run folders, so a
task that times out or is preempted is requeued by submitit (``Checkpointable``) and goes on
where it stopped. ``--launcher local`` runs the same tasks as processes of this machine
through submitit's local executor and waits for them (what the tests use). JAX and SLURM are
the engines; nothing here schedules anything itself.

``jaxdl train ... --launcher slurm --tasks 4`` is one multi-host training job instead: one
process per node (``--launcher local``: processes of this machine), joined by
``jax.distributed`` (which finds SLURM's coordinator itself; locally, this names one), each
feeding its devices their part of every global batch.
"""

import dataclasses
import os
import pathlib
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from jaxdl.errors import ConfigError

LAUNCHERS = ("local", "slurm")
# --slurm.KEY: (submitit's AutoExecutor parameter, type, help).
SLURM_OPTIONS = {
    "partition": ("slurm_partition", str, "the partition (queue)"),
    "time": ("timeout_min", int, "minutes per task before SLURM stops it (it is requeued)"),
    "gpus_per_task": ("slurm_gpus_per_task", int, "GPUs per task"),
    "cpus_per_task": ("cpus_per_task", int, "CPU cores per task"),
    "mem_gb": ("mem_gb", int, "memory per task, GB"),
    "account": ("slurm_account", str, "the account charged"),
    "qos": ("slurm_qos", str, "the quality of service"),
    "constraint": ("slurm_constraint", str, "node features (e.g. a100)"),
}
SUBMITIT_DIR = "submitit"  # In the sweep or search folder: the tasks' pickles and logs.


@dataclasses.dataclass(frozen=True)
class Launch:
  """How to run a command's tasks.

  Attributes:
    launcher: 'local' (processes here) or 'slurm' (a job array).
    tasks: the array's size: the sweep's shards, or the search's workers.
    parallelism: at most this many tasks at once (SLURM's array throttle; 0: no limit).
    slurm: ``--slurm.KEY`` values given, by KEY of ``SLURM_OPTIONS``.
  """

  launcher: str
  tasks: int
  parallelism: int = 0
  slurm: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.launcher not in LAUNCHERS:
      raise ConfigError(f"--launcher {self.launcher!r}: choose one of {', '.join(LAUNCHERS)}")
    if self.tasks < 1:
      raise ConfigError(f"--tasks must be at least 1, got {self.tasks}")
    if self.launcher == "local" and self.slurm:
      raise ConfigError(f"--slurm.{next(iter(self.slurm))} is for --launcher slurm, not local")

  def executor_parameters(self) -> dict[str, Any]:
    """The submitit ``AutoExecutor`` parameters (``slurm_*`` ones are ignored by 'local')."""
    params = {SLURM_OPTIONS[key][0]: value for key, value in self.slurm.items()}
    if self.parallelism:
      params["slurm_array_parallelism"] = self.parallelism
    return params


def _submitit():
  try:
    import submitit
  except ImportError as e:
    raise ConfigError("--launcher needs submitit: pip install -e '.[cluster]'") from e
  return submitit


def _task_class():
  """The task callable, a ``submitit.helpers.Checkpointable``: on timeout or preemption
  submitit calls its ``checkpoint``, which resubmits the same arguments, and the rerun
  command resumes the task's run folders.

  A task runs the ``jaxdl`` command itself (its allocator settings, its SIGTERM checkpoint)
  as a child of the task's process; SLURM signals every process of the job. A task of a
  multi-process training job is given a ``coordinator`` where JAX cannot find one itself
  (the local executor): its rank then comes from submitit's job environment, passed as
  ``training/distributed.py``'s ``JAXDL_*`` variables (not imported: it would start JAX here).
  """
  submitit = _submitit()

  class Task(submitit.helpers.Checkpointable):
    def __call__(self, argv: Sequence[str], coordinator: str | None = None) -> int:
      env = dict(os.environ)
      if coordinator:
        job = submitit.JobEnvironment()
        env.update(JAXDL_COORDINATOR_ADDRESS=coordinator, JAXDL_NUM_PROCESSES=str(job.num_tasks),
                   JAXDL_PROCESS_ID=str(job.global_rank))
      return subprocess.call([sys.executable, "-m", "jaxdl.cli", *argv], env=env)

  return Task


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


LAUNCH_FLAGS = ("--launcher", "--tasks", "--parallelism")


def without_launch_options(argv: Sequence[str]) -> list[str]:
  """``argv`` less ``--launcher``, ``--tasks``, ``--parallelism`` and ``--slurm.*`` (with
  their values, as ``--key value`` or ``--key=value``): each task's own command line."""
  out, skip = [], False
  for arg in argv:
    if skip:
      skip = False
      continue
    name = arg.partition("=")[0]
    if name in LAUNCH_FLAGS or name.startswith("--slurm."):
      skip = "=" not in arg
      continue
    out.append(arg)
  return out


def task_argvs(command: str, argv: Sequence[str], plan: Launch, workdir: str) -> list[list[str]]:
  """Each task's ``jaxdl`` arguments: ``argv`` (the command line without the launcher's
  options) with ``--shard I/N`` for a sweep, and a shared journal storage for a search."""
  if "--overwrite" in argv:
    raise ConfigError("--overwrite with --launcher would let every task delete the others' "
                      "runs: run the command once with --overwrite and without --launcher, "
                      "then launch")
  if command == "sweep":
    if "--shard" in argv:
      raise ConfigError("--launcher gives each task its --shard; leave --shard out")
    return [[*argv, "--shard", f"{i}/{plan.tasks}"] for i in range(plan.tasks)]
  if command == "tune":
    storage = [] if "--storage" in argv else [
        "--storage", f"journal:{pathlib.Path(workdir) / 'study.journal'}"]
    return [[*argv, *storage] for _ in range(plan.tasks)]
  if command == "train":
    if any(a.partition("=")[0] in ("--distributed", "--coordinator", "--num-processes",
                                   "--process-id") for a in argv):
      raise ConfigError("--launcher starts the processes and joins them itself; leave out "
                        "--distributed, --coordinator, --num-processes and --process-id")
    return [[*argv, "--distributed"]]
  raise ConfigError(f"--launcher runs train, sweep and tune tasks, not {command}")


def launch(command: str, argv: Sequence[str], plan: Launch, workdir: str) -> int:
  """Submits the tasks; for 'local', waits and returns the worst exit status (0: all done).

  A SLURM array is left running: this prints its job id and how to follow it.
  """
  submitit = _submitit()
  argvs = task_argvs(command, argv, plan, workdir)
  pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
  executor = submitit.AutoExecutor(folder=pathlib.Path(workdir) / SUBMITIT_DIR,
                                   cluster=plan.launcher)
  if command == "train":
    return _wait(submitit, _submit_training(executor, argvs[0], plan), plan, command, workdir)
  executor.update_parameters(name=f"jaxdl-{command}", **plan.executor_parameters())
  jobs = executor.map_array(_task_class()(), argvs)
  return _wait(submitit, jobs, plan, command, workdir)


def _submit_training(executor, argv: Sequence[str], plan: Launch) -> list:
  """One job of ``plan.tasks`` processes: one per node on SLURM, all here for 'local'."""
  params = {k: v for k, v in plan.executor_parameters().items()
            if k != "slurm_array_parallelism"}
  if plan.launcher == "slurm":
    params.update(nodes=plan.tasks, tasks_per_node=1)
  else:
    params.update(tasks_per_node=plan.tasks)
  executor.update_parameters(name="jaxdl-train", **params)
  coordinator = None if plan.launcher == "slurm" else f"127.0.0.1:{_free_port()}"
  return [executor.submit(_task_class()(), argv, coordinator)]


def _wait(submitit, jobs: list, plan: Launch, command: str, workdir: str) -> int:
  """Prints what was submitted; for 'local', waits and returns the worst exit status."""
  print(f"{len(jobs)} {command} task(s) submitted ({plan.launcher}): "
        f"{', '.join(str(j.job_id) for j in jobs[:4])}{' ...' if len(jobs) > 4 else ''}; "
        f"logs in {workdir}/{SUBMITIT_DIR}/")
  if plan.launcher == "slurm":
    result = f"the table: jaxdl report {workdir}" if command != "train" else \
        f"the run: {workdir}/results.json"
    print(f"follow it with squeue -j {jobs[0].job_id.split('_')[0]}; {result}")
    return 0
  statuses = []
  for job in jobs:
    try:
      statuses.extend(job.results())  # One per task of the job (several for a training job).
    except submitit.core.utils.FailedJobError as e:
      print(f"task {job.job_id} failed: {str(e).strip().splitlines()[-1][:300]}")
      statuses.append(1)
  return max(statuses)
