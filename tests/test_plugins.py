"""A researcher's own model, data and objects through jaxdl's machinery (plugin_models.py)."""

import json
import re
import shutil

import chex
import numpy as np
import pytest
from PIL import Image

import jaxdl
import plugin_models
from conftest import EXPERIMENTS, Crash, comparable_files, crash_at_batch, experiment
from jaxdl import cli, models, parts
from jaxdl.errors import ConfigError, DataError
from jaxdl.training import load_run, train_and_evaluate, train_group
from jaxdl.training.saved_runs import handed_to_run


def _tiny_cnn_given():
  return parts.given(model=(parts.object_name(plugin_models.TinyCNN), plugin_models.TinyCNN))

QUICK = ("num_epochs=1", "batch_size=128")


def _experiment_file(folder, model_line: str, extra: str = "") -> str:
  """An experiment file in ``folder`` (beside a copy of plugin_models.py) naming a user model."""
  shutil.copy(plugin_models.__file__, folder / "my_models.py")
  path = folder / "my_experiment.py"
  path.write_text(f"import sys\nsys.path.insert(0, {str(EXPERIMENTS)!r})\n"
                  "from seed_cnn_digits import get_config as base\n"
                  f"{extra}\n"
                  "def get_config():\n  c = base()\n"
                  f"  {model_line}\n  return c\n")
  return str(path)


def test_a_module_class_beside_the_experiment_trains_with_its_own_checked_fields(tmp_path, capsys):
  config = _experiment_file(tmp_path, "c.model.name = 'my_models:TinyCNN'; c.model.features = 4")
  run = tmp_path / "run"
  assert cli.main(["train", config, "--workdir", str(run), "--quiet", "--config.num_epochs=2",
                   "--config.batch_size=128", "--config.model.dropout_rate=0.2"]) == 0
  saved = json.loads((run / "config.json").read_text())["model"]
  assert saved == {"name": "my_models:TinyCNN", "features": 4, "dropout_rate": 0.2,
                   "batch_norm": True}
  results = json.loads((run / "results.json").read_text())
  assert results["test_accuracy"] > 0.25 and results["model"] == "my_models:TinyCNN"  # Chance: 0.1.
  _, state, _ = load_run(run)
  assert state.batch_stats  # The user's BatchNorm statistics are trained and restored.
  assert cli.main(["eval", "--workdir", str(run)]) == 0
  capsys.readouterr()
  assert cli.main(["train", config, "--workdir", str(tmp_path / "typo"),
                   "--config.model.featurs=3"]) == 2
  assert ("'model.featurs' is not a field of model 'my_models:TinyCNN' (did you mean "
          "'model.features'?)") in capsys.readouterr().err
  assert cli.main(["cite", str(run)]) == 0
  bibtex = capsys.readouterr().out
  assert "title = {user model my_models:TinyCNN}" in bibtex and "lecun1998gradient" not in bibtex


@pytest.mark.slow
def test_the_experiment_files_get_model_and_a_factory(tmp_path):
  file = _experiment_file(tmp_path, "c.model.name = 'get_model'",
                          "from my_models import TinyCNN\n"
                          "def get_model(config, spec):\n"
                          "  return TinyCNN(features=3, num_classes=spec.num_classes)\n")
  results = jaxdl.train(file, tmp_path / "get_model", QUICK)
  assert results["num_params"] == _params(3, batch_norm=True)
  # A factory's fields are the ones the experiment file gives it (checked on the command line).
  (tmp_path / "factory").mkdir()
  file = _experiment_file(tmp_path / "factory",
                          "c.model.name = 'my_models:small_cnn'; c.model.features = 2")
  results = jaxdl.train(file, tmp_path / "factory" / "run", [*QUICK, "model.features=5"])
  assert results["num_params"] == _params(5, batch_norm=False)


def _params(features: int, batch_norm: bool) -> int:
  conv = 3 * 3 * features + features
  return conv + 2 * features * batch_norm + 14 * 14 * features * 10 + 10


def test_a_flax_nnx_module_plugs_in_through_the_bridge(tmp_path):
  results = jaxdl.train("experiments/seed_cnn_digits.py", tmp_path, [*QUICK, "num_epochs=3"],
                        model=plugin_models.NNXMLP)
  assert results["test_accuracy"] > 0.6, results
  run = jaxdl.load_run(tmp_path, model=plugin_models.NNXMLP)
  assert set(run.state.batch_stats) == {"norm"}
  test = run.experiment.datasets.test  # Predicting through the bridge, running averages on.
  predicted = run.predict(test.inputs).argmax(-1)
  assert np.mean(predicted == test.label) == pytest.approx(results["test_accuracy"])
  assert json.loads((tmp_path / "config.json").read_text())["model"] == {
      "name": "python:plugin_models.NNXMLP", "in_features": 784, "hidden": 32,
      "dropout_rate": 0.1}


def test_python_objects_and_a_prediction_in_two_lines(tmp_path):
  results = jaxdl.train("experiments/seed_cnn_digits.py", tmp_path,
                        ["num_epochs=20", "batch_size=64", "data.augment_shift=0",
                         "optim.learning_rate=1e-2"],
                        model=plugin_models.MLP, data=plugin_models.blobs)
  run = jaxdl.load_run(tmp_path, model=plugin_models.MLP, data=plugin_models.blobs)
  test = run.experiment.datasets.test
  predicted = run.predict(test.inputs).argmax(-1)
  assert np.mean(predicted == test.label) == pytest.approx(results["test_accuracy"])
  assert results["test_accuracy"] > 0.9
  assert run.spec.class_names == ("a", "b", "c") and run.spec.input_shape == (8,)
  with pytest.raises(ConfigError, match=r"Python object given to the API; pass it again \(model"):
    jaxdl.load_run(tmp_path, data=plugin_models.blobs)
  with pytest.raises(ConfigError, match=r"data source python:plugin_models.blobs .* \(data=\.\.\.\)"):
    jaxdl.load_run(tmp_path, model=plugin_models.MLP)


def test_objects_are_handed_over_for_one_block_under_the_names_the_config_records():
  mlp, blobs = (parts.object_name(o) for o in (plugin_models.MLP, plugin_models.blobs))
  with pytest.raises(ConfigError, match="pass it again"):
    models.resolve(mlp)
  with parts.given(model=(mlp, plugin_models.MLP), data=(blobs, plugin_models.blobs)):
    assert models.resolve(mlp).name == mlp and models.resolve(mlp).fields["hidden"] == 16
    assert jaxdl.data.resolve(blobs).user_data
    with parts.given(model=("seed_cnn", plugin_models.TinyCNN)):  # A saved run's name.
      assert models.resolve("seed_cnn").fields != models.BUILTIN["seed_cnn"].fields
      assert jaxdl.data.resolve(blobs).user_data  # The outer block's data stays handed over.
    assert models.resolve("seed_cnn") is models.BUILTIN["seed_cnn"]
  for name in (mlp, blobs):
    with pytest.raises(ConfigError, match="pass it again"):
      (models.resolve if name == mlp else jaxdl.data.resolve)(name)


def test_a_py_data_source_infers_its_spec(tmp_path):
  cfg = experiment("seed_cnn_digits", "data.name=py:plugin_models:line")
  datasets = jaxdl.build_data(cfg.data)
  spec = datasets.spec
  assert (spec.task, spec.input_shape, spec.num_test, spec.num_train + spec.num_val) == (
      "regression", (1,), 60, 240)
  results = jaxdl.train(cfg, tmp_path, ["num_epochs=30", "batch_size=32", "optim.learning_rate=3e-2",
                                        "data.augment_shift=0"], model=plugin_models.MLP)
  assert results["selection_metric"] == "val_loss" and results["test_mse"] < 0.05


@pytest.mark.parametrize("returned, message", [
    ("[1, 2]", "must return a dict of splits"),
    ("{'train': (np.zeros((5, 2)), np.zeros(4, int))}", "has 4 labels but 'inputs' has shape"),
    ("{'train': (np.zeros((5, 2)), np.zeros(5, int)), 'extra': (1, 2)}", "unknown split 'extra'"),
])
def test_a_bad_data_function_is_a_clear_error(tmp_path, returned, message):
  module = f"bad_data_{tmp_path.name}"  # A fresh module per case (Python caches imports).
  (tmp_path / f"{module}.py").write_text(f"import numpy as np\ndef make(cfg):\n  return {returned}\n")
  cfg = experiment("seed_cnn_digits", f"data.name=py:{module}:make")
  with pytest.raises(DataError, match=message):
    jaxdl.build_data(cfg.data, str(tmp_path / "exp.py"))


def _png(path, value: int, size: int = 10) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(value)
  pixels = np.clip(rng.normal(value, 30, (size, size)), 0, 255).astype(np.uint8)
  Image.fromarray(pixels, "L").save(path)


def test_an_image_folder_of_the_users_own_images(tmp_path):
  for split, count in (("train", 30), ("test", 10)):
    for label, value in (("cat", 60), ("dog", 190)):
      for i in range(count):
        _png(tmp_path / "pets" / split / label / f"{i}.png", value + i)
  cfg = experiment("seed_cnn_digits", f"data.name=imagefolder:{tmp_path / 'pets'}",
                   "data.image_size=20", "data.val_fraction=0.2")
  datasets = jaxdl.build_data(cfg.data)
  assert datasets.spec.class_names == ("cat", "dog") and datasets.spec.input_shape == (20, 20, 1)
  assert (datasets.spec.num_test, datasets.spec.num_val) == (20, 12)
  results = jaxdl.train(cfg, tmp_path / "run", ["num_epochs=10", "batch_size=16",
                                                 "optim.learning_rate=1e-2",
                                                 "data.augment_shift=0", "model.batch_norm=false"],
                        model=plugin_models.TinyCNN)
  assert results["test_accuracy"] == 1.0  # Dark cats, bright dogs.
  # Prediction on image files, read as imagefolder: reads them (here 30x30, resized to 20).
  new = tmp_path / "new"
  for name, value in (("dark.png", 70), ("bright.png", 200)):
    _png(new / name, value, size=30)
  run = jaxdl.load_run(tmp_path / "run", model=plugin_models.TinyCNN)
  files = [new / "dark.png", new / "bright.png"]
  assert run.predict_classes(files).tolist() == ["cat", "dog"]
  pixels = np.stack([np.asarray(Image.open(f).convert("L").resize((20, 20), Image.BILINEAR))
                     for f in files])[..., None]
  np.testing.assert_array_equal(run.predict(files), run.predict(pixels))
  written = jaxdl.predict_file(tmp_path / "run", new, model=plugin_models.TinyCNN)
  lines = written.read_text().splitlines()
  assert written == new / "predictions.csv" and lines[0].startswith("example,file,class,p_cat")
  assert [line.split(",")[1:3] for line in lines[1:]] == [["bright.png", "dog"], ["dark.png", "cat"]]
  (tmp_path / "pets" / "train" / "cat" / "broken.png").write_bytes(b"not a png")
  with pytest.raises(DataError, match="broken.png: cannot decode this image"):
    jaxdl.build_data(cfg.data)


def test_an_image_folder_without_splits_and_of_mixed_sizes(tmp_path):
  for label, value in (("a", 50), ("b", 200)):
    for i in range(10):
      _png(tmp_path / "one" / label / f"{i}.png", value, size=8 + i % 2)
  cfg = experiment("seed_cnn_digits", f"data.name=imagefolder:{tmp_path / 'one'}",
                   "data.image_size=0")
  with pytest.raises(DataError, match="different sizes .* set data.image_size"):
    jaxdl.build_data(cfg.data)
  cfg = experiment("seed_cnn_digits", f"data.name=imagefolder:{tmp_path / 'one'}",
                   "data.image_size=12")
  assert jaxdl.build_data(cfg.data).spec.num_test == 4  # 20% held out, by class.


@pytest.mark.slow
def test_explain_attributes_a_user_cnn_and_a_user_text_model(tmp_path):
  jaxdl.train("experiments/seed_cnn_digits.py", tmp_path / "cnn", QUICK,
              model=plugin_models.TinyCNN)
  summary = jaxdl.explain(tmp_path / "cnn", examples=1, steps=32, model=plugin_models.TinyCNN)
  assert "class_0.png" in summary["files"] and summary["lstm_gates"] is False
  assert "has no LSTM gates" in summary["lstm_gates_note"]
  texts = tmp_path / "texts"
  texts.mkdir()
  (texts / "t.pos").write_text("a good fun film\ngreat acting\nnice one\nlovely\nsuperb cast\n" * 2)
  (texts / "t.neg").write_text("a bad dull film\nawful acting\nboring one\nweak\npoor cast\n" * 2)
  jaxdl.train(str(EXPERIMENTS / "seed_lstm_mr.py"), tmp_path / "text",
              [f"data.name=textfile:{texts}", "data.encoding=utf-8", "num_epochs=2",
               "batch_size=4", "data.test_fraction=0.2"], model=plugin_models.BagOfWords)
  summary = jaxdl.explain(tmp_path / "text", examples=2, steps=64, model=plugin_models.BagOfWords)
  assert summary["max_abs_completeness_error"] < 1e-3  # IG through the intercepted Embed.
  assert "<span" in (tmp_path / "text" / "explain" / "tokens.html").read_text()


@pytest.mark.slow
def test_a_user_model_resumes_bitwise(tmp_path, monkeypatch):
  cfg = jaxdl.get_config("experiments/seed_cnn_digits.py", ["num_epochs=2", "batch_size=128",
                                                            "checkpoint_every_steps=3"],
                         model=plugin_models.TinyCNN)
  with _tiny_cnn_given():  # What jaxdl.train does with model=: the internals find it by name.
    train_and_evaluate(cfg, tmp_path / "whole", quiet=True)
    with monkeypatch.context() as patch:
      crash_at_batch(patch, 16)
      with pytest.raises(Crash):
        train_and_evaluate(cfg, tmp_path / "resumed", quiet=True)
    train_and_evaluate(cfg, tmp_path / "resumed", quiet=True)
  assert comparable_files(tmp_path / "resumed") == comparable_files(tmp_path / "whole")
  with handed_to_run(tmp_path / "whole", plugin_models.TinyCNN):
    whole = load_run(tmp_path / "whole")[1]
  with handed_to_run(tmp_path / "resumed", plugin_models.TinyCNN):
    resumed = load_run(tmp_path / "resumed")[1]
  chex.assert_trees_all_equal(whole, resumed)


@pytest.mark.slow
def test_dp_sgd_and_bfloat16_on_a_user_model(tmp_path):
  private = jaxdl.train("experiments/dp_cnn_digits.py", tmp_path / "dp",
                        ["num_epochs=1", "model.batch_norm=false", "model.dropout_rate=0.0"],
                        model=plugin_models.TinyCNN)
  assert private["privacy_epsilon"] > 0 and private["privacy_sampling"] == "poisson"
  with pytest.raises(ConfigError, match="batch norm"):
    jaxdl.train("experiments/dp_cnn_digits.py", tmp_path / "bn", ["num_epochs=1"],
                model=plugin_models.TinyCNN)
  half = jaxdl.train("experiments/seed_cnn_digits.py", tmp_path / "bf16",
                     [*QUICK, "num_epochs=3", "dtype=bfloat16"], model=plugin_models.TinyCNN)
  full = jaxdl.train("experiments/seed_cnn_digits.py", tmp_path / "f32", [*QUICK, "num_epochs=3"],
                     model=plugin_models.TinyCNN)
  assert abs(half["test_accuracy"] - full["test_accuracy"]) < 0.05


@pytest.mark.slow
def test_a_sweep_over_model_name_with_a_user_model_reports_and_cites(tmp_path, capsys):
  config = _experiment_file(tmp_path, "c.num_epochs = 1; c.batch_size = 128")
  folder = tmp_path / "sweep"
  assert cli.main(["sweep", config, "--workdir", str(folder), "--quiet", "--mode", "sequential",
                   "--sweep", "model.name=seed_cnn,my_models:TinyCNN", "--sweep", "seed=0:2"]) == 0
  capsys.readouterr()
  assert cli.main(["report", str(folder)]) == 0
  table = capsys.readouterr().out
  assert re.search(r"\| seed_cnn \| 1=? \| 2 \|", table)
  assert re.search(r"\| my_models:TinyCNN \| [12]=? \| 2 \|", table)
  assert cli.main(["cite", str(folder)]) == 0
  bibtex = capsys.readouterr().out
  assert "lecun1998gradient" in bibtex and "user model my_models:TinyCNN" in bibtex
  assert cli.main(["plot", str(folder), "--out", str(tmp_path / "plots")]) == 0


@pytest.mark.slow
def test_vectorized_user_model_members_equal_their_lone_runs(tmp_path):
  configs = [jaxdl.get_config("experiments/seed_cnn_digits.py", [*QUICK, f"seed={s}",
                                                                 "data.augment_shift=0"],
                              model=plugin_models.TinyCNN) for s in (0, 1)]
  with _tiny_cnn_given():
    together = train_group(configs, [tmp_path / "v0", tmp_path / "v1"], vectorized=True,
                           quiet=True)
    for i, config in enumerate(configs):
      alone = train_and_evaluate(config, tmp_path / f"a{i}", quiet=True)
      assert together[i]["test_loss"] == pytest.approx(alone["test_loss"], rel=1e-3)


def test_cite_names_the_users_data_and_the_known_datasets(tmp_path, capsys):
  with pytest.raises(ConfigError, match="data.augment_shift=2 shifts images"):
    jaxdl.train("experiments/seed_cnn_digits.py", tmp_path / "bad", ["num_epochs=1"],
                model=plugin_models.MLP, data=plugin_models.blobs)
  jaxdl.train("experiments/seed_cnn_digits.py", tmp_path / "blobs",
              ["num_epochs=1", "data.augment_shift=0"], model=plugin_models.MLP,
              data=plugin_models.blobs)
  assert cli.main(["cite", str(tmp_path / "blobs")]) == 0
  bibtex = capsys.readouterr().out
  assert "title = {user data python:plugin_models.blobs}" in bibtex
  assert "title = {user model python:plugin_models.MLP}" in bibtex
  assert "alpaydin1998optdigits" not in bibtex  # Not the digits: the user's data.


def _git(folder, *args):
  import subprocess

  return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                        check=True).stdout.strip()


@pytest.mark.slow
def test_the_users_code_is_hashed_copied_and_a_rerun_after_an_edit_is_refused(tmp_path, capsys):
  """provenance.json names the experiment file and the model's module with their hashes and
  their repository's commit; cite names that commit; an edited model refuses the rerun (it
  silently returned the old results before)."""
  import hashlib

  shutil.copy(plugin_models.__file__, tmp_path / "provenance_models.py")
  experiment_file = tmp_path / "prov_experiment.py"
  experiment_file.write_text(f"import sys\nsys.path.insert(0, {str(EXPERIMENTS)!r})\n"
                             "from seed_cnn_digits import get_config as base\n"
                             "def get_config():\n  c = base()\n"
                             "  c.model.name = 'provenance_models:TinyCNN'\n  return c\n")
  _git(tmp_path, "init", "-q")
  _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty",
       "-m", "start")
  _git(tmp_path, "add", "provenance_models.py", "prov_experiment.py")
  _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "model")
  head = _git(tmp_path, "rev-parse", "HEAD")
  run = tmp_path / "run"
  argv = ["train", str(experiment_file), "--workdir", str(run), "--quiet",
          "--config.num_epochs=1", "--config.batch_size=256"]
  assert cli.main(argv) == 0
  code = json.loads((run / "provenance.json").read_text())["user_code"]
  by_role = {e["role"]: e for e in code}
  assert set(by_role) == {"experiment", "model"}
  model = by_role["model"]
  source = (tmp_path / "provenance_models.py").read_bytes()
  assert model["sha256"] == hashlib.sha256(source).hexdigest()
  assert (model["git_commit"], model["git_dirty"]) == (head, False)
  assert (run / model["copy"]).read_bytes() == source
  capsys.readouterr()
  assert cli.main(["cite", str(run)]) == 0
  assert f"provenance_models.py at commit {head}" in capsys.readouterr().out
  assert cli.main(argv) == 0  # The same code: a finished run, nothing changes.
  with open(tmp_path / "provenance_models.py", "a") as f:
    f.write("\n# An edit after training.\n")
  capsys.readouterr()
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert "holds a run of different code (model provenance_models.py: sha256" in err


def test_a_model_record_is_accepted_at_an_import_path():
  """A ModelPart exported by the researcher's module is a part like a built-in one."""
  config = experiment("seed_cnn_digits", "model.name=plugin_models:TINY_PART", "model.width=3")
  assert config.model.to_dict() == {"name": "plugin_models:TINY_PART", "width": 3}
  part = models.resolve(config.model.name, config.experiment)
  assert part.name == "plugin_models:TINY_PART" and part.description == "a tiny CNN of my own"
  with pytest.raises(ConfigError, match="did you mean 'model.width'"):
    experiment("seed_cnn_digits", "model.name=plugin_models:TINY_PART", "model.widht=3")


_CELL = '''
import flax.linen as nn

class CellModel(nn.Module):
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, *, train: bool):
    return nn.Dense(self.num_classes)(x.reshape(len(x), -1))
'''


def _cell_model(name: str, keep_source: bool):
  """A model class as a notebook defines it: its module has no file; the cell's source is in
  linecache (as IPython keeps it) or nowhere (an exec'd string)."""
  import linecache
  import sys
  import types

  filename = f"<cell-{name}>"
  if keep_source:
    linecache.cache[filename] = (len(_CELL), None, _CELL.splitlines(True), filename)
  module = types.ModuleType(name)
  sys.modules[name] = module
  exec(compile(_CELL, filename, "exec"), module.__dict__)
  return module.CellModel


@pytest.mark.parametrize("keep_source", [True, False])
def test_a_model_defined_in_a_notebook_records_the_source_python_kept(tmp_path, keep_source):
  """A notebook's class has no file to hash; the run crashed (OSError) before. Now its kept
  source is hashed and copied into code/, or the run says it has none, and cite says which."""
  import hashlib

  model = _cell_model(f"cell_{keep_source}", keep_source)
  jaxdl.train("experiments/seed_cnn_digits.py", tmp_path, ["num_epochs=1", "batch_size=256"],
              model=model)
  (entry,) = [e for e in json.loads((tmp_path / "provenance.json").read_text())["user_code"]
              if e["role"] == "object"]
  assert entry["path"] is None and entry["name"].endswith("CellModel (defined interactively)")
  assert "source" not in entry
  bibtex = jaxdl.cite(tmp_path)
  if keep_source:
    copied = (tmp_path / entry["copy"]).read_text()
    assert "def __call__" in copied and "nn.Dense(self.num_classes)" in copied
    assert entry["sha256"] == hashlib.sha256(copied.encode()).hexdigest()
    assert f"its source in the run's {entry['copy']}" in bibtex
  else:
    assert entry["sha256"] is None and entry["copy"] is None
    assert "no source kept, so the run cannot show its code" in bibtex


_NOISY_LINES = '''
import numpy as np
import jaxdl

REFERENCE = """@misc{lines2026,
  title = {Noisy lines},
  year = {2026}
}"""


def _make(cfg):
  rng = np.random.default_rng(cfg.split_seed)
  x = rng.uniform(-1, 1, (cfg.examples, 1)).astype(np.float32)
  y = (2 * x[:, 0] + 1 + rng.normal(0, cfg.noise, cfg.examples)).astype(np.float32)
  return {"train": (x, y), "test": (x[:50], y[:50])}


SOURCE = jaxdl.DataSource.from_function(_make, fields={"examples": 300, "noise": 0.05},
                                        references=(REFERENCE,))
'''


def test_a_data_source_record_at_an_import_path_has_its_own_fields_and_reference(
    tmp_path, capsys):
  (tmp_path / "noisy_lines.py").write_text(_NOISY_LINES)
  (tmp_path / "exp.py").write_text(
      "from jaxdl.configs import default\n\n\ndef get_config():\n"
      "  config = default.get_config()\n  config.data.name = 'noisy_lines:SOURCE'\n"
      "  config.data.noise = 0.5\n  config.model.name = 'plugin_models:MLP'\n"
      "  config.num_epochs = 1\n  return config\n")
  config = jaxdl.get_config(str(tmp_path / "exp.py"))
  assert (config.data.examples, config.data.noise) == (300, 0.5)  # Default, and the file's.
  assert "image_size" not in config.data  # Not a field of this source.
  spec = jaxdl.build_data(config.data, config.experiment).spec
  assert spec.num_train + spec.num_val == 300 and spec.num_test == 50
  bigger = jaxdl.get_config(config, ["data.examples=500"])
  assert jaxdl.build_data(bigger.data, config.experiment).spec.num_train + \
      jaxdl.build_data(bigger.data, config.experiment).spec.num_val == 500
  with pytest.raises(ConfigError, match=r"'data.noize' is not a field of data source "
                     r"'noisy_lines:SOURCE' \(did you mean 'data.noise'\?\)"):
    jaxdl.get_config(config, ["data.noize=0.1"])
  assert cli.main(["train", str(tmp_path / "exp.py"), "--workdir", str(tmp_path / "run"),
                   "--quiet"]) == 0
  saved = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
  assert (saved["examples"], saved["noise"]) == (300, 0.5)
  capsys.readouterr()
  assert cli.main(["cite", str(tmp_path / "run")]) == 0
  assert "@misc{lines2026," in capsys.readouterr().out
