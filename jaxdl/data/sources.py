"""Data sources as records: which ``data.name`` each takes, its config fields, how it builds,
what a paper cites.

``build`` (in ``__init__``), the config's completion and ``jaxdl cite`` ask these records
(``SOURCES``); nothing else dispatches on a data name. A researcher's own data is a
``DataSource`` record (``DataSource.from_function``: its own fields and references) or a
data function at an import path ``PKG.MODULE:ATTR`` (``py:PKG.MODULE:ATTR`` is the same),
a folder of images (``imagefolder:``), or a function given to the Python API.
"""

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from jaxdl import parts
from jaxdl.data import fields as f
from jaxdl.data import images, synthetic, tfds_source
from jaxdl.data.python_source import PREFIX as PY, build_python_data
from jaxdl.data.spec import Datasets
from jaxdl.data.text import build_text_data
from jaxdl.errors import DataError

Builder = Callable[[ml_collections.ConfigDict, str], Datasets]

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
    build: ``(data_config, experiment) -> Datasets`` (the experiment file resolves import
      paths).
    cite_keys: ``data.name -> BibTeX keys`` of the dataset's papers.
    description: for errors and listings.
    user_data: the researcher's own data (cited by name, with the run's commit).
    fields: the source's own ``config.data`` fields and their defaults, beside the keys
      every source shares (``jaxdl/data/fields.py``).
    required: fields without a default (none of the built-ins has one).
    references: BibTeX entries of the dataset's papers, printed by ``jaxdl cite`` (a
      user's source carries its own; the built-ins' are jaxdl's, named by ``cite_keys``).
  """

  name: str
  build: Builder
  cite_keys: Callable[[str], list[str]] = lambda name: []
  description: str = ""
  user_data: bool = False
  fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  required: tuple[str, ...] = ()
  references: tuple[str, ...] = ()

  @classmethod
  def from_function(cls, function: Callable, fields: Mapping[str, Any] | None = None,
                    description: str = "", references: tuple[str, ...] = ()) -> "DataSource":
    """A researcher's source: ``function(data_config)`` returns the splits as ``py:`` takes
    them (``{"train": (x, y), "test": (x, y)}``) and reads its own ``fields`` from
    ``data_config`` (with these defaults, checked like every config key)."""
    return cls("", lambda cfg, experiment: build_python_data(cfg, function, experiment),
               description=description or function.__name__, user_data=True,
               fields={**f.USER_ARRAYS, **(fields or {})}, references=references)

  def matches(self, name: str) -> bool:
    return name == self.name or (self.name.endswith(":") and name.startswith(self.name)
                                 and len(name) > len(self.name))


def _tfds(cfg: ml_collections.ConfigDict, experiment: str) -> Datasets:
  name = cfg.name.partition(":")[2]
  if tfds_source.is_text(name, cfg.train_split, cfg.data_dir, cfg.download, cfg.text_key):
    return build_text_data(cfg)
  return images.build_image_data(cfg, images.tfds_images)


def _images(load: images.Loader) -> Builder:
  """The builder of an image source whose files ``load`` reads (images.py splits and scales)."""
  return lambda cfg, experiment: images.build_image_data(cfg, load)


def _generated(generate: synthetic.Generator) -> Builder:
  """The builder of a synthetic task whose sequences ``generate`` draws (synthetic.py)."""
  return lambda cfg, experiment: synthetic.build_generated_data(cfg, generate)


_python = lambda cfg, experiment: build_python_data(cfg, None, experiment)

class SourceRegistry(parts.Registry[DataSource]):
  """Data sources by ``data.name``: a built-in name (``digits``), a built-in prefix and its
  argument (``idx:FOLDER``, ``textfile:FOLDER``, ``py:PKG.MODULE:ATTR``), or the import path
  ``PKG.MODULE:ATTR`` of a ``DataSource`` record or of a data function (as ``py:`` takes)."""

  def resolve(self, name: str, experiment: str = "") -> DataSource:
    if parts.given_object(self.argument, name) is None:  # The API's function comes first.
      for record in self._records.values():
        if record.name.endswith(":") and record.matches(name):
          return record
    return super().resolve(name, experiment)


def _adapt(name: str, obj: Any) -> DataSource:
  """A user's data source at an import path: a ``DataSource`` record, or a data function."""
  if isinstance(obj, DataSource):
    return dataclasses.replace(obj, name=name)
  if callable(obj):
    return dataclasses.replace(DataSource.from_function(obj), name=name)
  raise DataError(f"data.name {name!r} is a {type(obj).__name__}; give a jaxdl.DataSource "
                  "record or a function (data_config) -> {'train': (x, y), 'test': (x, y)}")


SOURCES = SourceRegistry("data source", _adapt, key="data.name", argument="data")
for _record in (
    DataSource("digits", _images(images.digits), lambda n: ["alpaydin1998optdigits"],
               "scikit-learn's bundled 8x8 digits", fields=f.IMAGES),
    DataSource("idx:", _images(images.idx_folder), _known, "MNIST-format IDX files in a folder",
               fields=f.IMAGES),
    DataSource("tfds:", _tfds, _known, "a TFDS dataset (images or text)", fields=f.TFDS),
    DataSource("textfile:", lambda cfg, experiment: build_text_data(cfg), _known,
               "text classification files in a folder", fields={**f.TEXT, **f.COLUMNS}),
    DataSource("imagefolder:", _images(images.image_folder), lambda n: [],
               "one sub-folder of images per class", user_data=True, fields=f.IMAGES),
    DataSource("arrayrecord:", _images(images.arrayrecord_folder), _known,
               "image examples in ArrayRecord files (jaxdl.data.arrayrecord.Writer)",
               fields=f.IMAGES),
    DataSource(PY, _python, lambda n: [], "a function returning the splits", user_data=True,
               fields=f.USER_ARRAYS),
    DataSource("adding", _generated(synthetic.adding),
               lambda n: ["hochreiter1997long", "le2015simple"], "the adding problem",
               fields=f.SEQUENCE_SIZES),
    DataSource("memory", _generated(synthetic.memory), lambda n: ["hochreiter1997long"],
               "a recall task", fields=f.MEMORY),
    DataSource("seq_digits", lambda cfg, experiment: synthetic.build_seq_digits_data(cfg),
               lambda n: ["alpaydin1998optdigits", "le2015simple"], "the digits pixel by pixel",
               fields=f.SEQ_DIGITS),
):
  SOURCES.register(_record.name, _record)


def resolve(name: str, experiment: str = "") -> DataSource:
  """The source of ``data.name`` (``SOURCES.resolve``)."""
  return SOURCES.resolve(name, experiment)
