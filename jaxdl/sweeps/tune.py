"""``jaxdl tune``: hyperparameter search with Optuna, every trial a normal run folder.

  jaxdl tune experiments/seed_lstm_mr.py --workdir runs/tune --trials 20 \\
      --search optim.learning_rate='loguniform(1e-4,1e-2)' --search model.dropout_rate='uniform(0,0.5)'

The search space uses the sweep's axis syntax (``loguniform``, ``uniform``,
``randint``, ``choice`` and value lists). Optuna's TPE sampler proposes each
trial; the objective is the trial's selected validation metric (the run's
``config.select``: validation accuracy by default), so the test set never
steers the search; every epoch's value is reported to Optuna, whose median
pruner stops trials that fall behind. The study lives where the workers can share it
(storage.py): ``study.db`` (SQLite) in the workdir for one machine, ``--storage
journal:PATH`` for workers on many machines sharing a filesystem, or a database server
(``--storage postgresql://...``); trials are numbered by the storage, so none is run
twice, and a trial whose worker died is failed and run again.

``--parallel K`` asks Optuna for K trials at once and, where they differ only in
values (learning rate, weight decay, ...), trains them as one vectorized
program on an accelerator (one by one on CPU, as ``--mode auto`` does).

The folder holds ``tune.json`` (the search's command, space and storage) and a
run folder per trial (``t000``, ``t001``, ...).
"""

import contextlib
import dataclasses
import json
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections
import numpy as np

from jaxdl.configs.loading import apply_overrides, config_to_dict
from jaxdl.data.cache import DatasetCache
from jaxdl.errors import ConfigError, JaxdlError
from jaxdl.sweeps.axes import Axis
from jaxdl.sweeps.groups import group_members
from jaxdl.sweeps.run import choose_mode
from jaxdl.sweeps.storage import (asking_and_telling, beating, default_storage,
                                  fail_stale_trials, opened_storage, retried_numbers,
                                  retry_orphans)
from jaxdl.training.experiment import build_experiment
from jaxdl.training.folder_lock import RunLocked, waiting_lock
from jaxdl.training.loop import train_group
from jaxdl.training.run_folder import read_json, write_json

SAMPLERS = ("tpe", "random")


def trial_name(number: int) -> str:
  return f"t{number:03d}"


def distributions(axes: Sequence[Axis]) -> dict[str, Any]:
  """Optuna's distribution for each search axis."""
  from optuna import distributions as d

  out = {}
  for axis in axes:
    low_high = axis.arguments[:2]
    if axis.distribution == "loguniform":
      out[axis.key] = d.FloatDistribution(*low_high, log=True)
    elif axis.distribution == "uniform":
      out[axis.key] = d.FloatDistribution(*low_high)
    elif axis.distribution == "randint":
      out[axis.key] = d.IntDistribution(*low_high)
    else:  # choice(...) or a list of values: categorical.
      choices = axis.arguments if axis.distribution else axis.values
      out[axis.key] = d.CategoricalDistribution(tuple(_plain(c) for c in choices))
  return out


def _plain(value: Any) -> Any:
  """Optuna stores categorical choices as JSON: tuples travel as their JSON text."""
  return json.dumps(value) if isinstance(value, (list, tuple)) else value


def _overrides(params: dict[str, Any], axes: Sequence[Axis]) -> dict[str, Any]:
  tuples = {a.key for a in axes if any(isinstance(v, (list, tuple))
                                       for v in (a.values or a.arguments))}
  return {k: tuple(json.loads(v)) if k in tuples else v for k, v in params.items()}


def _study(folder: pathlib.Path, storage, sampler: str, seed: int, direction: str):
  import optuna

  if sampler not in SAMPLERS:
    raise ConfigError(f"unknown --sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  chosen = trial_sampler(sampler, seed, 0)
  pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
  # Workers starting at once would race to create the database's tables: one at a time.
  with waiting_lock(folder / ".tune.lock"):
    return optuna.create_study(study_name="jaxdl", storage=storage, sampler=chosen,
                               pruner=pruner, load_if_exists=True,
                               direction="maximize" if direction == "max" else "minimize")


def trial_sampler(sampler: str, seed: int, number: int):
  """The sampler that proposes trial ``number``: seeded by (``seed``, ``number``).

  Samplers keep no history of their own (it is in the study's database), so
  a fresh one per trial loses nothing. Seeded by the trial's number, workers
  that ask at the same moment get different proposals (one shared seed gave
  two workers the same ones), and one worker's search stays reproducible.
  """
  import optuna

  trial_seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
  if sampler == "tpe":
    return optuna.samplers.TPESampler(seed=trial_seed)
  return optuna.samplers.RandomSampler(seed=trial_seed)


class PruningHook:
  """Reports each new epoch's validation metric to Optuna; stops the trial when it says prune.

  Called by the loop with a trial's history after every epoch (see ``training.members``).
  """

  def __init__(self, trial, metric: str):
    self.trial, self.metric = trial, metric
    self.reported: set[int] = set()
    self.pruned = False

  def __call__(self, history: Sequence[dict]) -> bool:
    for row in history:
      if row["epoch"] not in self.reported and isinstance(row.get(self.metric), (int, float)):
        self.trial.report(float(row[self.metric]), step=row["epoch"])
        self.reported.add(row["epoch"])
    self.pruned = self.trial.should_prune()
    return self.pruned


def _record(folder: pathlib.Path, base: ml_collections.ConfigDict, axes: Sequence[Axis],
            settings: dict[str, Any]) -> None:
  """tune.json: the same search resumes; a different one in this folder is refused."""
  record = {"base_config": config_to_dict(base), "axes": [a.describe() for a in axes],
            **settings}
  path = folder / "tune.json"
  if path.exists():
    old = read_json(path)
    keys = ("axes", "storage", "metric", "direction")
    if any(old.get(k) != record.get(k) for k in keys):
      raise JaxdlError(f"{folder} holds a different search (tune.json); use a new --workdir")
    return
  write_json(path, record)


@dataclasses.dataclass(frozen=True)
class Search:
  """How a search runs (``jaxdl tune``'s options).

  Attributes:
    trials: the study's budget: trials that count toward it, over every worker.
    storage: Optuna's storage (``open_storage``); None: ``WORKDIR/study.db``.
    sampler: ``tpe``, ``random`` or ``grid``.
    seed: the sampler's seed.
    parallel: trials asked for at once (trained as one vectorized program where they can).
    mode: ``auto``, ``vectorized`` or ``sequential`` (``choose_mode``).
  """

  trials: int
  storage: str | None = None
  sampler: str = "tpe"
  seed: int = 0
  parallel: int = 1
  mode: str = "auto"


def run_tune(base: ml_collections.ConfigDict, axes: Sequence[Axis], workdir: str | pathlib.Path,
             search: Search, *, quiet: bool = True, command: Sequence[str] = (),
             log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> list[dict]:
  """Runs trials until the study holds ``search.trials`` of them; returns this worker's.

  Objects the API was given (``parts.given``) serve every trial.

  Returns:
    ``[{"trial", "name", "params", "state", "value"}]`` for the trials this process ran.
  """
  trials, sampler, seed, parallel = search.trials, search.sampler, search.seed, search.parallel
  if trials < 1 or parallel < 1:
    raise ConfigError("--trials and --parallel must be at least 1")
  if not axes:
    raise ConfigError("no search axes: pass --search KEY=loguniform(lo,hi) (or uniform, "
                      "randint, choice, a list)")
  folder = pathlib.Path(workdir)
  folder.mkdir(parents=True, exist_ok=True)
  data_of = DatasetCache()  # Each trial trains on the data its own config describes.
  experiment = build_experiment(base, data_of(base))  # Checks config, data, model first.
  selection = experiment.selection
  if selection.is_last:
    raise ConfigError("jaxdl tune needs a validation metric to search on; keep "
                      "data.val_fraction > 0 and select.metric != last")
  storage = search.storage or default_storage(folder)
  _record(folder, base, axes, {"command": list(command), "storage": storage,
                               "metric": selection.metric, "direction": selection.mode,
                               "trials": trials, "sampler": sampler, "seed": seed})
  vectorized = choose_mode(search.mode, log) == "vectorized"
  ran: list[dict] = []
  with opened_storage(storage) as opened:
    study = _study(folder, opened, sampler, seed, selection.mode)
    space = distributions(axes)
    while batch := _ask(study, space, parallel, trials, folder, sampler, seed):
      configs = [apply_overrides(base, _overrides(t.params, axes)) for t in batch]
      groups = group_members(configs) if vectorized else [[i] for i in range(len(batch))]
      for group in groups:
        ran += _train_trials(study, [batch[i] for i in group], [configs[i] for i in group],
                             folder, selection.metric, data_of(configs[group[0]]), quiet,
                             command, log)
  return ran


def _ask(study, space: dict, parallel: int, trials: int, folder: pathlib.Path, sampler: str,
         seed: int) -> list:
  """Up to ``parallel`` new trials while the study's budget lasts (retries come first)."""
  from optuna.trial import TrialState

  asked = []
  for _ in range(parallel):
    with waiting_lock(folder / ".tune.lock"):  # Numbers are taken one worker at a time.
      fail_stale_trials(study)
      retry_orphans(study, folder, trial_name)
      waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
      if not waiting and budget_used(study) >= trials:
        break
      study.sampler = trial_sampler(sampler, seed, len(study.get_trials(deepcopy=False)))
      with asking_and_telling():
        asked.append(study.ask(space))
  return asked


def budget_used(study) -> int:
  """Trials that count toward ``--trials``: all but failed ones that were run again and
  (from older studies) ones closed unrun over the budget."""
  from optuna.trial import TrialState

  trials = study.get_trials(deepcopy=False)
  retried = retried_numbers(trials)
  return sum(1 for t in trials if "jaxdl" not in t.user_attrs
             and not (t.state == TrialState.FAIL and t.number in retried))


def _train_trials(study, batch: list, configs: list, folder: pathlib.Path, metric: str,
                  datasets, quiet: bool, command, log) -> list[dict]:
  from optuna.trial import TrialState

  names = [trial_name(t.number) for t in batch]
  log(f"trials {', '.join(names)}: {', '.join(json.dumps(t.params) for t in batch)}")
  hooks = [PruningHook(t, metric) for t in batch]
  try:
    with contextlib.ExitStack() as beats:
      for trial in batch:
        beats.enter_context(beating(study, trial))
      results = train_group(configs, [folder / n for n in names], vectorized=len(batch) > 1,
                            quiet=quiet, command=command, datasets=datasets, log=log,
                            epoch_hooks=hooks)
  except RunLocked:
    raise
  except JaxdlError as e:
    for trial in batch:
      with asking_and_telling():
        study.tell(trial, state=TrialState.FAIL)
    log(f"failed: {e}")
    return [{"trial": t.number, "name": n, "params": t.params, "state": "failed", "value": None}
            for t, n in zip(batch, names)]
  out = []
  for trial, name, result, hook in zip(batch, names, results, hooks):
    value = result.get(metric)
    state = TrialState.PRUNED if hook.pruned else TrialState.COMPLETE
    with asking_and_telling():
      study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    out.append({"trial": trial.number, "name": name, "params": trial.params,
                "state": "pruned" if hook.pruned else "complete", "value": value})
  return out


def load_trials(folder: pathlib.Path) -> tuple[dict, list[dict]]:
  """tune.json and every trial of its study that ran: number, params, state, value, results."""
  import optuna

  record = read_json(folder / "tune.json")
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  with opened_storage(record["storage"]) as storage:
    stored = optuna.load_study(study_name="jaxdl", storage=storage).get_trials(deepcopy=True)
  trials = []
  for trial in stored:
    if "jaxdl" in trial.user_attrs:  # Over the budget: never ran.
      continue
    results_path = folder / trial_name(trial.number) / "results.json"
    trials.append({"trial": trial.number, "name": trial_name(trial.number),
                   "params": trial.params, "state": trial.state.name.lower(),
                   "value": trial.value, "epochs_reported": len(trial.intermediate_values),
                   "results": read_json(results_path) if results_path.exists() else {}})
  return record, trials


def importances(folder: pathlib.Path) -> dict[str, float]:
  """Optuna's parameter importances (fANOVA) over the completed trials ({} with too few)."""
  import optuna

  record = read_json(folder / "tune.json")
  with opened_storage(record["storage"]) as storage:
    study = optuna.load_study(study_name="jaxdl", storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(complete) < 2 or len(complete[0].params) < 1:
      return {}
    return dict(optuna.importance.get_param_importances(study))


def _trial_row(trial: dict, keys: list[str], test_key: str, best: bool) -> str:
  """One trial as a Markdown table row: name, state, parameters, objective, test result."""
  value = "–" if trial["value"] is None else f"{trial['value']:.4f}"
  test = trial["results"].get(test_key)
  params = [trial["params"].get(k) for k in keys]
  cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in params]
  state = trial["state"] + (f" (after {trial['epochs_reported']} epochs)"
                            if trial["state"] == "pruned" else "")
  row = [trial["name"], state, *cells, f"**{value}**" if best else value,
         "–" if test is None else f"{test:.4f}"]
  return "| " + " | ".join(row) + " |"


def tune_report(folder: pathlib.Path) -> str:
  """The trials as a Markdown table, the best by the validation metric with its test result."""
  record, trials = load_trials(folder)
  metric, direction = record["metric"], record["direction"]
  test_key = "test_accuracy" if "accuracy" in metric else "test_loss"
  keys = [a["key"] for a in record["axes"]]
  lines = ["| trial | state | " + " | ".join(keys) + f" | {metric} | {test_key} |",
           "|" + "---|" * (len(keys) + 4)]
  scored = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
  best = (max if direction == "max" else min)(scored, key=lambda t: t["value"]) if scored else None
  lines += [_trial_row(t, keys, test_key, t is best) for t in trials]
  notes = [f"\n{len(trials)} trial(s) of {record['trials']}; the objective is the selected "
           f"epoch's {metric} ({'higher' if direction == 'max' else 'lower'} is better), so the "
           "test set never steered the search."]
  if best:
    notes.append(f"Best: {best['name']} {json.dumps(best['params'])}: {metric} "
                 f"{best['value']:.4f}, {test_key} {best['results'].get(test_key, float('nan')):.4f}.")
  ranked = importances(folder)
  if ranked:
    notes.append("Parameter importances (fANOVA): " + ", ".join(
        f"{k} {v:.2f}" for k, v in ranked.items()) + ".")
  return "\n".join(lines) + "\n" + "\n".join(notes) + "\n"


def plot_objective(folder: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  """The objective of every trial in order, and the best so far."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  record, trials = load_trials(folder)
  done = [t for t in trials if t["value"] is not None]
  pick = max if record["direction"] == "max" else min
  best = [pick(t["value"] for t in done[:i + 1]) for i in range(len(done))]
  fig, ax = plt.subplots(figsize=(6, 4.2))
  ax.plot([t["trial"] for t in done], [t["value"] for t in done], "o", label="trial")
  ax.step([t["trial"] for t in done], best, where="post", label="best so far")
  pruned = [t for t in trials if t["state"] == "pruned"]
  if pruned:
    ax.plot([t["trial"] for t in pruned], [min(best or [0])] * len(pruned), "x", color="gray",
            label="pruned")
  ax.set_xlabel("trial")
  ax.set_ylabel(f"{record['metric']} (selected epoch)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out, dpi=120)
  plt.close(fig)
  return out
