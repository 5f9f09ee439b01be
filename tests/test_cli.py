"""The command line: one-line errors with exit status 2, and a real train + eval."""

import json

import pytest

from conftest import EXPERIMENTS
from jaxdl import cli
from jaxdl.configs import load_config
from jaxdl.errors import ConfigError

DIGITS = str(EXPERIMENTS / "seed_cnn_digits.py")


def _run(capsys, *argv):
  code = cli.main(list(argv))
  out, err = capsys.readouterr()
  return code, out, err


@pytest.mark.parametrize("override, message", [
    ("--config.optim.lr=3", "unknown config key 'optim.lr'"),
    ("--config.optim.learnin_rate=3", "did you mean 'optim.learning_rate'"),
    ("--config.num_epochs=ten", "config key 'num_epochs' expects an int, got 'ten'"),
    ("--config.data.standardize=maybe", "expects a bool"),
    ("--lr=3", "unrecognised argument '--lr=3'"),
])
def test_bad_overrides_are_one_line_errors(capsys, tmp_path, override, message):
  code, _, err = _run(capsys, "train", DIGITS, "--workdir", str(tmp_path / "run"), override)
  assert code == cli.EXIT_USER_ERROR
  assert message in err
  assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
  assert not (tmp_path / "run").exists()  # Nothing written for a rejected config.


def test_config_file_without_get_config(capsys, tmp_path):
  path = tmp_path / "broken.py"
  path.write_text("x = 1\n")
  code, _, err = _run(capsys, "train", str(path), "--workdir", str(tmp_path / "run"))
  assert code == 2 and "does not define get_config()" in err


def test_missing_config_file(capsys, tmp_path):
  code, _, err = _run(capsys, "train", str(tmp_path / "nope.py"))
  assert code == 2 and "does not exist" in err


def test_debug_shows_the_traceback(tmp_path):
  with pytest.raises(ConfigError):
    cli.main(["--debug", "train", DIGITS, "--workdir", str(tmp_path), "--config.optim.lr=3"])


def test_config_arg_selects_a_variant():
  assert load_config(f"{EXPERIMENTS / 'seed_cnn_mnist.py'}:idx").data.name.startswith("idx:")


@pytest.mark.slow
def test_train_then_eval(capsys, tmp_path):
  workdir = str(tmp_path / "run")
  code, out, _ = _run(capsys, "train", DIGITS, "--workdir", workdir, "--quiet",
                      "--config.num_epochs=1", "--config.batch_size", "128")
  assert code == 0
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["steps"] == 11 and results["epochs"] == 1
  code, out, _ = _run(capsys, "eval", "--workdir", workdir)
  assert code == 0
  evaluated = json.loads((tmp_path / "run" / "eval.json").read_text())
  assert evaluated["test_accuracy"] == results["test_accuracy"]
  assert evaluated["test_loss"] == pytest.approx(results["test_loss"], rel=1e-6)


def test_eval_of_a_folder_that_is_not_a_run(capsys, tmp_path):
  code, _, err = _run(capsys, "eval", "--workdir", str(tmp_path))
  assert code == 2 and "not a run folder" in err


def test_reproduce_takes_kims_options_for_kim2014_only(capsys, tmp_path):
  code, _, err = _run(capsys, "reproduce", "--workdir", str(tmp_path / "r"), "--seeds", "2")
  assert code == 2 and "--seeds, --split-seeds and --datasets are for" in err
  with pytest.raises(SystemExit):  # argparse: "must be at least 1".
    _run(capsys, "reproduce", "kim2014", "--workdir", str(tmp_path / "r"), "--seeds", "0")
  assert "must be at least 1, got 0" in capsys.readouterr().err
  assert not (tmp_path / "r").exists()
