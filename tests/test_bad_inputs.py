"""Bad inputs and faults at the command line: one line, exit 2, and nothing on disk changed.

Each case is a row of a table. ``changes_nothing`` snapshots a folder's files
(names and bytes) before a refused command and compares them after.
"""

import errno
import gzip
import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from conftest import EXPERIMENTS, ROOT
from jaxdl import cli
from jaxdl.training.checkpoint import Checkpointer
from jaxdl.training.folder_lock import FolderLock

DIGITS = str(EXPERIMENTS / "seed_cnn_digits.py")
QUICK = ["--config.num_epochs=1", "--config.batch_size=256"]


def snapshot(folder: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
          if p.is_file()}


def refused(capsys, argv, message) -> str:
  """Runs the CLI, expects exit 2 with one line containing ``message``; returns that line."""
  capsys.readouterr()  # What earlier commands of the test printed.
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip()
  errors = [line for line in err.splitlines() if line.startswith("jaxdl: error:")]
  assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err  # Progress lines aside.
  assert message in errors[0], err
  assert "Traceback" not in err
  return errors[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("finished") / "run"
  assert cli.main(["train", DIGITS, "--workdir", str(workdir), "--quiet", *QUICK]) == 0
  return workdir


# --- data loss -----------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.slow
def test_overwrite_refuses_a_folder_that_is_not_jaxdls(tmp_path, capsys, command):
  thesis = tmp_path / "mythesis"
  thesis.mkdir()
  (thesis / "chapter1.tex").write_text("important")
  argv = [command, DIGITS, "--workdir", str(thesis), "--overwrite", "--quiet", *QUICK]
  if command == "sweep":
    argv += ["--sweep", "seed=0:2"]
  refused(capsys, argv, "holds chapter1.tex")
  assert (thesis / "chapter1.tex").read_text() == "important"


@pytest.mark.slow
def test_overwrite_deletes_only_what_jaxdl_wrote(tmp_path, capsys):
  run = tmp_path / "run"
  assert cli.main(["train", DIGITS, "--workdir", str(run), "--quiet", *QUICK]) == 0
  (run / "notes.txt").write_text("mine")
  assert cli.main(["train", DIGITS, "--workdir", str(run), "--quiet", "--overwrite", *QUICK,
                   "--config.seed=1"]) == 0
  assert (run / "notes.txt").read_text() == "mine"
  assert json.loads((run / "config.json").read_text())["seed"] == 1


@pytest.mark.slow
def test_a_sweep_overwrite_keeps_the_users_files(tmp_path, capsys):
  sweep = tmp_path / "sweep"
  argv = ["sweep", DIGITS, "--workdir", str(sweep), "--quiet", "--mode", "sequential", *QUICK]
  assert cli.main([*argv, "--sweep", "seed=0:2"]) == 0
  (sweep / "notes.txt").write_text("mine")
  assert cli.main([*argv, "--sweep", "seed=5:6", "--overwrite"]) == 0
  assert (sweep / "notes.txt").read_text() == "mine"
  assert not (sweep / "m001").exists()
  assert json.loads((sweep / "m000" / "config.json").read_text())["seed"] == 5


@pytest.mark.parametrize("override, message", [
    ("--config.model.name=resnet", "unknown model.name 'resnet'"),
    ("--config.optim.learning_rate=-1.0", "'optim.learning_rate' must be > 0"),
    ("--config.optim.momentum=0.5", "unknown config key 'optim.momentum'"),  # Adam has none.
    ("--config.data.name=idx:/nonexistent", "does not exist"),
])
def test_overwrite_checks_everything_before_it_deletes(finished_run, capsys, override, message):
  before = snapshot(finished_run)
  refused(capsys, ["train", DIGITS, "--workdir", str(finished_run), "--quiet", "--overwrite",
                   *QUICK, override], message)
  assert snapshot(finished_run) == before


def test_a_refused_config_leaves_no_folder_behind(tmp_path, capsys):
  workdir = tmp_path / "new"
  refused(capsys, ["train", DIGITS, "--workdir", str(workdir), *QUICK,
                   "--config.model.name=resnet"], "unknown model.name")
  assert not workdir.exists()
  assert cli.main(["train", DIGITS, "--workdir", str(workdir), "--quiet", *QUICK]) == 0


def test_a_refused_rerun_changes_nothing(finished_run, capsys):
  before = snapshot(finished_run)
  refused(capsys, ["train", DIGITS, "--workdir", str(finished_run), "--quiet", *QUICK,
                   "--config.seed=3"], "holds a run of a different config (seed: 0 -> 3)")
  assert snapshot(finished_run) == before


def test_a_held_run_folder_is_refused_naming_its_holder(finished_run, capsys):
  before = snapshot(finished_run)
  with FolderLock(finished_run):
    err = refused(capsys, ["train", DIGITS, "--workdir", str(finished_run), "--quiet", *QUICK],
                  "is in use by PID")
  assert f"PID {__import__('os').getpid()}" in err
  assert snapshot(finished_run) == before


@pytest.mark.slow
def test_two_processes_never_share_a_run_folder_and_a_dead_holder_is_taken_over(tmp_path):
  workdir = tmp_path / "run"
  argv = [sys.executable, "-m", "jaxdl.cli", "train", DIGITS, "--workdir", str(workdir),
          "--quiet", "--config.num_epochs=20", "--config.batch_size=32"]
  first = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
  lock = workdir / ".jaxdl.lock"
  end = time.monotonic() + 120
  while not (lock.exists() and lock.read_text()) and time.monotonic() < end:
    time.sleep(0.05)
  # Frozen while it holds the lock: on a loaded machine it could otherwise finish its epochs
  # (and release the lock) before the other processes start.
  first.send_signal(signal.SIGSTOP)
  second = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert second.returncode == 2 and f"in use by PID {first.pid}" in second.stderr
  first.send_signal(signal.SIGKILL)
  first.communicate(timeout=60)
  assert first.returncode == -signal.SIGKILL
  third = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert third.returncode == 0, third.stderr
  assert f"taking over the lock of PID {first.pid}" in third.stderr


def test_eval_refuses_a_run_whose_vocabulary_is_missing(tmp_path, capsys):
  folder = tmp_path / "texts"
  folder.mkdir()
  (folder / "t.pos").write_text("a good fun film\ngreat acting\nnice one\nlovely\nsuperb cast\n")
  (folder / "t.neg").write_text("a bad dull film\nawful acting\nboring one\nweak\npoor cast\n")
  run = tmp_path / "run"
  assert cli.main(["train", str(EXPERIMENTS / "seed_lstm_mr.py"), "--workdir", str(run),
                   "--quiet", f"--config.data.name=textfile:{folder}",
                   "--config.data.encoding=utf-8", "--config.num_epochs=1",
                   "--config.batch_size=4", "--config.data.val_fraction=0.2",
                   "--config.data.test_fraction=0.2",
                   "--config.model.hidden_sizes=(4,)", "--config.model.embed_dim=4"]) == 0
  (run / "vocab.json").unlink()
  refused(capsys, ["eval", "--workdir", str(run)], "vocab.json is missing")
  assert not (run / "eval.json").exists()


# --- silently wrong --------------------------------------------------------------------------------

def _experiment_file(tmp_path, body: str) -> str:
  path = tmp_path / "exp.py"
  path.write_text(f"import sys\nsys.path.insert(0, {str(EXPERIMENTS)!r})\n"
                  "from seed_cnn_digits import get_config as base\n"
                  f"def get_config():\n  c = base()\n  {body}\n  return c\n")
  return str(path)


@pytest.mark.parametrize("body, message", [
    ("c.optim.lr = 0.1", "config key 'optim.lr' is not a field of optimizer 'adam' (did you "
     "mean 'optim.learning_rate'?)"),
    ("c.num_epoch = 3", "sets unknown config key 'num_epoch' (did you mean 'num_epochs'?)"),
    ("c.num_epochs = 'ten'", "get_config() failed: TypeError: Could not override field "
     "'num_epochs'"),
    ("c.model.name = 'seq_rnn'; c.model.hidden_sizes = (64, 'x')",
     "'model.hidden_sizes' must be one positive int per layer"),
    ("c.model.widths = (8,)", "config key 'model.widths' is not a field of model 'seed_cnn'"),
    ("c.privacy = {'enabled': 1}", "sets config key 'privacy.enabled' to 1, but it expects a bool"),
])
def test_the_experiment_files_own_keys_are_checked(tmp_path, capsys, body, message):
  refused(capsys, ["train", _experiment_file(tmp_path, body), "--workdir",
                   str(tmp_path / "run")], message)
  assert not (tmp_path / "run").exists()


def _texts(tmp_path, table: str) -> str:
  folder = tmp_path / "texts"
  folder.mkdir()
  (folder / "train.tsv").write_text(table)
  return f"--config.data.name=textfile:{folder}"


@pytest.mark.parametrize("table, message", [
    ("text\tlabel\n" + "".join(f"words {i}\tpos\n" for i in range(20)), "one class only ('pos'"),
    ("text\tlabel\nnice\tpos\nbad\tneg\nfine\t\nugly\tneg\n", "train.tsv:4: the 'label' column is "
     "empty or missing"),
    ("text\tlabel\nnice\tpos\nbad\tneg\nfine\nugly\tneg\n", "train.tsv:4: the 'label' column is "
     "empty or missing"),
])
def test_bad_labels_are_data_errors_naming_file_and_line(tmp_path, capsys, table, message):
  refused(capsys, ["train", str(EXPERIMENTS / "seed_lstm_mr.py"), "--workdir",
                   str(tmp_path / "run"), _texts(tmp_path, table), "--config.data.encoding=utf-8",
                   "--config.batch_size=2"], message)


def test_one_class_of_images_is_refused(tmp_path, capsys):
  folder = tmp_path / "idx"
  folder.mkdir()
  _write_idx(folder / "train-images-idx3-ubyte.gz", bytes([0, 0, 8, 3]), (20, 28, 28))
  _write_idx(folder / "train-labels-idx1-ubyte.gz", bytes([0, 0, 8, 1]), (20,))
  refused(capsys, ["train", DIGITS, "--workdir", str(tmp_path / "run"),
                   f"--config.data.name=idx:{folder}", "--config.data.image_size=0"],
          "one class only (0)")


def _write_idx(path: pathlib.Path, magic: bytes, shape: tuple[int, ...], fill: int = 0) -> None:
  header = magic + b"".join(int(d).to_bytes(4, "big") for d in shape)
  count = 1
  for d in shape:
    count *= d
  path.write_bytes(gzip.compress(header + bytes([fill]) * count))


def test_a_corrupt_checkpoint_is_found_and_resume_falls_back_to_the_one_before(tmp_path, capsys):
  run = tmp_path / "run"
  argv = ["train", DIGITS, "--workdir", str(run), "--quiet", "--config.num_epochs=2",
          "--config.batch_size=256", "--config.select.metric=last"]
  assert cli.main(argv) == 0
  capsys.readouterr()
  reference = json.loads((run / "results.json").read_text())
  latest = max(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
  victim = next(p for p in (run / "checkpoints" / str(latest) / "state").rglob("*")
                if p.is_file() and p.stat().st_size > 1000)
  data = bytearray(victim.read_bytes())
  data[len(data) // 2] ^= 0xFF  # One flipped byte.
  victim.write_bytes(bytes(data))
  refused(capsys, ["eval", "--workdir", str(run)], f"checkpoint {run.resolve() / 'checkpoints'}")
  (run / "results.json").unlink()
  assert cli.main(argv) == 0
  assert "is corrupt" in capsys.readouterr().err
  resumed = json.loads((run / "results.json").read_text())
  assert resumed["test_loss"] == reference["test_loss"]


# --- one line instead of a traceback ----------------------------------------------------------

BAD_OVERRIDES = [
    ("--config.model.name=deep_cnn --config.model.widths=abc",
     "'model.widths' must be one positive int per stage"),
    ("--config.model.name=seq_rnn --config.model.hidden_sizes=abc",
     "'model.hidden_sizes' must be one positive int per layer"),
    # Ranges are checked before any data is read (the folder does not exist).
    ("--config.data.name=textfile:/nonexistent --config.data.max_len=0",
     "'data.max_len' must be at least 1"),
    ("--config.data.name=textfile:/nonexistent --config.data.max_len=-3",
     "'data.max_len' must be at least 1"),
    ("--config.data.max_len=60", "'data.max_len' is not a field of data source 'digits'; its "
     "fields: augment_shift, image_size, standardize; every source's: "),
    ("--config.data.image_sise=28", "(did you mean 'data.image_size'?)"),
    ("--config.model.name=text_rnn --config.model.embed_dim=0",
     "'model.embed_dim' must be at least 1"),
    ("--config.model.name=deep_cnn --config.model.dropout_rate=-0.5",
     "'model.dropout_rate' must be in [0, 1)"),
    ("--config.model.name=deep_cnn --config.model.dropout_rate=2.0",
     "'model.dropout_rate' must be in [0, 1)"),
    ("--config.model.dropout_rate=0.5", "'model.dropout_rate' is not a field of model "
     "'seed_cnn'"),
    ("--config.data.val_fraction=1.5", "'data.val_fraction' must be in [0, 1)"),
    ("--config.data.test_fraction=0", "the test split is empty (train 1618); raise "
     "data.test_fraction"),
    ("--config.optim.learning_rate=-1", "'optim.learning_rate' must be > 0"),
    ("--config.data.folds=5 --config.data.fold=5", "data.fold=5 must be below data.folds=5"),
    ("--config.data.fold=7", "data.fold=7 needs data.folds=k"),
]


@pytest.mark.parametrize("override, message", BAD_OVERRIDES)
def test_bad_values_are_one_line(tmp_path, capsys, override, message):
  refused(capsys, ["train", DIGITS, "--workdir", str(tmp_path / "run"), *override.split()],
          message)
  assert not (tmp_path / "run").exists()


def test_bad_config_files_and_variants_are_one_line(tmp_path, capsys):
  refused(capsys, ["train", str(EXPERIMENTS / "seed_cnn_mnist.py:bogus")],
          "get_config('bogus') failed: ValueError: unknown variant 'bogus'")
  refused(capsys, ["train", DIGITS + ":foo"], "has no variants")
  text = tmp_path / "exp.txt"
  text.write_text("get_config = None")
  refused(capsys, ["train", str(text)], "is not a Python file")


def test_bad_data_files_are_one_line(tmp_path, capsys):
  corrupt = tmp_path / "corrupt"
  corrupt.mkdir()
  good = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 1, 0]))
  (corrupt / "train-images-idx3-ubyte.gz").write_bytes(good[:10] + b"\xff" * 20 + good[30:])
  (corrupt / "train-labels-idx1-ubyte.gz").write_bytes(good)
  refused(capsys, ["train", DIGITS, "--workdir", str(tmp_path / "a"),
                   f"--config.data.name=idx:{corrupt}"], "the file is missing or corrupt")
  empty = tmp_path / "empty"
  empty.mkdir()
  _write_idx(empty / "train-images-idx3-ubyte.gz", bytes([0, 0, 8, 3]), (0, 28, 28))
  _write_idx(empty / "train-labels-idx1-ubyte.gz", bytes([0, 0, 8, 1]), (0,))
  refused(capsys, ["train", DIGITS, "--workdir", str(tmp_path / "b"),
                   f"--config.data.name=idx:{empty}"], "holds 0 images")


def test_bad_sweeps_workdirs_and_explain_arguments_are_one_line(tmp_path, finished_run, capsys):
  refused(capsys, ["sweep", DIGITS, "--workdir", str(tmp_path / "s"), "--sweep", "seed=0:5:0"],
          "the step must be at least 1")
  a_file = tmp_path / "afile"
  a_file.write_text("x")
  refused(capsys, ["train", DIGITS, "--workdir", str(a_file)], "is a file, not a folder")
  for examples in ("-3", "0"):
    refused(capsys, ["explain", "--workdir", str(finished_run), "--examples", examples],
            "--examples must be at least 1")


@pytest.mark.parametrize("code, message", [(errno.ENOSPC, "no space left on the device"),
                                           (errno.EROFS, "read-only file system")])
def test_a_full_or_read_only_disk_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch,
                                                            code, message):
  run = tmp_path / "run"
  argv = ["train", DIGITS, "--workdir", str(run), "--quiet", "--config.num_epochs=2",
          "--config.batch_size=256", "--config.select.metric=last"]
  real = Checkpointer._write_checksums
  calls = {"n": 0}

  def failing(self, step):
    calls["n"] += 1
    if calls["n"] == 2:  # Epoch 2's checkpoint: the disk fills up while it is written.
      raise OSError(code, __import__("os").strerror(code), str(self.directory))
    return real(self, step)

  monkeypatch.setattr(Checkpointer, "_write_checksums", failing)
  refused(capsys, argv, message)
  monkeypatch.setattr(Checkpointer, "_write_checksums", real)
  assert cli.main(argv) == 0
  rows = (run / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(r)["epoch"] for r in rows] == [1, 2]
