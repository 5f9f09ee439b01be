"""Several hosts: ``jax.distributed.initialize`` from flags or the launcher's environment.

JAX is the distributed engine: once initialised, ``jax.devices()`` lists the
devices of every process, the data-parallel mesh spans them all, and orbax
writes checkpoints collectively. Where no coordinator is given, JAX detects
cluster launchers itself (SLURM, Open MPI, TPU pods, ...). On CPU the
collectives go through gloo.
"""

import os

import jax

from jaxdl.errors import ConfigError

ENV = ("JAXDL_COORDINATOR_ADDRESS", "JAXDL_NUM_PROCESSES", "JAXDL_PROCESS_ID")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
  """Joins the job; arguments fall back to the JAXDL_* variables, then to JAX's detection."""
  coordinator_address = coordinator_address or os.environ.get(ENV[0])
  if num_processes is None and os.environ.get(ENV[1]):
    num_processes = int(os.environ[ENV[1]])
  if process_id is None and os.environ.get(ENV[2]):
    process_id = int(os.environ[ENV[2]])
  if coordinator_address and (num_processes is None or process_id is None):
    raise ConfigError("--coordinator needs --num-processes and --process-id (or "
                      f"{ENV[1]} and {ENV[2]})")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = {}
  if coordinator_address:
    kwargs = dict(coordinator_address=coordinator_address, num_processes=num_processes,
                  process_id=process_id)
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    raise ConfigError(f"jax.distributed.initialize failed ({e}); pass --coordinator HOST:PORT "
                      "--num-processes N --process-id I, or run under a cluster launcher "
                      "such as srun") from e
