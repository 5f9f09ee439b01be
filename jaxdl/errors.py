"""User-facing errors.

Every problem a researcher can fix (a wrong config key, a mis-shaped dataset, a
missing file) is raised as a ``JaxdlError`` with one sentence that names the
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


class NonFiniteError(JaxdlError):
  """Training produced a NaN or infinite loss or gradient (the last good checkpoint is kept)."""


class Preempted(Exception):
  """SIGTERM or SIGINT stopped training after a checkpoint; rerunning resumes.

  Not a JaxdlError: it is not the user's input that is wrong, and a sweep must
  stop rather than go on to its next member.
  """
