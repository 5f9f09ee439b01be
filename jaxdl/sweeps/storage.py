"""Where a search's Optuna study lives, matched to how its workers are deployed.

- ``sqlite:///PATH`` (the default, ``WORKDIR/study.db``): workers on one machine. SQLite's
  file locking does not hold on network filesystems, which Optuna's FAQ warns against.
- ``journal:PATH``: Optuna's ``JournalStorage`` on an append-only file, made for many
  processes on many machines sharing a filesystem (NFS).
- any other SQLAlchemy URL (``postgresql://...``, ``mysql://...``): a database server.

Database storages (SQLite and servers) run Optuna's heartbeat: a worker that dies mid-trial
stops beating, the next worker to ask marks its trial failed, and Optuna's
``RetryHeartbeatStaleTrialCallback`` enqueues the same parameters again. A journal has no
heartbeat; there a trial left running by a dead worker is found by its run folder's lock,
which the operating system releases when the process dies (``stale_trials``).
"""

import contextlib
import os
import pathlib
import random
import time
import warnings
from collections.abc import Iterator

from jaxdl.errors import ConfigError

JOURNAL = "journal:"
# A worker beats every HEARTBEAT_S seconds; a trial unbeaten for 3 beats is stale.
# JAXDL_HEARTBEAT_S sets it (whole seconds, as Optuna takes them): shorter finds a dead
# worker's trial sooner, at the price of a database write per beat per running trial.
HEARTBEAT_ENV = "JAXDL_HEARTBEAT_S"
HEARTBEAT_S = 30
# A journal has no heartbeat: a trial counts as orphaned once its folder is unlocked this long
# after it started (data loading and checks run before the folder is locked).
JOURNAL_GRACE_S = 600
MAX_RETRY = 2
# Opening a fresh database while other workers create its tables: tries before giving up.
SCHEMA_ATTEMPTS = 8


def default_storage(folder: pathlib.Path) -> str:
  return f"sqlite:///{(folder / 'study.db').resolve()}"


def open_storage(spec: str):
  """The Optuna storage ``spec`` names (see the module docstring)."""
  import optuna

  if spec.startswith(JOURNAL):
    path = spec[len(JOURNAL):]
    if not path:
      raise ConfigError("--storage journal:PATH needs a file path, e.g. journal:/shared/runs/"
                        "study.log (on the filesystem every worker sees)")
    from optuna.storages.journal import JournalFileBackend

    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(path))
  if "://" not in spec:
    raise ConfigError(f"--storage {spec!r} is neither journal:PATH nor a database URL "
                      "(sqlite:///PATH, postgresql://USER@HOST/DB)")
  try:
    _create_schema(spec)
    return _database(spec)
  except Exception as e:  # A driver missing, a server down: one line with the URL.
    raise ConfigError(f"--storage {spec}: cannot open the database ({type(e).__name__}: "
                      f"{str(e).splitlines()[0][:200]})") from e


def _database(spec: str, **engine_kwargs):
  import optuna

  beat = heartbeat_s()
  with _stable_enough():
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    return optuna.storages.RDBStorage(spec, heartbeat_interval=beat, grace_period=3 * beat,
                                      heartbeat_stale_trial_callback=retry,
                                      engine_kwargs=engine_kwargs or None)


def _create_schema(spec: str) -> None:
  """Optuna's tables in the database, created by this worker or another one starting with it.

  Opened without a connection pool, so that an attempt that lost the race (Optuna's
  constructor raises and drops its engine) leaves no connection open on the server.
  """
  from sqlalchemy.pool import NullPool

  for attempt in range(SCHEMA_ATTEMPTS):
    try:
      _database(spec, poolclass=NullPool).engine.dispose()
      return
    except Exception as e:
      if not _lost_schema_race(e) or attempt + 1 == SCHEMA_ATTEMPTS:
        raise
      time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))


def _lost_schema_race(error: Exception) -> bool:
  """Whether opening failed because another worker created Optuna's tables at that moment.

  Optuna creates its schema on first open; on a fresh PostgreSQL database, workers that
  start together collide on the same types and tables (UniqueViolation on
  ``pg_type_typname_nsp_index``, DuplicateObject, DuplicateTable), on SQLite on the row
  that records the schema's version (UNIQUE constraint on ``alembic_version``) or on the
  file's lock. The winner's schema is complete once it commits: opening again succeeds.
  """
  from sqlalchemy import exc

  if isinstance(error, exc.IntegrityError):  # Two inserts of Optuna's schema version.
    return True
  return isinstance(error, (exc.ProgrammingError, exc.OperationalError)) and any(
      words in str(error) for words in ("already exists", "database is locked"))


def heartbeat_s() -> int:
  """Seconds between a running trial's heartbeats (``JAXDL_HEARTBEAT_S``, default 30)."""
  value = os.environ.get(HEARTBEAT_ENV, str(HEARTBEAT_S))
  if not value.isdigit() or int(value) < 1:
    raise ConfigError(f"{HEARTBEAT_ENV}={value!r}: give whole seconds, at least 1 "
                      f"(default {HEARTBEAT_S})")
  return int(value)


@contextlib.contextmanager
def opened_storage(spec: str) -> Iterator:
  """``open_storage(spec)`` for the block; a database's connections are closed after it.

  SQLAlchemy pools a server's connections until the engine is disposed: without this,
  every report or load in a long-lived process (a notebook, a test session) would keep
  connections open on the server until Python happened to collect them.
  """
  storage = open_storage(spec)
  try:
    yield storage
  finally:
    engine = getattr(storage, "engine", None)  # RDBStorage's; a journal holds no connection.
    if engine is not None:
      storage.remove_session()
      engine.dispose()


def has_heartbeat(storage) -> bool:
  from optuna.storages._heartbeat import is_heartbeat_enabled

  return is_heartbeat_enabled(storage)


@contextlib.contextmanager
def beating(study, trial) -> Iterator[None]:
  """Keeps ``trial``'s heartbeat while the block runs (database storages; else nothing).

  Optuna beats for trials it runs in ``study.optimize``; jaxdl asks and tells, so it
  starts the same thread itself.
  """
  if not has_heartbeat(study._storage):
    yield
    return
  from optuna.storages._heartbeat import get_heartbeat_thread

  with get_heartbeat_thread(trial._trial_id, study._storage):
    yield


def fail_stale_trials(study) -> None:
  """Marks trials whose worker stopped beating as failed (and retried), before asking."""
  import optuna

  if has_heartbeat(study._storage):
    with _stable_enough():
      optuna.storages.fail_stale_trials(study)


def retry_orphans(study, folder: pathlib.Path, trial_folder,
                  grace_s: float = JOURNAL_GRACE_S) -> int:
  """A journal's trials left running by a worker that died: failed, and enqueued again.

  A trial is orphaned when it has run longer than ``grace_s`` and no live process holds
  its run folder's lock (the kernel dropped it with the process). Call it under the
  search's lock, so that one worker retries each orphan. Returns how many were retried.
  """
  import datetime

  from optuna.trial import TrialState

  from jaxdl.training.folder_lock import is_held

  if has_heartbeat(study._storage):
    return 0
  now = datetime.datetime.now()
  retried = 0
  for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
    started = trial.datetime_start or now
    if (now - started).total_seconds() < grace_s or is_held(folder / trial_folder(trial.number)):
      continue
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    retried += 1
  return retried


def retried_numbers(trials) -> set[int]:
  """The numbers of trials that were run again (by Optuna's callback or ``retry_orphans``)."""
  import optuna

  history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history
  numbers = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
  with _stable_enough():
    for trial in trials:
      numbers.update(history(trial))
  return numbers


@contextlib.contextmanager
def _stable_enough() -> Iterator[None]:
  """Optuna marks its retry callback experimental (since v2.8, unchanged since v3): quiet."""
  import optuna

  with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    yield


@contextlib.contextmanager
def asking_and_telling() -> Iterator[None]:
  """Optuna warns that heartbeats are meant for ``Study.optimize``; jaxdl asks and tells and
  keeps the heartbeat itself (``beating``), so the warning says nothing here."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
    yield
