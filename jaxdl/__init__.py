"""jaxdl: a JAX functional research framework for CNNs, deep CNNs, RNNs and LSTMs."""

__version__ = "0.1.0"

# Before anything starts JAX's thread pools: see host.py (JAXDL_HOST_ALLOCATOR=default opts out).
from jaxdl import host  # noqa: E402

host.tune_allocator()

from jaxdl.errors import CheckpointError, ConfigError, DataError, JaxdlError  # noqa: E402

__all__ = ["CheckpointError", "ConfigError", "DataError", "JaxdlError", "__version__"]
