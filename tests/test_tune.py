"""jaxdl tune: Optuna trials as run folders, a shared study, pruning through the loop."""

import json
import subprocess
import sys

import optuna
import pytest

import jaxdl
from conftest import EXPERIMENTS, ROOT, experiment
from jaxdl import cli
from jaxdl.configs.loading import config_from_dict
from jaxdl.errors import ConfigError
from jaxdl.sweeps import tune as tune_lib
from jaxdl.sweeps.axes import parse_axis
from jaxdl.sweeps.storage import open_storage, opened_storage, retried_numbers, retry_orphans
from jaxdl.training.folder_lock import FolderLock
from jaxdl.training import train_group

TINY = ["num_epochs=2", "batch_size=256", "data.augment_shift=0"]
# In this process: a one-conv model on the 8x8 digits (the search machinery is under test).
SMALL_MODEL = ["data.image_size=0", "model.name=plugin_models:TinyCNN"]
SMALL = [*TINY, *SMALL_MODEL]
SEARCH = ["optim.learning_rate=loguniform(1e-4,1e-2)"]


@pytest.mark.slow
def test_a_search_runs_its_trials_as_run_folders_and_reports_the_best(tmp_path, capsys):
  ran = jaxdl.tune("experiments/seed_cnn_digits.py", tmp_path, SEARCH, SMALL, trials=3)
  assert [t["trial"] for t in ran] == [0, 1, 2] and {t["state"] for t in ran} == {"complete"}
  for t in ran:
    results = json.loads((tmp_path / t["name"] / "results.json").read_text())
    assert t["value"] == results["val_accuracy"]  # The objective: validation, never test.
    config = json.loads((tmp_path / t["name"] / "config.json").read_text())
    assert config["optim"]["learning_rate"] == pytest.approx(t["params"]["optim.learning_rate"])
  assert jaxdl.tune("experiments/seed_cnn_digits.py", tmp_path, SEARCH, SMALL, trials=3) == []
  table = jaxdl.report(tmp_path)
  best = max(ran, key=lambda t: t["value"])
  assert f"Best: {best['name']}" in table and "val_accuracy" in table and "test_accuracy" in table
  assert "Parameter importances (fANOVA): optim.learning_rate 1.00" in table
  assert cli.main(["plot", str(tmp_path), "--out", str(tmp_path / "plots")]) == 0
  assert (tmp_path / "plots" / "objective.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def postgres_url():
  """A real PostgreSQL server for the test (pgserver's own binaries), stopped after it."""
  pgserver = pytest.importorskip("pgserver")
  pytest.importorskip("psycopg")  # SQLAlchemy 2.1's PostgreSQL driver.
  import shutil
  import tempfile

  folder = tempfile.mkdtemp(prefix="pg", dir="/tmp")  # Short: a Unix socket path is limited.
  try:
    server = pgserver.get_server(folder, cleanup_mode="stop")
  except Exception as e:  # No way to run a server here (permissions, a missing library).
    shutil.rmtree(folder, ignore_errors=True)
    pytest.skip(f"PostgreSQL could not start here: {e}")
  yield server.get_uri()
  import gc

  gc.collect()  # A connection left open by the test fails it here (ResourceWarning), not later.
  server.cleanup()
  shutil.rmtree(folder, ignore_errors=True)


def _errors(workers, outs) -> list[str]:
  """Each failed worker's error lines (a traceback's last line, jaxdl's one-line errors)."""
  return ["\n".join(line for line in err.splitlines()[-40:] if "jaxdl:" in line or "Error" in line)
          for w, (_, err) in zip(workers, outs) if w.returncode]


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["default", "journal", "postgresql"])
def test_four_workers_share_one_study_without_losing_or_repeating_a_trial(tmp_path, storage,
                                                                          request):
  argv = [sys.executable, "-m", "jaxdl.cli", "tune", str(EXPERIMENTS / "seed_cnn_digits.py"),
          "--workdir", str(tmp_path), "--trials", "4", "--quiet", "--search", SEARCH[0],
          *(f"--config.{o}" for o in TINY)]
  if storage == "journal":
    argv += ["--storage", f"journal:{tmp_path / 'shared' / 'study.log'}"]
  if storage == "postgresql":
    argv += ["--storage", request.getfixturevalue("postgres_url")]
  workers = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
  outs = [w.communicate(timeout=900) for w in workers]
  assert [w.returncode for w in workers] == [0] * 4, _errors(workers, outs)
  if storage == "journal":
    assert (tmp_path / "shared" / "study.log").stat().st_size > 0
  if storage != "default":
    assert not (tmp_path / "study.db").exists()
  _, trials = tune_lib.load_trials(tmp_path)
  assert sorted(t["trial"] for t in trials) == [0, 1, 2, 3]
  # The study stopped at --trials: no trial was asked past the budget and closed unrun.
  with opened_storage(json.loads((tmp_path / "tune.json").read_text())["storage"]) as storage:
    assert len(optuna.load_study(study_name="jaxdl", storage=storage).trials) == 4
  assert {t["state"] for t in trials} == {"complete"}
  for t in trials:  # Each trial trained once, by one worker.
    sessions = json.loads((tmp_path / t["name"] / "provenance.json").read_text())["sessions"]
    assert len(sessions) == 1
  # Workers asking at once get different proposals (a shared sampler seed once gave both
  # the same ones): every trial's parameters differ.
  assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 4


@pytest.mark.slow
def test_every_trial_trains_on_the_data_its_own_config_describes(tmp_path):
  # Neither searched value is the base config's (0.2 test, 0.1 validation): a search that
  # reused the base config's data would record one split and train on another.
  search = ["data.test_fraction=choice(0.3,0.5)", "data.val_fraction=choice(0.25,0.4)"]
  ran = jaxdl.tune("experiments/seed_cnn_digits.py", tmp_path, search, SMALL, trials=2,
                   sampler="random")
  for t in ran:
    run = tmp_path / t["name"]
    config = json.loads((run / "config.json").read_text())
    spec = jaxdl.build_data(config_from_dict(config).data).spec
    results = json.loads((run / "results.json").read_text())
    assert (results["num_val"], results["num_test"]) == (spec.num_val, spec.num_test)
    assert results["num_test"] == pytest.approx(1797 * config["data"]["test_fraction"], abs=10)
    again = jaxdl.evaluate(run)  # The folder agrees with itself: eval rebuilds the same data.
    assert again["val_accuracy"] == results["val_accuracy"]
    assert again["test_accuracy"] == results["test_accuracy"]


def test_a_trials_proposal_depends_on_the_seed_and_its_number_only():
  draws = {(seed, number): tune_lib.trial_sampler("random", seed, number)._rng.rng.random_sample()
           for seed in (0, 1) for number in (0, 1)}
  assert len(set(draws.values())) == 4
  assert tune_lib.trial_sampler("random", 0, 1)._rng.rng.random_sample() == draws[(0, 1)]


class _FakeTrial:
  def __init__(self, prune_after: int):
    self.reports, self.prune_after = [], prune_after

  def report(self, value, step):
    self.reports.append((step, value))

  def should_prune(self):
    return len(self.reports) >= self.prune_after


def test_a_pruned_trial_stops_after_the_epoch_its_pruner_names(tmp_path):
  trial = _FakeTrial(prune_after=2)
  hook = tune_lib.PruningHook(trial, "val_accuracy")
  [results] = train_group([experiment("seed_cnn_digits", "num_epochs=5", "batch_size=256",
                                     *SMALL_MODEL)],
                          [tmp_path], vectorized=False, quiet=True, epoch_hooks=[hook])
  assert results["epochs"] == 2 and results["stopped_early"] and hook.pruned
  rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert trial.reports == [(r["epoch"], r["val_accuracy"]) for r in rows]  # Each epoch once.


@pytest.mark.slow
def test_optunas_median_pruner_stops_a_real_trial_that_falls_behind(tmp_path):
  """Seed 2's random proposals are 3e-2 four times in the first five trials, then 1e-5: the
  sixth trial (at chance after its first epoch, the pruner's warm-up) falls below the
  median there and is pruned."""
  overrides = ["num_epochs=3", "batch_size=128", "data.augment_shift=0", *SMALL_MODEL]
  ran = jaxdl.tune("experiments/seed_cnn_digits.py", tmp_path,
                   ["optim.learning_rate=choice(0.03,0.00001)"], overrides, trials=7,
                   sampler="random", seed=2)
  states = {t["trial"]: (t["state"], t["params"]["optim.learning_rate"]) for t in ran}
  assert states[5] == ("pruned", 1e-5) and states[6] == ("complete", 0.03)
  assert all(state == "complete" for state, _ in (states[i] for i in range(5)))
  pruned = json.loads((tmp_path / "t005" / "results.json").read_text())
  assert pruned["epochs"] == 1 and pruned["stopped_early"]
  assert "pruned (after 1 epochs)" in jaxdl.report(tmp_path)


def test_search_axes_become_optuna_distributions():
  space = tune_lib.distributions([parse_axis("a=loguniform(1e-4,1e-2)"),
                                  parse_axis("b=uniform(0,0.5)"), parse_axis("c=randint(1,4)"),
                                  parse_axis("d=choice(lstm,gru)"), parse_axis("e=(8,),(16,)")])
  assert space["a"].log and (space["a"].low, space["a"].high) == (1e-4, 1e-2)
  assert not space["b"].log and (space["c"].low, space["c"].high) == (1, 4)
  assert space["d"].choices == ("lstm", "gru") and space["e"].choices == ("[8]", "[16]")


@pytest.mark.parametrize("kwargs, message", [
    ({"search": []}, "no search axes"),
    ({"search": SEARCH, "trials": 0}, "--trials and --parallel must be at least 1"),
    ({"search": SEARCH, "overrides": ["data.val_fraction=0"]}, "needs a validation metric"),
])
def test_bad_searches_are_clear_errors(tmp_path, kwargs, message):
  with pytest.raises(ConfigError, match=message):
    jaxdl.tune("experiments/seed_cnn_digits.py", tmp_path, **{"overrides": TINY, **kwargs})


def test_parallel_trials_that_differ_in_values_train_as_one_vectorized_program(tmp_path,
                                                                              monkeypatch):
  groups = []
  real = tune_lib.train_group

  def recording(configs, workdirs, **kwargs):
    groups.append((len(configs), kwargs["vectorized"]))
    return real(configs, workdirs, **kwargs)

  monkeypatch.setattr(tune_lib, "train_group", recording)
  ran = jaxdl.tune("experiments/seed_cnn_digits.py", tmp_path, SEARCH, SMALL, trials=2,
                   parallel=2, mode="vectorized")
  assert groups == [(2, True)] and [t["state"] for t in ran] == ["complete", "complete"]
  values = {t["trial"]: t["value"] for t in ran}
  assert values[0] != values[1]  # Each member its own learning rate.


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["default", "postgresql"])
def test_a_database_trial_whose_worker_was_killed_is_failed_and_run_again(tmp_path, storage,
                                                                          request):
  import os
  import signal
  import time

  argv = [sys.executable, "-m", "jaxdl.cli", "tune", str(EXPERIMENTS / "seed_cnn_digits.py"),
          "--workdir", str(tmp_path), "--trials", "2", "--quiet", "--search", SEARCH[0],
          *(f"--config.{o}" for o in [*TINY, "num_epochs=4"])]
  if storage == "postgresql":
    argv += ["--storage", request.getfixturevalue("postgres_url")]
  env = {**os.environ, "JAXDL_HEARTBEAT_S": "1"}  # Stale after 3 s without a beat.
  log = tmp_path / "doomed.log"
  with log.open("w") as out:
    doomed = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=out)
  rows = tmp_path / "t000" / "metrics.jsonl"
  deadline = time.monotonic() + 300
  while not (rows.exists() and rows.read_text().strip()):  # Mid-trial: an epoch is done.
    assert doomed.poll() is None, log.read_text()[-2000:]
    assert time.monotonic() < deadline
    time.sleep(0.2)
  doomed.send_signal(signal.SIGKILL)
  assert doomed.wait(timeout=60) == -signal.SIGKILL
  assert not (tmp_path / "t000" / "results.json").exists()
  time.sleep(4)  # Past the grace period: the dead worker's trial is stale.
  survivor = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
  assert survivor.returncode == 0, survivor.stderr[-2000:]
  record = json.loads((tmp_path / "tune.json").read_text())
  with opened_storage(record["storage"]) as opened:
    study = optuna.load_study(study_name="jaxdl", storage=opened)
    trials = study.get_trials(deepcopy=True)
    assert tune_lib.budget_used(study) == 2
  states = {t.number: t.state.name for t in trials}
  assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}, states
  retry = [t for t in trials[1:] if t.params == trials[0].params]  # The killed trial's values.
  assert len(retry) == 1 and 0 in retried_numbers(trials)
  assert (tmp_path / tune_lib.trial_name(retry[0].number) / "results.json").exists()


def test_a_journal_trial_whose_worker_died_is_failed_and_run_again(tmp_path):
  study = optuna.create_study(study_name="jaxdl",
                              storage=open_storage(f"journal:{tmp_path / 'study.log'}"))
  space = tune_lib.distributions([parse_axis(SEARCH[0])])
  dead, alive = study.ask(space), study.ask(space)
  (tmp_path / tune_lib.trial_name(alive.number)).mkdir()
  with FolderLock(tmp_path / tune_lib.trial_name(alive.number)):  # A live worker's trial.
    assert retry_orphans(study, tmp_path, tune_lib.trial_name, grace_s=0) == 1
  states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
  assert states == {0: "FAIL", 1: "RUNNING", 2: "WAITING"}
  retry = study.trials[2]
  assert retry.system_attrs["fixed_params"] == dead.params and retry.user_attrs == {"retry_of": 0}
  assert tune_lib.budget_used(study) == 2  # The failed trial is replaced, not counted twice.
  assert retry_orphans(study, tmp_path, tune_lib.trial_name, grace_s=3600) == 0


@pytest.mark.parametrize("spec, message", [
    ("journal:", "needs a file path"), ("study.db", "neither journal:PATH nor a database URL"),
    ("postgresql://nobody@127.0.0.1:1/none", "cannot open the database")])
def test_a_storage_that_cannot_be_used_is_one_line(spec, message):
  with pytest.raises(ConfigError, match=message):
    open_storage(spec)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def test_workers_opening_a_fresh_database_at_once_all_get_the_study(database, tmp_path, request):
  """Optuna creates its tables on first open; workers starting together used to collide
  (PostgreSQL: UniqueViolation on pg_type; SQLite: on alembic_version) and exit."""
  import threading

  url = (f"sqlite:///{tmp_path / 'study.db'}" if database == "sqlite"
         else request.getfixturevalue("postgres_url"))
  barrier, errors = threading.Barrier(6), []

  def worker():
    barrier.wait()
    try:
      with opened_storage(url) as storage:
        optuna.create_study(study_name="jaxdl", storage=storage, load_if_exists=True)
    except Exception as e:  # noqa: BLE001 - collected and shown by the assertion.
      errors.append(e)

  threads = [threading.Thread(target=worker) for _ in range(6)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert errors == []
  with opened_storage(url) as storage:
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["jaxdl"]
