"""What the studies share: where the offline data is, sweeps over seeds, figures."""

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402

from jaxdl.configs import apply_overrides  # noqa: E402
from jaxdl.configs.default import get_config  # noqa: E402
from jaxdl.sweep.axes import parse_axis  # noqa: E402
from jaxdl.sweep.report import load_rows  # noqa: E402
from jaxdl.sweep.run import run_sweep  # noqa: E402


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
  base.lock()
  return apply_overrides(base, {k.replace("__", "."): v for k, v in overrides.items()})


def seeds_sweep(base: ml_collections.ConfigDict, folder: pathlib.Path, seeds: int,
                extra_axes: Sequence[str] = (), log=print) -> list[dict[str, Any]]:
  """Runs ``base`` over ``seeds`` seeds (and ``extra_axes``) and returns the finished rows."""
  axes = [parse_axis(a) for a in extra_axes] + [parse_axis(f"seed=0:{seeds}")]
  run_sweep(base, axes, folder, quiet=True, log=log)
  return load_rows(folder)[0]


def save_figure(fig, path: pathlib.Path) -> str:
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path.name
