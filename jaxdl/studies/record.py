"""A study as a part: a record found by built-in name or ``PKG.MODULE:ATTR``, as models are.

A study runs its experiments into a folder and returns a Markdown document built from
the run folders there; ``jaxdl reproduce NAME`` runs one, heads the document with the
command, commit, versions, machine and time, and writes it beside the runs. The seed
document's studies are built in; a paper's reproduction (``kim2014``) lives beside its
recipe in ``experiments/`` and is registered by name, exactly as a user's study is found
by its import path.
"""

import dataclasses
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

from jaxdl.errors import ConfigError
from jaxdl.parts import Registry


@dataclasses.dataclass(frozen=True)
class StudyOptions:
  """What ``jaxdl reproduce`` passes a study.

  Attributes:
    quick: tiny budgets (CI): the numbers show the machinery works, nothing more.
    seeds: runs per configuration (studies that take ``seeds``).
    split_seeds: data splits or fold assignments per configuration (``split_seeds``).
    datasets: a subset of the study's datasets (``datasets``); empty: all.
  """

  quick: bool = False
  seeds: int = 1
  split_seeds: int = 1
  datasets: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Study:
  """A study: its runs, its document and which options it takes.

  Attributes:
    name: how ``jaxdl reproduce`` names it.
    title: the document's first heading.
    document: the Markdown file written in the work folder (``results.md``).
    run: ``run(workdir, options, log) -> (intro, body)``: trains (or resumes) every run
      into ``workdir`` and returns the Markdown after the heading and before the sections
      (the data it used), and the sections themselves.
    options: the ``StudyOptions`` fields besides ``quick`` it reads.
    description: one line for ``jaxdl parts studies``.
  """

  name: str
  title: str
  document: str
  run: Callable[[pathlib.Path, StudyOptions, Callable[[str], None]], tuple[str, str]]
  options: tuple[str, ...] = ()
  description: str = ""

  def check(self, options: StudyOptions) -> None:
    """Refuses options this study does not take, in one line."""
    given = [name for name in ("seeds", "split_seeds", "datasets")
             if getattr(options, name) != getattr(StudyOptions(), name)]
    refused = [name for name in given if name not in self.options]
    if refused:
      flag = "--" + refused[0].replace("_", "-")
      takes = ", ".join("--" + o.replace("_", "-") for o in self.options) or "no options"
      raise ConfigError(f"{flag} is not an option of study {self.name!r} (it takes {takes})")


def _as_study(name: str, obj: Any) -> Study:
  if isinstance(obj, Study):
    return obj
  raise ConfigError(f"study {name!r} is a {type(obj).__name__}, not a jaxdl.studies.Study; "
                    "define STUDY = Study(name=..., title=..., document=..., run=...)")


STUDIES: Registry[Study] = Registry("study", _as_study)


def checkout_study(file: str, attr: str = "run") -> Callable[..., tuple[str, str]]:
  """A ``run`` that loads ``experiments/<file>`` of this checkout (or of the working
  directory) when called, and calls its function ``attr``: a built-in name for a study whose
  code lives beside its recipe, outside the package."""

  def run(workdir: pathlib.Path, options: StudyOptions, log) -> tuple[str, str]:
    from jaxdl.configs.loading import load_module

    candidates = [pathlib.Path(__file__).resolve().parents[2] / "experiments" / file,
                  pathlib.Path.cwd() / "experiments" / file]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
      raise ConfigError(f"this study is experiments/{file}, which is not here; run it from a "
                        "checkout of jaxdl (git clone), where the experiments folder is")
    return getattr(load_module(str(path)), attr)(workdir, options, log)

  return run


def resolve(name: str, experiment: str = "") -> Study:
  return STUDIES.resolve(name, experiment)


__all__: Sequence[str] = ["STUDIES", "Study", "StudyOptions", "checkout_study", "resolve"]
