"""The release, written in this one place: ``jaxdl.__version__`` and pyproject.toml read it."""

__version__ = "0.1.0"
