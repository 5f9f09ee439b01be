"""``jaxdl report``: a sweep's results grouped over seeds and folds, as a table for a paper.

Members that share every swept value but the seed and the cross-validation
fold (or the ``--group-by`` axes given) form a group. Each metric is the mean
± spread with a 95% interval that follows the design (intervals.py): seeds
averaged within folds, the corrected resampled t over folds or splits, the
test set's own sampling error on a single split.

Groups are ranked by the runs' selection metric, a validation metric, in the
direction the runs selected with (``selection_mode``), within each dataset
(group values of ``data.*`` keys): the test set never chooses. If any member
has no validation metric, nothing is ranked and the notes say why. The best
group is bold only where a paired test (Holm-corrected over the groups it is
compared with) finds it better than every other group of its dataset on the
test metric; groups it does not beat significantly share its rank (``1=``).
Members that failed are counted and named, never dropped silently.
"""

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from jaxdl.configs.loading import flatten
from jaxdl.errors import JaxdlError
from jaxdl.sweeps import intervals, tables
from jaxdl.sweeps.intervals import Comparison, Estimate
from jaxdl.training.run_folder import PREDICTIONS, RunFolder, read_json

FORMATS = ("markdown", "latex", "csv")
# Axes averaged over by default: repetitions of one setting.
REPETITION_AXES = ("seed", "data.fold", "data.split_seed")
ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class Failure:
  member: str
  values: dict[str, Any]  # Its swept values.
  error: str


@dataclasses.dataclass(frozen=True)
class Group:
  """One configuration: its runs and each metric's estimate.

  Attributes:
    values: the group-by axes' values.
    members: the runs' names.
    metrics: each metric's mean, spread and interval.
    failed: members of this group that did not finish.
    rows: the runs (results, config keys), for paired comparisons.
  """

  values: dict[str, Any]
  members: tuple[str, ...]
  metrics: dict[str, Estimate]
  failed: tuple[str, ...] = ()
  rows: tuple[dict[str, Any], ...] = ()

  def predictions(self) -> list[dict | None]:
    """Each run's saved test predictions (None where the run has none)."""
    return [_predictions(r.get("_path")) for r in self.rows]


def _predictions(path: str | None) -> dict | None:
  return RunFolder(path).read_arrays(PREDICTIONS) if path else None


def _run_row(path: pathlib.Path, name: str, extra: Mapping[str, Any],
             axis_keys: Sequence[str]) -> dict[str, Any]:
  """A run's results, its swept values, and its config's keys (``data.fold``, ``model.name``)."""
  results = read_json(path / "results.json")
  config = flatten(read_json(path / "config.json")) if (path / "config.json").exists() else {}
  return {**config, **extra, **{k: v for k, v in results.items() if k not in axis_keys},
          "member": name, "_path": str(path)}


def load_rows(folder: str | pathlib.Path
              ) -> tuple[list[dict[str, Any]], list[str], list[Failure]]:
  """A sweep folder's finished members, its axes, and its failed members.

  A run folder gives its one run and no axes.
  """
  folder = pathlib.Path(folder)
  if (folder / "sweep.json").exists():
    sweep = read_json(folder / "sweep.json")
    axis_keys = [a["key"] for a in sweep["axes"]]
    rows, failures = [], []
    for member in sweep["members"]:
      path = folder / member["name"]
      if (path / "results.json").exists():  # Finished, whatever a running shard last wrote.
        rows.append(_run_row(path, member["name"], member["overrides"], axis_keys))
      elif member["status"] == "failed":
        failures.append(Failure(member["name"], member["overrides"],
                                member.get("error", "failed")))
    return rows, axis_keys, failures
  if (folder / "results.json").exists():
    return [_run_row(folder, folder.name, {}, [])], [], []
  raise JaxdlError(f"{folder} holds neither sweep.json nor results.json; pass a sweep or run "
                   "folder")


def _present(rows: Sequence[dict[str, Any]], metric: str) -> bool:
  return bool(rows) and all(isinstance(r.get(metric), (int, float)) for r in rows)


def default_metrics(rows: Sequence[dict[str, Any]]) -> list[str]:
  """The selection (validation) metric first, then the selected checkpoints' test metrics."""
  selection = {r.get("selection_metric") for r in rows}
  first = [m for m in selection if isinstance(m, str) and m != "last" and _present(rows, m)]
  tests = [m for m in ("test_accuracy", "test_mse", "test_loss") if _present(rows, m)]
  return first[:1] + tests if len(selection) == 1 else tests


def _check_metrics(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> None:
  for metric in metrics:
    missing = [r["member"] for r in rows if not isinstance(r.get(metric), (int, float))]
    if missing:
      raise JaxdlError(f"metric {metric!r} is missing from {missing[0]}'s results")


def summarize(rows: Sequence[dict[str, Any]], group_by: Sequence[str], metrics: Sequence[str],
              failures: Sequence[Failure] = ()) -> list[Group]:
  """Groups rows (and failures) by the ``group_by`` values, in first-seen order."""
  _check_metrics(rows, metrics)
  key = lambda values: tuple(repr(values.get(k)) for k in group_by)
  buckets: dict[tuple, list[dict[str, Any]]] = {}
  values: dict[tuple, dict[str, Any]] = {}
  for row in rows:
    buckets.setdefault(key(row), []).append(row)
    values.setdefault(key(row), row)
  failed: dict[tuple, list[str]] = {}
  for failure in failures:  # A group may have failed members only.
    failed.setdefault(key(failure.values), []).append(failure.member)
    buckets.setdefault(key(failure.values), [])
    values.setdefault(key(failure.values), failure.values)
  groups = []
  for bucket, members in buckets.items():
    predictions = [_predictions(r.get("_path")) for r in members] if members else []
    estimates = {m: intervals.estimate(members, m, predictions) for m in metrics} if members \
        else {}
    groups.append(Group({k: values[bucket].get(k) for k in group_by},
                        tuple(r["member"] for r in members), estimates,
                        tuple(failed.get(bucket, ())), tuple(members)))
  return groups


# --- ranking on validation; significance on test -------------------------------------------------

@dataclasses.dataclass
class Ranking:
  """The order of the groups, and which is best where a test says so.

  Attributes:
    metric: the validation metric ranked by (None: not ranked).
    mode: 'max' or 'min'.
    note: how (or why not) the groups were ranked, for the table's notes.
    order: group indices, each dataset's groups best first.
    rank: group index -> its rank ('1', '1=' for a tie with the best, '2', ...).
    bold: the groups shown as best (significantly better than every other of their dataset).
    test_metric: the metric the best is compared on.
    comparisons: group index -> its comparison with the best of its dataset.
  """

  metric: str | None
  mode: str = ""
  note: str = ""
  order: list[int] = dataclasses.field(default_factory=list)
  rank: dict[int, str] = dataclasses.field(default_factory=dict)
  bold: set[int] = dataclasses.field(default_factory=set)
  test_metric: str | None = None
  comparisons: dict[int, Comparison] = dataclasses.field(default_factory=dict)


def _selection(groups: Sequence[Group]) -> tuple[str | None, str, str]:
  """(metric, mode, note): the validation metric and direction all runs selected with."""
  rows = [r for g in groups for r in g.rows]
  without = [r["member"] for r in rows if not str(r.get("selection_metric", "")).startswith(
      "val_") or not isinstance(r.get(r["selection_metric"]), (int, float))]
  if without:
    return None, "", (f"Not ranked: {without[0]} has no validation metric (selection "
                      f"{next(r for r in rows if r['member'] == without[0]).get('selection_metric')!r}"
                      "), and the test set never chooses; keep data.val_fraction > 0 to rank.")
  metrics = {r["selection_metric"] for r in rows}
  modes = {r.get("selection_mode") for r in rows}
  if None in modes:
    missing = next(r["member"] for r in rows if r.get("selection_mode") is None)
    return None, "", (f"Not ranked: {missing} does not record the direction it selected in "
                      "(selection_mode; results of an older jaxdl), so better is unknown.")
  if len(metrics) > 1 or len(modes) > 1:
    return None, "", (f"Not ranked: the runs selected on different rules ({', '.join(sorted(metrics))}"
                      f"; modes {', '.join(sorted(map(str, modes)))}).")
  return metrics.pop(), modes.pop(), ""


def _test_metric(selection: str, groups: Sequence[Group]) -> str | None:
  """The test counterpart of the selection metric, where every run has it."""
  rows = [r for g in groups for r in g.rows]
  for metric in ("test_" + intervals.base_name(selection), "test_accuracy", "test_loss"):
    if _present(rows, metric):
      return metric
  return None


def _strata(groups: Sequence[Group], strata_keys: Sequence[str]) -> dict[tuple, list[int]]:
  out: dict[tuple, list[int]] = {}
  for i, g in enumerate(groups):
    out.setdefault(tuple(repr(g.values.get(k)) for k in strata_keys), []).append(i)
  return out


def rank(groups: Sequence[Group], strata_keys: Sequence[str] = ()) -> Ranking:
  """Ranks groups on validation within each stratum (dataset); tests the best against the rest."""
  finished = [i for i, g in enumerate(groups) if g.rows]
  metric, mode, note = _selection([groups[i] for i in finished])
  if metric is None:
    return Ranking(None, note=note, order=list(range(len(groups))))
  test_metric = _test_metric(metric, [groups[i] for i in finished])
  ranking = Ranking(metric, mode, order=[], test_metric=test_metric)
  sign = 1.0 if mode == "max" else -1.0
  untested = []
  for members in _strata(groups, strata_keys).values():
    scored = sorted((i for i in members if groups[i].rows),
                    key=lambda i: -sign * _mean(groups[i], metric))
    ranking.order += scored + [i for i in members if not groups[i].rows]
    if not scored:
      continue
    why = _rank_stratum(groups, scored, ranking, sign)
    if why:
      untested.append(why)
  ranking.note = (f"Ranked by {metric} ({'higher' if mode == 'max' else 'lower'} is better, as "
                  "the runs selected), within each dataset: model selection never looks at test "
                  "data. " + _significance_note(ranking, untested))
  return ranking


def _mean(group: Group, metric: str) -> float:
  return float(sum(r[metric] for r in group.rows) / len(group.rows))


def _rank_stratum(groups, scored: list[int], ranking: Ranking, sign: float) -> str:
  """Tests the stratum's best against each other group; sets ranks and bold. Returns why
  nothing could be tested ('' when tested)."""
  best = scored[0]
  ranking.rank[best] = "1"
  if len(scored) == 1:
    return ""
  found, why = [], ""
  if ranking.test_metric is not None:
    for i in scored[1:]:
      try:
        found.append(intervals.compare(groups[best].rows, groups[i].rows, ranking.test_metric,
                                       groups[best].predictions(), groups[i].predictions()))
      except ValueError as e:
        why = str(e)
        break
  if why or ranking.test_metric is None or any(c is None for c in found):
    for place, i in enumerate(scored[1:], start=2):
      ranking.rank[i] = str(place)
    return why or "the groups share no fold and seed to pair"
  for i, c in zip(scored[1:], intervals.adjust(found)):
    ranking.comparisons[i] = c
  beaten = {i for i, c in ranking.comparisons.items()
            if i in scored and c.significant(ALPHA) and sign * c.difference > 0}
  place = 2
  for i in scored[1:]:
    ranking.rank[i] = str(place) if i in beaten else "1="
    place += 1
  if beaten >= set(scored[1:]):
    ranking.bold.add(best)
  return ""


def _significance_note(ranking: Ranking, untested: Sequence[str]) -> str:
  if untested:
    return (f"Not tested for significance ({untested[0]}), so no group is shown as best; ranks "
            "follow the validation means.")
  tests = sorted({c.test for c in ranking.comparisons.values()})
  if not tests:
    return ""
  return (f"Bold: better on {ranking.test_metric} than every other group of its dataset "
          f"(paired: {'; '.join(tests)}; Holm-corrected p < {ALPHA}); '1=': not significantly "
          "different from the best.")


# --- the commands ------------------------------------------------------------------------------

def render(groups: Sequence[Group], group_by: Sequence[str], metrics: Sequence[str],
           fmt: str = "markdown", digits: int = 4, failures: Sequence[Failure] = (),
           strata_keys: Sequence[str] | None = None) -> str:
  """The table as Markdown, LaTeX (booktabs) or CSV, ranked as ``rank`` says."""
  if fmt not in FORMATS:
    raise JaxdlError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
  if not groups:
    raise JaxdlError("no finished members to report")
  strata = [k for k in group_by if k.startswith("data.")] if strata_keys is None else strata_keys
  ranking = rank(groups, strata)
  table = tables.Table(groups, group_by, metrics, ranking, failures, digits)
  return {"csv": table.csv, "markdown": table.markdown, "latex": table.latex}[fmt]()


def report(folder: str | pathlib.Path, fmt: str = "markdown", group_by: Sequence[str] | None = None,
           metrics: Sequence[str] | None = None) -> str:
  """Loads ``folder`` and renders its table (grouped over seeds and folds unless ``group_by``).

  A ``jaxdl tune`` folder gives its trials, the best by validation and the importances.
  """
  if (pathlib.Path(folder) / "tune.json").exists():
    from jaxdl.sweeps.tune import tune_report  # Optuna, only for tune folders.

    return tune_report(pathlib.Path(folder))
  rows, axis_keys, failures = load_rows(folder)
  if not rows:
    detail = f" ({len(failures)} failed: {failures[0].error})" if failures else ""
    raise JaxdlError(f"{folder}: no finished members yet{detail}")
  group_by = _group_keys(rows, axis_keys, group_by)
  metrics = list(metrics) if metrics else default_metrics(rows)
  if not metrics:
    raise JaxdlError(f"{folder}: no metric is in every member's results; name them with --metric")
  table = render(summarize(rows, group_by, metrics, failures), group_by, metrics, fmt,
                 failures=failures)
  unfinished = _unfinished(pathlib.Path(folder), len(rows) + len(failures))
  if unfinished and fmt == "markdown":
    table += (f"{unfinished} member(s) have not finished yet (pending or running, e.g. in "
              "other shards): the table covers the finished ones.\n")
  return table


def pivot(folders: Sequence[str | pathlib.Path], rows_key: str, cols_key: str,
          metric: str | None = None, fmt: str = "markdown", digits: int = 4) -> str:
  """Several sweep folders as one ``rows_key`` x ``cols_key`` table (models x datasets).

  Each cell is one configuration (its seeds and folds averaged) with its interval;
  within each column the best row (ranked on validation) is bold where a paired test
  finds it better than every other row of that column.
  """
  if fmt not in ("markdown", "latex"):
    raise JaxdlError(f"a pivoted table is markdown or latex, not {fmt!r}")
  rows, failures = [], []
  for folder in folders:
    found, _, failed = load_rows(folder)
    rows += found
    failures += failed
  return pivot_rows(rows, failures, rows_key, cols_key, metric, fmt, digits)


def pivot_rows(rows: Sequence[dict[str, Any]], failures: Sequence[Failure], rows_key: str,
               cols_key: str, metric: str | None = None, fmt: str = "markdown",
               digits: int = 4) -> str:
  """``pivot`` of runs already loaded (``load_rows``'s rows, relabelled as a study
  needs)."""
  for key in (rows_key, cols_key):
    if not any(key in r for r in rows):
      raise JaxdlError(f"--rows/--cols {key!r} is neither a config key nor a result of these "
                       "runs (e.g. model.name, data.name)")
  metric = metric or next((m for m in ("test_accuracy", "test_mse", "test_loss")
                           if _present(rows, m)), None)
  if metric is None:
    raise JaxdlError("no test metric is in every run's results; name one with --metric")
  selection = default_metrics(rows)[:1]
  groups = summarize(rows, [rows_key, cols_key], [*selection, metric], failures)
  ranking = rank(groups, [cols_key])
  return tables.Pivot(groups, rows_key, cols_key, metric, ranking, failures, digits).render(fmt)


def compare_folders(folder_a: str | pathlib.Path, folder_b: str | pathlib.Path,
                    metrics: Sequence[str] | None = None, digits: int = 4) -> str:
  """Whether the configuration in ``folder_a`` differs from ``folder_b``'s, paired by fold,
  split and seed, on each metric (Holm-corrected over the metrics), as Markdown."""
  groups = []
  for folder in (folder_a, folder_b):
    rows, axis_keys, _ = load_rows(folder)
    keys = _group_keys(rows, axis_keys, None)
    found = summarize(rows, keys, [])
    if len(found) != 1:
      raise JaxdlError(f"{folder} holds {len(found)} configurations (swept: {', '.join(keys)}); "
                       "compare single configurations, or use jaxdl report DIR --against "
                       "KEY=VALUE")
    groups.append(found[0])
  a, b = groups
  metrics = list(metrics) if metrics else [m for m in default_metrics(list(a.rows))
                                           if m.startswith("test_")]
  found = []
  for metric in metrics:
    try:
      comparison = intervals.compare(a.rows, b.rows, metric, a.predictions(), b.predictions())
    except ValueError as e:
      raise JaxdlError(str(e)) from e
    if comparison is None:
      raise JaxdlError(f"{folder_a} and {folder_b} share no (split, fold, seed) to pair; run "
                       "both on the same folds and seeds")
    found.append(comparison)
  return tables.comparisons_markdown(
      [(f"{pathlib.Path(folder_a).name} vs {pathlib.Path(folder_b).name}", c)
       for c in intervals.adjust(found)], digits)


def against(folder: str | pathlib.Path, reference: str, metric: str | None = None,
            group_by: Sequence[str] | None = None, digits: int = 4) -> str:
  """Every group of ``folder`` compared with the group ``KEY=VALUE`` (Holm over the groups)."""
  key, sep, value = reference.partition("=")
  if not sep:
    raise JaxdlError(f"--against {reference!r}: write it as KEY=VALUE (e.g. model.name=seed_cnn)")
  rows, axis_keys, _ = load_rows(folder)
  keys = _group_keys(rows, axis_keys, group_by)
  groups = summarize(rows, keys, [])
  chosen = [g for g in groups if str(g.values.get(key)) == value]
  if len(chosen) != 1:
    raise JaxdlError(f"--against {reference}: {len(chosen)} groups match; values of {key}: "
                     f"{', '.join(sorted({str(g.values.get(key)) for g in groups}))}")
  base = chosen[0]
  metric = metric or next(m for m in default_metrics(rows) if m.startswith("test_"))
  pairs = []
  for g in groups:
    if g is base:
      continue
    try:
      found = intervals.compare(g.rows, base.rows, metric, g.predictions(), base.predictions())
    except ValueError as e:
      raise JaxdlError(str(e)) from e
    if found is not None:
      label = ", ".join(f"{k}={tables.value_text(v)}" for k, v in g.values.items())
      pairs.append((label, found))
  if not pairs:
    raise JaxdlError(f"no group shares a (split, fold, seed) with {reference} to pair")
  adjusted = intervals.adjust([c for _, c in pairs])
  return tables.comparisons_markdown([(f"{label} vs {reference}", c)
                                      for (label, _), c in zip(pairs, adjusted)], digits)


def _group_keys(rows: list[dict], axis_keys: Sequence[str],
                group_by: Sequence[str] | None) -> list[str]:
  """``group_by``, checked against the rows; by default every swept axis but the repetitions."""
  keys = list(group_by) if group_by else [k for k in axis_keys if k not in REPETITION_AXES]
  unknown = [k for k in keys if all(k not in r for r in rows)]
  if unknown:
    raise JaxdlError(f"--group-by {unknown[0]!r} is not a swept axis or result; axes: "
                     f"{', '.join(axis_keys) or 'none'}")
  return keys


def _unfinished(folder: pathlib.Path, accounted: int) -> int:
  """Members of a sweep that neither finished nor failed."""
  if not (folder / "sweep.json").exists():
    return 0
  return len(read_json(folder / "sweep.json")["members"]) - accounted


__all__ = ["ALPHA", "FORMATS", "Failure", "Group", "Ranking", "against", "compare_folders",
           "default_metrics", "load_rows", "pivot", "pivot_rows", "rank", "render", "report",
           "summarize"]
