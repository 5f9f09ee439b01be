"""What the studies share: where the offline data is, sweeps over seeds, figures."""

import dataclasses
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402

from jaxdl.configs import apply_overrides  # noqa: E402
from jaxdl.configs.data_fields import complete_data  # noqa: E402
from jaxdl.configs.default import get_config  # noqa: E402
from jaxdl.configs.model_fields import complete_model  # noqa: E402
from jaxdl.sweeps.axes import parse_axis  # noqa: E402
from jaxdl.sweeps.report import Failure, Group, load_rows, render, summarize  # noqa: E402
from jaxdl.sweeps.run import run_sweep  # noqa: E402


def shared_data_dir() -> pathlib.Path | None:
  """``$JAXDL_DATA_DIR``, else ``../shared/data`` beside the checkout or the working directory."""
  candidates = [os.environ.get("JAXDL_DATA_DIR", "")]
  candidates += [str(pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"),
                 str(pathlib.Path.cwd().parent / "shared" / "data")]
  for candidate in candidates:
    if candidate and pathlib.Path(candidate).is_dir():
      return pathlib.Path(candidate)
  return None


def config(**overrides: Any) -> ml_collections.ConfigDict:
  """The default config with dotted ``key=value`` overrides (given as keyword ``a__b=v``)."""
  base = get_config()
  complete_data(base)  # The default source's and model's own fields, as loading sets them.
  complete_model(base)
  base.lock()
  return apply_overrides(base, {k.replace("__", "."): v for k, v in overrides.items()})


@dataclasses.dataclass
class StudyRows:
  """A study's finished runs and failed members, labelled for its tables."""

  rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  failures: list[Failure] = dataclasses.field(default_factory=list)

  def add(self, found: "StudyRows", **labels: Any) -> "StudyRows":
    """Adds ``found``'s rows and failures with ``labels`` (the table's columns) set."""
    self.rows += [{**r, **labels} for r in found.rows]
    self.failures += [dataclasses.replace(f, values={**f.values, **labels})
                      for f in found.failures]
    return self

  def table(self, group_by: Sequence[str], metrics: Sequence[str],
            tasks: Sequence[str] = ()) -> tuple[list[Group], str]:
    """The groups, and their Markdown table (ranked on validation within each value of the
    ``tasks`` keys, failures counted)."""
    groups = summarize(self.rows, group_by, metrics, self.failures)
    return groups, render(groups, group_by, metrics, failures=self.failures, strata_keys=tasks)


def seeds_sweep(base: ml_collections.ConfigDict, folder: pathlib.Path, seeds: int,
                extra_axes: Sequence[str] = (), log=print) -> StudyRows:
  """Runs ``base`` over ``seeds`` seeds (and ``extra_axes``): its finished rows and failures."""
  axes = [parse_axis(a) for a in extra_axes] + [parse_axis(f"seed=0:{seeds}")]
  run_sweep(base, axes, folder, quiet=True, log=log)
  rows, _, failures = load_rows(folder)
  return StudyRows(rows, failures)


def save_figure(fig, path: pathlib.Path) -> str:
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path.name
