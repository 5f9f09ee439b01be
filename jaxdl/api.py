"""The Python API: what the ``jaxdl`` command does, for scripts and notebooks.

    import jaxdl
    results = jaxdl.train("experiments/seed_cnn_digits.py", "runs/a", model=MyResNet)
    run = jaxdl.load_run("runs/a")
    logits = run.predict(images)

Wherever the command takes a name or an import path, these functions also
take the Python object: ``model=`` a ``flax.linen.Module`` class, a Flax NNX
``Module`` class, a factory ``f(model_config, spec)`` or a module instance;
``data=`` a function ``f(data_config)`` returning the splits (see
``jaxdl.data.python_source``). A run trained on objects records their names;
pass the same objects again to load or evaluate it. Each function hands its
objects over once (``parts.given``), under the names the config records; below
it they are found by name, like a built-in part.
"""

import csv
import dataclasses
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdl import data as data_lib
from jaxdl.data import image_folder
from jaxdl.data import text as text_lib
from jaxdl import parts
from jaxdl.configs.data_fields import complete_data, rename_data
from jaxdl.configs.loading import apply_overrides, load_config, load_sweep
from jaxdl.configs.model_fields import rename_model
from jaxdl.data.spec import DataSpec
from jaxdl.errors import ConfigError
from jaxdl.sweeps.axes import Axis, axes_from_mapping, parse_axis
from jaxdl.training.experiment import Experiment
from jaxdl.training.loop import train_and_evaluate
from jaxdl.training.saved_runs import evaluate_run, handed_to_run, load_run as restore_run
from jaxdl.training.state import TrainState
from jaxdl.training.steps import apply_model

Config = ml_collections.ConfigDict | str
Overrides = Sequence[str] | Mapping[str, Any]


def get_config(config: Config, overrides: Overrides = (), *, model: Any = None,
               data: Callable | None = None) -> ml_collections.ConfigDict:
  """A locked config from an experiment file (``path.py[:arg]``) or a ConfigDict.

  Args:
    config: the experiment file, or a config.
    overrides: ``["key=value", ...]`` or ``{"key": value}``, checked as on the command line.
    model: the model as a Python object; ``config.model`` gets its fields.
    data: the data function; ``config.data.name`` names it.
  """
  base = load_config(config) if isinstance(config, str) else config
  base = apply_overrides(base, {})  # A locked copy: the caller's config is never changed.
  if not isinstance(config, str):  # Built in Python: its data source's fields, as loading adds.
    complete_data(base)
  with _handed_over(model, data):
    if model is not None:
      rename_model(base, parts.object_name(model))
    if data is not None:
      rename_data(base, parts.object_name(data))
    return apply_overrides(base, overrides)


def _handed_over(model: Any, data: Callable | None):
  """The API's objects for the block, under the names ``get_config`` gives them."""
  named = lambda obj: (parts.object_name(obj) if obj is not None else "", obj)
  return parts.given(model=named(model), data=named(data))


def train(config: Config, workdir: str | pathlib.Path, overrides: Overrides = (), *,
          model: Any = None, data: Callable | None = None, quiet: bool = True,
          overwrite: bool = False) -> dict[str, Any]:
  """Trains (or resumes) a run in ``workdir`` and returns its results.json (``jaxdl train``).

  Args:
    config: an experiment file (``path.py``, or ``path.py:ARG`` for ``get_config(ARG)``) or a
      ConfigDict (from ``get_config``).
    workdir: the run folder; a folder holding this run resumes it, one holding another run is
      refused unless ``overwrite``.
    overrides: ``["key=value", ...]`` or ``{"key": value}``, checked as on the command line.
    model: a model object (a linen or NNX Module class, a factory, an instance) instead of
      ``config.model.name``; pass the same object to ``load_run`` and ``evaluate``.
    data: a data function ``f(data_config)`` returning the splits, instead of ``data.name``.
    quiet: one line per epoch instead of a progress bar.
    overwrite: delete the folder's old run (only jaxdl's own files) once this one is checked.

  Returns:
    The run's results: test metrics of the checkpoint selected on validation (``test_*``)
    and of the last one (``last_test_*``), ``selected_epoch``, sizes, FLOPs, timings.

  Raises:
    JaxdlError: bad input (a config key, the data, the model's contract), before training.
  """
  config = get_config(config, overrides, model=model, data=data)
  with _handed_over(model, data):
    return train_and_evaluate(config, workdir, quiet=quiet, overwrite=overwrite,
                              command=list(sys.argv))


def sweep(config: Config, workdir: str | pathlib.Path,
          axes: Sequence[str] | Mapping[str, Any] = (), overrides: Overrides = (), *,
          model: Any = None, data: Callable | None = None, mode: str = "auto",
          samples: int = 0, sweep_seed: int = 0, quiet: bool = True,
          overwrite: bool = False, shard: str | None = None) -> list[dict[str, Any]]:
  """Trains every member of a sweep; returns the members (name, overrides, group, status).

  Args:
    axes: ``["optim.learning_rate=1e-3,3e-3", "seed=0:3"]`` or ``{key: values or spec}``;
      an experiment file's ``sweep()`` axes come first, unless named here too.
    shard: ``"I/N"``: train only the I-th of N shards of the members (whole vectorized
      groups stay together), beside other processes in the same folder; ``"auto"`` reads
      a SLURM job array's task id and count.
  """
  from jaxdl.sweeps.run import parse_shard, run_sweep  # The sweep machinery imports the loop.

  given = (axes_from_mapping(axes) if isinstance(axes, Mapping)
           else [parse_axis(a) for a in axes])
  from_file = axes_from_mapping(load_sweep(config)) if isinstance(config, str) else []
  chosen: list[Axis] = [a for a in from_file if a.key not in {g.key for g in given}] + given
  if not chosen:
    raise ConfigError("no sweep axes: pass --sweep KEY=VALUES (e.g. --sweep seed=0:3) or define "
                      "sweep() in the experiment file")
  base = get_config(config, overrides, model=model, data=data)
  with _handed_over(model, data):
    return run_sweep(base, chosen, workdir, mode=mode, samples=samples, sweep_seed=sweep_seed,
                     quiet=quiet, overwrite=overwrite, command=list(sys.argv),
                     shard=parse_shard(shard))


def tune(config: Config, workdir: str | pathlib.Path, search: Sequence[str] | Mapping[str, Any],
         overrides: Overrides = (), *, trials: int = 20, storage: str | None = None,
         sampler: str = "tpe", seed: int = 0, parallel: int = 1, mode: str = "auto",
         model: Any = None, data: Callable | None = None, quiet: bool = True) -> list[dict]:
  """Searches ``search`` with Optuna until the study holds ``trials`` trials (see sweeps/tune.py).

  Args:
    search: ``["optim.learning_rate=loguniform(1e-4,1e-2)", ...]`` or ``{key: spec}``.
    storage: an SQLAlchemy URL shared by workers (default: ``workdir/study.db``, SQLite).
    parallel: trials asked at once (one vectorized program where they fit one).

  Returns:
    The trials this process ran, each a dict: ``trial`` (its number), ``name`` (its run
    folder), ``params``, ``state`` and ``value`` (the validation objective; None if failed).
  """
  from jaxdl.sweeps.tune import Search, run_tune  # Optuna, only when searching.

  axes = (axes_from_mapping(search) if isinstance(search, Mapping)
          else [parse_axis(a) for a in search])
  base = get_config(config, overrides, model=model, data=data)
  settings = Search(trials, storage, sampler, seed, parallel, mode)
  with _handed_over(model, data):
    return run_tune(base, axes, workdir, settings, quiet=quiet, command=list(sys.argv))


def evaluate(workdir: str | pathlib.Path, checkpoint: str = "selected", *, model: Any = None,
             data: Callable | None = None) -> dict[str, Any]:
  """Re-evaluates a run's selected (or last) checkpoint on its val and test splits (``jaxdl eval``).

  The data are rebuilt from the run's ``config.json`` (a text run's vocabulary must match its
  ``vocab.json``) and the checkpoint's checksums are verified before it is restored.

  Args:
    workdir: the run folder.
    checkpoint: ``'selected'`` (chosen on validation) or ``'last'``.
    model: the model object, for a run trained on one.
    data: the data function, for a run trained on one.

  Returns:
    ``val_*`` and ``test_*`` metrics, as in results.json.
  """
  with handed_to_run(workdir, model, data):
    return evaluate_run(workdir, checkpoint)


@dataclasses.dataclass(frozen=True)
class Run:
  """A trained run, ready to predict.

  Attributes:
    config: its config.
    spec: the facts of its data (input shape, classes, vocabulary size).
    model: the Flax module.
    state: the restored train state (``state.variables()`` for ``model.apply``).
    experiment: everything built from the config (data, optimizer, selection).
    workdir: the run folder.
  """

  config: ml_collections.ConfigDict
  spec: DataSpec
  model: Any
  state: TrainState
  experiment: Experiment
  workdir: pathlib.Path

  def predict(self, inputs: Any, batch_size: int = 256, **extras: np.ndarray) -> np.ndarray:
    """The model's outputs (logits, or regression outputs) for ``inputs``.

    Args:
      inputs: what the run's data source reads: sentences (a string or a list of them) for
        a text run, tokenised and encoded with the run's own vocabulary; image files (a list
        of paths) for an image run, decoded and resized as ``imagefolder:`` reads them; or
        the model's inputs ``[n, *spec.input_shape]``: token ids (``lengths`` computed from the PAD
        padding where not given), or uint8 images, which are scaled as the training data
        was (its ``Split.scaling``; else to [0, 1]).
      batch_size: examples per call.
      **extras: per-example arrays the model takes (e.g. ``lengths`` for text).
    """
    inputs, extras = self._model_inputs(inputs, dict(extras))
    call = jax.jit(lambda variables, batch: apply_model(self.model, variables, batch,
                                                        train=False))
    variables = self.state.variables()
    outputs = []
    for start in range(0, len(inputs), batch_size):
      part = {"inputs": jnp.asarray(inputs[start:start + batch_size], self.spec.input_dtype),
              **{k: jnp.asarray(v[start:start + batch_size]) for k, v in extras.items()}}
      part["mask"] = jnp.ones((len(part["inputs"]),), jnp.float32)
      outputs.append(np.asarray(call(variables, part)))
    return np.concatenate(outputs) if outputs else np.zeros((0,))

  def predict_proba(self, inputs: Any, batch_size: int = 256, **extras: np.ndarray
                    ) -> np.ndarray:
    """``<float32>[n, classes]``: the softmax of ``predict``'s logits (classifiers)."""
    if self.spec.task != "classification":
      raise ValueError(f"{self.workdir} is a {self.spec.task} run: it predicts values, not "
                       "class probabilities; use predict()")
    return np.asarray(jax.nn.softmax(self.predict(inputs, batch_size, **extras), axis=-1))

  def predict_classes(self, inputs: Any, batch_size: int = 256, **extras: np.ndarray
                      ) -> np.ndarray:
    """Each example's most probable class: its name where the data named the classes."""
    ids = self.predict_proba(inputs, batch_size, **extras).argmax(-1)
    names = self.spec.class_names
    return np.asarray([names[i] for i in ids]) if names else ids

  def _model_inputs(self, inputs: Any, extras: dict[str, np.ndarray]
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Raw inputs as the model takes them (sentences encoded, lengths computed, pixels
    scaled), checked against the run's input shape."""
    vocab = self.experiment.datasets.vocab
    if _image_files(inputs):
      if len(self.spec.input_shape) != 3:
        raise ValueError(f"{self.workdir} does not take images (its inputs are "
                         f"{list(self.spec.input_shape)}), so image files cannot be predicted")
      inputs = np.stack([image_folder.decode_for(pathlib.Path(p), tuple(self.spec.input_shape))
                         for p in inputs])
    if isinstance(inputs, str) or (isinstance(inputs, (list, tuple)) and inputs
                                   and all(isinstance(t, str) for t in inputs)):
      if vocab is None:
        raise ValueError(f"{self.workdir} was not trained on text, so sentences cannot be "
                         f"encoded; give its inputs as arrays of shape [n, "
                         f"{', '.join(map(str, self.spec.input_shape))}]")
      texts = [inputs] if isinstance(inputs, str) else list(inputs)
      inputs, lengths = text_lib.encode(texts, vocab, self.spec.input_shape[0])
      extras.setdefault("lengths", lengths)
    inputs = np.asarray(inputs)
    if inputs.dtype == np.uint8:
      scaling = self.experiment.datasets.train.scaling or data_lib.Scaling(255.0)
      inputs = scaling(inputs)
    if inputs.shape[1:] != tuple(self.spec.input_shape):
      raise ValueError(f"inputs of shape {inputs.shape} do not fit this run's "
                       f"{list(self.spec.input_shape)} examples"
                       + ("; give sentences (strings) to encode them with the run's vocabulary"
                          if vocab is not None else ""))
    if "lengths" in self.experiment.datasets.train.extra and "lengths" not in extras:
      # Token ids are PAD-padded at the end: each length runs to the last non-PAD id.
      real = inputs != 0
      extras["lengths"] = np.where(real.any(1), inputs.shape[1] - real[:, ::-1].argmax(1), 0
                                   ).astype(np.int32)
    return inputs, extras


def _image_files(inputs: Any) -> bool:
  """Whether ``inputs`` is a list of image file paths."""
  return (isinstance(inputs, (list, tuple)) and bool(inputs)
          and all(isinstance(p, (str, pathlib.Path))
                  and pathlib.Path(p).suffix.lower() in image_folder.SUFFIXES for p in inputs))


def load_run(workdir: str | pathlib.Path, checkpoint: str = "selected", *, model: Any = None,
             data: Callable | None = None) -> Run:
  """A trained run: its config, model, restored parameters and data spec.

  Args:
    workdir: the run folder.
    checkpoint: ``'selected'`` (chosen on validation: the run's result) or ``'last'``.
    model: the model object, for a run trained on one (its config names ``python:...``).
    data: the data function, for a run trained on one.
  """
  with handed_to_run(workdir, model, data):
    exp, state, run = restore_run(workdir, checkpoint)
  return Run(exp.config, exp.datasets.spec, exp.model, state, exp, run.path)


def predict_file(workdir: str | pathlib.Path, path: str | pathlib.Path,
                 out: str | pathlib.Path | None = None, checkpoint: str = "selected", *,
                 model: Any = None, data: Callable | None = None) -> pathlib.Path:
  """Predicts every example of ``path`` with a run and writes a CSV (``jaxdl predict``).

  ``path`` is a text file of one sentence per line (a text run; row k is line k + 1), a
  ``.npy`` array of the model's inputs, or an image file or a folder of them (an image run).
  The CSV has one row per example: its number, the sentence or the image file, the predicted
  class and each class's probability (a regression run: the predicted value). Default
  ``out``: ``path`` with ``.predictions.csv``, or ``path/predictions.csv`` for a folder.
  """
  run = load_run(workdir, checkpoint, model=model, data=data)
  path = pathlib.Path(path)
  inputs, names, column = _file_inputs(path, run.config.data)
  default_out = path / "predictions.csv" if path.is_dir() else path.with_suffix(".predictions.csv")
  out = pathlib.Path(out) if out else default_out
  with out.open("w", newline="") as f:
    _write_predictions(csv.writer(f), run, inputs, names, column)
  return out


def _file_inputs(path: pathlib.Path, data_config: ml_collections.ConfigDict
                 ) -> tuple[Any, list[str] | None, str]:
  """What ``predict_file`` reads from ``path``: ``(inputs, names, column)``, where ``names``
  labels each example in the CSV (a sentence, an image file; None for an array) and
  ``column`` is that label's header."""
  if not path.exists():
    raise ConfigError(f"{path} does not exist; give a text file (one sentence per line), a "
                      ".npy array of inputs, or image files (a file or a folder of them)")
  if path.is_dir() or path.suffix.lower() in image_folder.SUFFIXES:
    files = image_folder.image_files(path) if path.is_dir() else [path]
    if not files:
      raise ConfigError(f"{path} holds no image files ({', '.join(image_folder.SUFFIXES)})")
    return files, [str(f.relative_to(path) if path.is_dir() else f.name) for f in files], "file"
  if path.suffix == ".npy":
    return np.load(path), None, ""  # No name column.
  texts = path.read_text(encoding=data_config.encoding).splitlines()  # A text run's field.
  return texts, texts, "text"


def _write_predictions(writer, run: Run, inputs: Any, names: list[str] | None,
                       column: str) -> None:
  """One CSV row per example: its number, its name (if any), the class and each class's
  probability (classification) or the predicted values (regression)."""
  named = [column] if names is not None else []
  label = lambda i: [names[i]] if names is not None else []
  if run.spec.task == "classification":
    classes = run.spec.class_names or tuple(str(i) for i in range(run.spec.num_classes))
    writer.writerow(["example", *named, "class", *(f"p_{n}" for n in classes)])
    for i, row in enumerate(run.predict_proba(inputs)):
      writer.writerow([i, *label(i), classes[int(row.argmax())], *(f"{v:.6f}" for v in row)])
  else:
    writer.writerow(["example", *named, "prediction"])
    for i, row in enumerate(run.predict(inputs).reshape(len(inputs), -1)):
      writer.writerow([i, *label(i), *(f"{v:.6g}" for v in row)])
