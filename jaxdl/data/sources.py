"""Data sources as records: which ``data.name`` each takes, how it builds, what a paper cites.

``build`` (in ``__init__``) and ``jaxdl cite`` ask these records; nothing else
dispatches on a data name. A researcher's own data arrives through ``py:`` (a
function) or ``imagefolder:`` (a folder of images), or as a function given to
the Python API.
"""

import dataclasses
import re
from collections.abc import Callable

import ml_collections

from jaxdl import parts
from jaxdl.data import tfds_source
from jaxdl.data.images import build_image_data
from jaxdl.data.python_source import PREFIX as PY, build_python_data
from jaxdl.data.spec import Datasets
from jaxdl.data.synthetic import build_synthetic_data
from jaxdl.data.text import build_text_data
from jaxdl.errors import DataError

Builder = Callable[[ml_collections.ConfigDict, str, Callable | None], Datasets]

# Public datasets and the papers behind them, found in a data name (a TFDS name, a folder).
KNOWN_DATASETS = [(r"(?<!fashion_)mnist", "lecun1998gradient"), ("fashion_mnist", "xiao2017fashion"),
                  ("cifar10", "krizhevsky2009learning"), ("imdb", "maas2011learning"),
                  (r"\bmr\b", "pang2005seeing"), ("sst", "socher2013recursive"),
                  ("ag_news", "zhang2015character")]


def _known(name: str) -> list[str]:
  return [key for pattern, key in KNOWN_DATASETS if re.search(pattern, name.lower())]


@dataclasses.dataclass(frozen=True)
class DataSource:
  """A kind of data.

  Attributes:
    name: the ``data.name`` it takes, or the prefix of it (ending in ``:``).
    build: ``(data_config, experiment, source) -> Datasets``.
    cite_keys: ``data.name -> BibTeX keys`` of the dataset's papers.
    description: for errors and listings.
    user_data: the researcher's own data (cited by name, with the run's commit).
  """

  name: str
  build: Builder
  cite_keys: Callable[[str], list[str]] = lambda name: []
  description: str = ""
  user_data: bool = False

  def matches(self, name: str) -> bool:
    return name == self.name or (self.name.endswith(":") and name.startswith(self.name)
                                 and len(name) > len(self.name))


def _tfds(cfg: ml_collections.ConfigDict, experiment: str, source) -> Datasets:
  name = cfg.name.partition(":")[2]
  if tfds_source.is_text(name, cfg.train_split, cfg.data_dir, cfg.download, cfg.text_key):
    return build_text_data(cfg)
  return build_image_data(cfg)


_images = lambda cfg, experiment, source: build_image_data(cfg)
_synthetic = lambda cfg, experiment, source: build_synthetic_data(cfg)

SOURCES = (
    DataSource("digits", _images, lambda n: ["alpaydin1998optdigits"],
               "scikit-learn's bundled 8x8 digits"),
    DataSource("idx:", _images, _known, "MNIST-format IDX files in a folder"),
    DataSource("tfds:", _tfds, _known, "a TFDS dataset (images or text)"),
    DataSource("textfile:", lambda cfg, e, s: build_text_data(cfg), _known,
               "text classification files in a folder"),
    DataSource("imagefolder:", _images, lambda n: [], "one sub-folder of images per class",
               user_data=True),
    DataSource("arrayrecord:", _images, _known,
               "image examples in ArrayRecord files (jaxdl.data.arrayrecord.Writer)"),
    DataSource(PY, lambda cfg, e, s: build_python_data(cfg, s, e), lambda n: [],
               "a function returning the splits", user_data=True),
    DataSource("adding", _synthetic, lambda n: ["hochreiter1997long", "le2015simple"],
               "the adding problem"),
    DataSource("memory", _synthetic, lambda n: ["hochreiter1997long"], "a recall task"),
    DataSource("seq_digits", _synthetic, lambda n: ["alpaydin1998optdigits", "le2015simple"],
               "the digits pixel by pixel"),
)


def resolve(name: str) -> DataSource:
  """The source of ``data.name``."""
  if name.startswith(parts.PYTHON_OBJECT):
    return DataSource(name, lambda cfg, e, s: build_python_data(cfg, s, e),
                      description="a function given to the API", user_data=True)
  for source in SOURCES:
    if source.matches(name):
      return source
  raise DataError(f"unknown data.name {name!r}; use one of "
                  + ", ".join(s.name + ("<...>" if s.name.endswith(":") else "")
                              for s in SOURCES))
