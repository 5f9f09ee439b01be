"""Pretrained word vectors for a vocabulary: word2vec binary or text, and GloVe text files.

Kim (2014)'s CNN-static, -non-static and -multichannel start from the word2vec vectors
trained on Google News (Mikolov et al. 2013); GloVe's (Pennington et al. 2014) are read the
same way. Only the vocabulary's words are kept while the file streams past, so a 3.6 GB file
costs the vocabulary's rows in memory. Words are matched exactly, as Kim's code matches its
vocabulary against word2vec's (``load_bin_vec``); the words a file lacks are left to the
model's own initialisation (Kim's ``add_unknown_words``: uniform in ±0.25).

Formats, by the file's name:
- ``*.bin`` (or ``*.bin.gz``): word2vec binary, a header line ``N D``, then per word its bytes,
  a space and D little-endian float32 values (a newline may precede the next word);
- anything else (gzipped or not): one word per line followed by D numbers, with word2vec's
  ``N D`` header line or without one (GloVe).
"""

import dataclasses
import gzip
import pathlib
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import numpy as np

from jaxdl.errors import DataError


@dataclasses.dataclass(frozen=True)
class WordVectors:
  """The vectors of a vocabulary's words.

  Attributes:
    vectors: ``float32 [len(vocab), dim]``, zero where the file has no vector.
    found: ``bool [len(vocab)]``, which words the file has.
    path: the file they came from.
  """

  vectors: np.ndarray
  found: np.ndarray
  path: str

  @property
  def dim(self) -> int:
    return self.vectors.shape[1]


def _open(path: pathlib.Path) -> BinaryIO:
  return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _is_binary(path: pathlib.Path) -> bool:
  return path.name.endswith((".bin", ".bin.gz"))


def _header(line: bytes) -> tuple[int, int] | None:
  fields = line.split()
  if len(fields) == 2 and all(f.isdigit() for f in fields):
    return int(fields[0]), int(fields[1])
  return None


def _binary_records(f: BinaryIO, path: pathlib.Path) -> Iterator[tuple[str, bytes, int]]:
  """(word, its vector's raw bytes, dim) for each word of a word2vec binary file."""
  header = _header(f.readline())
  if header is None:
    raise DataError(f"{path}: not a word2vec binary file (its first line is not 'N D'); name a "
                    "text file without the .bin suffix")
  count, dim = header
  for _ in range(count):
    word = bytearray()
    while (char := f.read(1)) != b" ":
      if not char:
        raise DataError(f"{path}: ends inside a word; the file is truncated")
      if char != b"\n":
        word += char
    raw = f.read(4 * dim)
    if len(raw) != 4 * dim:
      raise DataError(f"{path}: ends inside the vector of {word.decode(errors='replace')!r}; "
                      "the file is truncated")
    yield word.decode("utf-8", errors="replace"), raw, dim


def _text_records(f: BinaryIO, path: pathlib.Path) -> Iterator[tuple[str, bytes, int]]:
  """(word, its numbers as text, dim) for each line of a word2vec or GloVe text file."""
  dim = None
  for number, line in enumerate(f, 1):
    if number == 1 and (header := _header(line)):
      dim = header[1]
      continue
    fields = line.rstrip(b"\r\n").split(b" ")
    if len(fields) < 2:
      continue
    dim = dim or len(fields) - 1  # GloVe: the first line says how many numbers follow a word.
    if len(fields) < dim + 1:
      raise DataError(f"{path}:{number}: {len(fields) - 1} numbers after the word, not {dim}")
    word = b" ".join(fields[:len(fields) - dim])  # GloVe's rare words with spaces.
    yield word.decode("utf-8", errors="replace"), b" ".join(fields[-dim:]), dim


def read(path: str | pathlib.Path, vocab: Sequence[str]) -> WordVectors:
  """The vectors ``path`` holds for ``vocab``'s words (see the module docstring for formats).

  Raises:
    DataError: a missing or malformed file, or one that holds none of the words.
  """
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise DataError(f"word vectors file {path} does not exist; set model.vectors_file to a "
                    "word2vec (.bin or text) or GloVe file")
  index = {word: i for i, word in reversed(list(enumerate(vocab)))}  # First id of a word.
  vectors, found = None, np.zeros(len(vocab), bool)
  binary = _is_binary(path)
  with _open(path) as f:
    for word, raw, dim in (_binary_records if binary else _text_records)(f, path):
      if vectors is None:
        vectors = np.zeros((len(vocab), dim), np.float32)
      i = index.get(word)
      if i is None or found[i]:
        continue
      vectors[i] = (np.frombuffer(raw, "<f4") if binary
                    else np.array(raw.split(), np.float32))
      found[i] = True
  if vectors is None or not found.any():
    raise DataError(f"{path} holds no vector for any of the {len(vocab)} vocabulary words; is it "
                    "a word vectors file for this language and casing?")
  return WordVectors(vectors, found, str(path))
