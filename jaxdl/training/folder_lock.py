"""An exclusive lock on a run folder, so two processes never train into one folder.

The lock is ``flock`` on the folder's ``.jaxdl.lock`` file: the kernel drops it
when its process ends, however it ends, so the lock of a killed run is free
for the next one (which says whose lock it takes over). While held, the file
names the holder (PID, host, start time) for the error a second process gets;
on release it is emptied again, so a refused command leaves it as it was.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket
from collections.abc import Iterator

from jaxdl.errors import CheckpointError

LOCK_FILE = ".jaxdl.lock"


class RunLocked(CheckpointError):
  """Another process holds the run folder."""


class FolderLock:
  """Holds ``folder/.jaxdl.lock`` exclusively while entered.

  Args:
    folder: an existing folder.
    log: called with a message when the lock of a process that ended is taken over.
  """

  def __init__(self, folder: pathlib.Path, log=lambda message: None):
    self.folder, self.path, self._log = folder, folder / LOCK_FILE, log
    self._fd: int | None = None

  def __enter__(self) -> "FolderLock":
    try:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise CheckpointError(f"cannot lock {self.folder} ({e.strerror}); the run folder must be "
                            "writable: check its permissions or pass another --workdir") from e
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      holder = _read_holder(fd)
      os.close(fd)
      if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise CheckpointError(f"cannot lock {self.folder} ({e.strerror})") from e
      raise RunLocked(f"{self.folder} is in use by {holder}; wait for it to finish (or stop "
                      "it), or pass another --workdir") from None
    previous = _read_holder(fd) if os.fstat(fd).st_size else None
    if previous:
      self._log(f"{self.folder}: taking over the lock of {previous}, which has ended")
    _write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": datetime.datetime.now(datetime.timezone.utc).isoformat(
                               timespec="seconds")}))
    self._fd = fd
    return self

  def __exit__(self, *exc) -> None:
    if self._fd is None:
      return
    _write(self._fd, "")
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None


def _write(fd: int, text: str) -> None:
  os.ftruncate(fd, 0)
  os.pwrite(fd, text.encode(), 0)
  os.fsync(fd)


def _read_holder(fd: int) -> str:
  try:
    info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
  except (OSError, ValueError):
    info = {}
  if not info:
    return "another process"
  return f"PID {info.get('pid')} on host {info.get('host')} (since {info.get('since')})"


@contextlib.contextmanager
def waiting_lock(path: pathlib.Path) -> Iterator[None]:
  """Holds ``path`` (a lock file) exclusively, waiting for it: for short read-modify-writes
  that several processes make to one file (the shards of a sweep updating sweep.json)."""
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def is_held(folder: pathlib.Path) -> bool:
  """Whether a live process holds ``folder``'s run lock (False where there is no lock file)."""
  path = folder / LOCK_FILE
  if not path.exists():
    return False
  fd = os.open(path, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except OSError:
    return True
  else:
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
  finally:
    os.close(fd)
