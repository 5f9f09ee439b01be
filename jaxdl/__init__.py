"""jaxdl: a JAX functional research framework for CNNs, deep CNNs, RNNs and LSTMs.

Importing jaxdl changes nothing in the process (allocator, flags, logging). The
``jaxdl`` command tunes the host allocator for its own process (see host.py);
a script opts in with :func:`tune_host_allocator` or ``JAXDL_HOST_ALLOCATOR=tuned``.
"""

__version__ = "0.1.0"

import os as _os

from jaxdl.errors import CheckpointError, ConfigError, DataError, JaxdlError
from jaxdl.host import tune_allocator as tune_host_allocator

if _os.environ.get("JAXDL_HOST_ALLOCATOR") == "tuned":  # The user's explicit opt-in.
  tune_host_allocator()

__all__ = ["CheckpointError", "ConfigError", "DataError", "JaxdlError", "__version__",
           "tune_host_allocator"]
