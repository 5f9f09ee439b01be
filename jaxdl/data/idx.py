"""MNIST-format IDX files (LeCun et al.), gzipped or not.

An IDX file starts with a 4-byte magic number: two zero bytes, a type code
(0x08 = uint8, ...) and the number of dimensions, then one big-endian uint32
per dimension, then the data. A folder of the MNIST layout holds
``<prefix>-images-idx3-ubyte[.gz]`` and ``<prefix>-labels-idx1-ubyte[.gz]``
pairs, ``train`` and ``t10k`` (test) being the usual prefixes.
"""

import gzip
import zlib
import pathlib
import re

import numpy as np

from jaxdl.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_SPLIT_NAMES = {"train": "train", "t10k": "test", "test": "test"}
_FILE = re.compile(r"^(?P<prefix>[\w.]+?)[-_.](?P<kind>images|labels)[-_.]idx(?P<ndim>\d)[-_.]ubyte(\.gz)?$")


def read_idx(path: str | pathlib.Path) -> np.ndarray:
  """Reads one IDX file into an array; raises DataError if it is not a valid one."""
  path = pathlib.Path(path)
  try:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
  except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise DataError(f"{path}: cannot read ({e}); the file is missing or corrupt, "
                    "download it again") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
    raise DataError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'empty'}, "
                    "expected 0000 then a type code such as 08 and the rank)")
  dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f"{path}: truncated IDX header; download the file again")
  shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
  expected = header + int(np.prod(shape)) * dtype.itemsize
  if len(raw) != expected:
    raise DataError(f"{path}: IDX file has {len(raw)} bytes but its header {shape} needs "
                    f"{expected}; it is truncated or corrupt, download it again")
  return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_idx_folder(folder: str | pathlib.Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]],
                                                         list[str]]:
  """Reads every images/labels pair in ``folder``.

  Returns:
    ``{split: (images <uint8>[n, h, w], labels [n])}`` with split 'train' or
    'test' (or the file prefix), and notes on files that had no partner.
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise DataError(f"data folder {str(folder)!r} does not exist; set data.name to "
                    "idx:<folder with *-images-idx3-ubyte[.gz] and *-labels-idx1-ubyte[.gz]>")
  files: dict[str, dict[str, pathlib.Path]] = {}
  for path in sorted(folder.iterdir()):
    m = _FILE.match(path.name)
    if m:
      files.setdefault(m["prefix"], {})[m["kind"]] = path
  splits, notes = {}, []
  for prefix, pair in sorted(files.items()):
    if set(pair) != {"images", "labels"}:
      notes.append(f"{folder}: {next(iter(pair.values())).name} has no matching "
                   f"{'images' if 'labels' in pair else 'labels'} file, so it is not used")
      continue
    images, labels = read_idx(pair["images"]), read_idx(pair["labels"])
    if len(images) == 0:
      raise DataError(f"{pair['images']} holds 0 images (its header says so); the file is "
                      "truncated or not a dataset: download it again")
    if len(images) != len(labels):
      raise DataError(f"{pair['images']} holds {len(images)} images but {pair['labels']} "
                      f"holds {len(labels)} labels; the pair must match")
    splits[_SPLIT_NAMES.get(prefix, prefix)] = (images, labels)
  if not splits:
    raise DataError(f"data folder {folder} holds no IDX images/labels pair (expected names like "
                    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz)")
  return splits, notes
