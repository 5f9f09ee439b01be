"""jaxdl: a JAX functional research framework for CNNs, deep CNNs, RNNs and LSTMs."""

__version__ = "0.1.0"

from jaxdl.errors import CheckpointError, ConfigError, DataError, JaxdlError  # noqa: E402

__all__ = ["CheckpointError", "ConfigError", "DataError", "JaxdlError", "__version__"]
