"""User-facing errors.

Every problem a researcher can fix (a wrong config key, a mis-shaped dataset, a
missing file) is raised as a :class:`JaxdlError` with one sentence that names the
problem and the fix. The command line prints that sentence and exits with
status 2; library users can catch it like any ``ValueError``.
"""


class JaxdlError(ValueError):
  """A problem with the user's input, with a message that says how to fix it."""


class ConfigError(JaxdlError):
  """An unknown config key, a wrong type, or an experiment file without get_config."""


class DataError(JaxdlError):
  """Missing, corrupt or inconsistent data."""


class CheckpointError(JaxdlError):
  """A checkpoint or run folder that cannot be used as asked."""
