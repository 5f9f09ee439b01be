"""Text classification data: tokenizer, vocabulary, local files and TFDS text datasets.

Tokens are lower-cased words and single punctuation marks. The vocabulary is
built from the training split only: the ``vocab_size - 2`` most frequent words
(ties broken alphabetically), after PAD = 0 and OOV = 1. Texts become
``<int32>[n, max_len]`` token ids (truncated at ``max_len``, padded with PAD)
and ``<int32>[n]`` lengths, so recurrent layers can mask the padding.

Local layouts for ``textfile:<dir>`` (detected in this order):
  * ``train.tsv`` / ``train.csv`` (+ ``test``, and ``dev`` or ``valid``) with a
    header row; columns ``data.text_key`` and ``data.label_key``.
  * split files of ``LABEL TEXT`` lines: ``*.train``, ``*.dev``, ``*.test`` (the
    SST-2 layout) or ``train.txt``, ``dev.txt``, ``test.txt``.
  * one file per class, one example per line (the MR layout:
    ``rt-polarity.pos``, ``rt-polarity.neg``); the class is the file's last
    suffix (``pos``), or its name when it has none.
Lines end at ``\\n`` only (MR contains U+0085, which ``str.splitlines`` would
break on); blank lines are skipped.
"""

import collections
import csv
import dataclasses
import io
import pathlib
import re

import ml_collections
import numpy as np

from jaxdl.data import tfds_source
from jaxdl.data.arrays import Split, check_split_sizes, hold_out_test, refuse_folds, split_indices
from jaxdl.data.spec import DataSpec, Datasets
from jaxdl.errors import DataError

PAD, OOV = "<pad>", "<oov>"
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_SPLIT_WORDS = {"train": "train", "dev": "val", "valid": "val", "validation": "val",
                "test": "test"}
_IGNORED = {".md", ".txt~", ".json", ".py"}


def tokenize(text: str) -> list[str]:
  """Lower-cased words (with inner apostrophes) and single punctuation marks."""
  return _TOKEN.findall(text.lower())


def build_vocab(texts: list[str], size: int) -> tuple[str, ...]:
  """PAD, OOV, then the ``size - 2`` most frequent words of ``texts`` (ties by word)."""
  if size < 3:
    raise DataError(f"data.vocab_size must be at least 3 (PAD, OOV and one word), got {size}")
  counts = collections.Counter(token for text in texts for token in tokenize(text))
  words = sorted(counts, key=lambda w: (-counts[w], w))[:size - 2]
  return (PAD, OOV, *words)


def encode(texts: list[str], vocab: tuple[str, ...], max_len: int) -> tuple[np.ndarray, np.ndarray]:
  """Token ids ``<int32>[n, max_len]`` (PAD-padded, truncated) and lengths ``<int32>[n]``."""
  return encode_tokens([tokenize(text) for text in texts], vocab, max_len)


def encode_tokens(tokenized: list[list[str]], vocab: tuple[str, ...], max_len: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """``encode`` of texts already split into tokens."""
  index = {w: i for i, w in enumerate(vocab)}
  ids = np.zeros((len(tokenized), max_len), np.int32)
  lengths = np.zeros(len(tokenized), np.int32)
  for row, tokens in enumerate(tokenized):
    kept = [index.get(t, 1) for t in tokens[:max_len]]
    ids[row, :len(kept)] = kept
    lengths[row] = len(kept)
  return ids, lengths


@dataclasses.dataclass
class _Examples:
  """Texts with string labels and where each came from (for error messages)."""

  texts: list[str] = dataclasses.field(default_factory=list)
  labels: list[str] = dataclasses.field(default_factory=list)
  origins: list[str] = dataclasses.field(default_factory=list)
  blank: list[str] = dataclasses.field(default_factory=list)  # Where blank lines were left out.

  def add(self, text: str, label: str, origin: str) -> None:
    self.texts.append(text)
    self.labels.append(label)
    self.origins.append(origin)


def _read_lines(path: pathlib.Path, encoding: str, blank: list[str] | None = None
                ) -> list[tuple[int, str]]:
  """(line number, text) of each non-blank line, split on ``\\n`` only; ``blank`` collects
  ``FILE:LINE`` of the blank lines left out (the file's final newline ends a line, so it
  makes none)."""
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e})") from e
  if not raw.strip():
    raise DataError(f"{path} is empty; every split file needs at least one example")
  lines = []
  parts = raw.split(b"\n")
  if parts[-1] == b"":
    parts.pop()
  for number, line in enumerate(parts, start=1):
    try:
      text = line.decode(encoding).rstrip("\r")
    except UnicodeDecodeError as e:
      raise DataError(f"{path}:{number}: bytes {line[e.start:e.start + 4]!r} do not decode as "
                      f"{encoding}; set data.encoding (e.g. latin-1)") from None
    except LookupError:
      raise DataError(f"data.encoding {encoding!r} is not a known text encoding") from None
    if text.strip():
      lines.append((number, text))
    elif blank is not None:
      blank.append(f"{path}:{number}")
  return lines


def _split_of(path: pathlib.Path) -> str | None:
  for part in (path.suffix.lstrip(".").lower(), path.stem.lower()):
    if part in _SPLIT_WORDS:
      return _SPLIT_WORDS[part]
  return None


def _data_files(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                and p.suffix.lower() not in _IGNORED and p.name.upper() != "README")


def _read_table(path: pathlib.Path, cfg: ml_collections.ConfigDict, into: _Examples) -> None:
  delimiter = "\t" if path.suffix == ".tsv" else ","
  text = "\n".join(t for _, t in _read_lines(path, cfg.encoding, into.blank))
  reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
  columns = reader.fieldnames or []
  for key in (cfg.text_key, cfg.label_key):
    if key not in columns:
      raise DataError(f"{path}: no column {key!r}; its header has {', '.join(columns)} "
                      "(set data.text_key / data.label_key)")
  for number, row in enumerate(reader, start=2):
    label = (row[cfg.label_key] or "").strip()
    if not label:
      raise DataError(f"{path}:{number}: the {cfg.label_key!r} column is empty or missing; every "
                      "row needs a label (fix the row, or delete it)")
    into.add(row[cfg.text_key] or "", label, f"{path}:{number}")


def _read_labelled_lines(split_files: dict[pathlib.Path, str], encoding: str) -> dict:
  """``LABEL TEXT`` lines (the SST-2 layout) into {split: _Examples}."""
  splits = {}
  for path, split in split_files.items():
    examples = splits.setdefault(split, _Examples())
    for number, line in _read_lines(path, encoding, examples.blank):
      label, _, text = line.strip().partition(" ")
      if not text:
        raise DataError(f"{path}:{number}: expected 'LABEL TEXT', got {line[:60]!r}")
      examples.add(text, label, f"{path}:{number}")
  return splits


def _read_class_files(files: list[pathlib.Path], encoding: str) -> dict:
  """One file per class, one example per line (the MR layout): a train split."""
  examples = _Examples()
  for path in files:
    label = path.suffix.lstrip(".") or path.name
    for number, line in _read_lines(path, encoding, examples.blank):
      examples.add(line.strip(), label, f"{path}:{number}")
  return {"train": examples}


def _read_folder(folder: pathlib.Path, cfg: ml_collections.ConfigDict) -> tuple[dict, str]:
  """Reads ``folder`` into {split: _Examples} and names the layout it found."""
  if not folder.is_dir():
    raise DataError(f"text folder {str(folder)!r} does not exist; set data.name to "
                    "textfile:<folder>")
  files = _data_files(folder)
  tables = {_split_of(p): p for p in files if p.suffix in (".tsv", ".csv") and _split_of(p)}
  if "train" in tables:
    splits = {}
    for split, path in tables.items():
      _read_table(path, cfg, splits.setdefault(split, _Examples()))
    return splits, "table"
  split_files = {p: _split_of(p) for p in files if _split_of(p)}
  if "train" in split_files.values():
    return _read_labelled_lines(split_files, cfg.encoding), "labelled lines"
  if len(files) < 2:
    raise DataError(f"text folder {folder} holds no train.tsv/.csv, no *.train file and not "
                    "one file per class (need at least two)")
  return _read_class_files(files, cfg.encoding), "one file per class"


def _tfds_text(cfg: ml_collections.ConfigDict, name: str) -> tuple[dict, int]:
  splits = {}
  for split, tfds_split in (("train", cfg.train_split), ("test", cfg.test_split)):
    if tfds_split:
      columns = tfds_source.load_split(name, tfds_split, cfg.data_dir, cfg.download,
                                       (cfg.text_key, cfg.label_key))
      examples = splits.setdefault(split, _Examples())
      for i, (text, label) in enumerate(zip(columns[cfg.text_key], columns[cfg.label_key])):
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        examples.add(text, str(int(label)), f"TFDS {name}[{tfds_split}][{i}]")
  return splits, tfds_source.num_classes(name, cfg.label_key, cfg.data_dir)


def _class_names(labels: list[str]) -> tuple[str, ...]:
  names = sorted(set(labels))
  if all(re.fullmatch(r"-?\d+", n) for n in names):
    names = sorted(names, key=int)
  return tuple(names)


def _label_ids(examples: _Examples, classes: tuple[str, ...], split: str) -> np.ndarray:
  index = {c: i for i, c in enumerate(classes)}
  for label, origin in zip(examples.labels, examples.origins):
    if label not in index:
      raise DataError(f"{origin}: label {label!r} in the {split} split never occurs in the "
                      f"training split (labels: {', '.join(classes)})")
  return np.array([index[label] for label in examples.labels], np.int32)


def _take(examples: _Examples, index: np.ndarray) -> _Examples:
  return _Examples([examples.texts[i] for i in index], [examples.labels[i] for i in index],
                   [examples.origins[i] for i in index])


def _read_source(cfg: ml_collections.ConfigDict) -> tuple[dict, tuple[str, ...], list[str]]:
  """The raw splits, the class names, and a note on where they came from."""
  kind, _, arg = cfg.name.partition(":")
  if kind == "textfile":
    splits, layout = _read_folder(pathlib.Path(arg), cfg)
    declared_classes, note = 0, f"text files in {arg} ({layout} layout, encoding {cfg.encoding})"
  else:
    splits, declared_classes = _tfds_text(cfg, arg)
    note = f"TFDS {arg} (train split {cfg.train_split!r}, test split {cfg.test_split!r})"
  if cfg.label_separator:  # Coarse labels: TREC's 'DESC:manner' is class 'DESC'.
    for examples in splits.values():
      examples.labels[:] = [label.split(cfg.label_separator, 1)[0] for label in examples.labels]
    note += f", labels cut at the first {cfg.label_separator!r}"
  train = splits["train"]
  if not train.texts:
    raise DataError(f"{cfg.name}: the training split is empty")
  classes = _class_names(train.labels)
  if len(classes) < 2:
    raise DataError(f"{cfg.name}: the training data has one class only ({classes[0]!r}, e.g. "
                    f"{train.origins[0]}); a classifier needs examples of at least two classes")
  if declared_classes:
    classes = tuple(str(i) for i in range(declared_classes))
  return splits, classes, [note]


def _hold_out(splits: dict, train_ids: np.ndarray, cfg, notes: list[str]):
  """Train, validation and test examples (and train's label ids), held out where absent."""
  train, test, val = splits["train"], splits.get("test"), splits.get("val")
  if test is None:
    keep, held, note = hold_out_test(train_ids, cfg, cfg.name)
    test, train, train_ids = _take(train, held), _take(train, keep), train_ids[keep]
    notes.append(note)
  else:
    refuse_folds(cfg, cfg.name)
  if val is None:
    keep, held = split_indices(len(train.texts), cfg.val_fraction, [cfg.split_seed, 1],
                               train_ids, "validation")
    val, train, train_ids = _take(train, held), _take(train, keep), train_ids[keep]
    if len(held):
      notes.append(f"validation set: {len(held)} examples ({cfg.val_fraction:.0%}) held out of "
                   f"the training data, stratified, with data.split_seed={cfg.split_seed}")
  else:
    notes.append("validation set: the source's own dev split")
  check_split_sizes(cfg.name, len(train.texts), len(test.texts))
  return train, train_ids, val, test


def _blank_note(splits: dict) -> list[str]:
  blank = [origin for examples in splits.values() for origin in examples.blank]
  if not blank:
    return []
  return [f"{len(blank)} blank line(s) left out, not examples ({', '.join(blank[:3])}"
          f"{', ...' if len(blank) > 3 else ''})"]


def _cut_note(name: str, tokenized: list[list[str]], max_len: int) -> list[str]:
  counts = [len(tokens) for tokens in tokenized]
  cut = sum(c > max_len for c in counts)
  if not cut:
    return []
  return [f"{cut} of {len(counts)} {name} texts are longer than data.max_len={max_len} tokens "
          f"and were cut (the longest has {max(counts)}); raise data.max_len to keep them whole"]


def build_text_data(cfg: ml_collections.ConfigDict) -> Datasets:
  """Loads, splits, tokenises and encodes the text dataset of ``config.data``."""
  splits, classes, notes = _read_source(cfg)
  changes = _blank_note(splits)
  train_ids = _label_ids(splits["train"], classes, "train")
  train, train_ids, val, test = _hold_out(splits, train_ids, cfg, notes)
  vocab = build_vocab(train.texts, cfg.vocab_size)
  notes.append(f"vocabulary: {len(vocab)} entries (PAD=0, OOV=1, then the most frequent "
               f"training words), texts truncated/padded to {cfg.max_len} tokens")

  def to_split(name: str, examples: _Examples, labels: np.ndarray) -> Split:
    tokenized = [tokenize(text) for text in examples.texts]
    changes.extend(_cut_note(name, tokenized, cfg.max_len))
    ids, lengths = encode_tokens(tokenized, vocab, cfg.max_len)
    return Split(ids, labels, {"lengths": lengths})

  train_split = to_split("training", train, train_ids)
  val_split = to_split("validation", val, _label_ids(val, classes, "validation"))
  test_split = to_split("test", test, _label_ids(test, classes, "test"))
  spec = DataSpec(name=cfg.name, task="classification", input_shape=(cfg.max_len,),
                  input_dtype="int32", num_classes=cfg.num_classes or len(classes),
                  num_train=len(train_split), num_val=len(val_split), num_test=len(test_split),
                  notes=tuple(notes + changes), vocab_size=len(vocab), class_names=classes,
                  changes=tuple(changes))
  return Datasets(train_split, val_split, test_split, spec, vocab)
