"""``imagefolder:<dir>``: the researcher's own images, one sub-folder per class.

Two layouts (class names are the sub-folders' names, sorted)::

  dir/train/<class>/*.png|jpg   and   dir/test/<class>/...   (a val/ tree is used if present)
  dir/<class>/*.png|jpg                                      (test and validation held out)

Images are decoded with Pillow, converted to one channel when every image is
grayscale (else RGB) and resized to ``data.image_size`` (needed when their sizes
differ); a file that does not decode is an error naming it.
"""

import pathlib

import numpy as np

from jaxdl.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _class_folders(root: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())


def _decode(path: pathlib.Path, size: int):
  from PIL import Image, UnidentifiedImageError  # Pillow comes with matplotlib.

  try:
    with Image.open(path) as image:
      image.load()
      grayscale = image.mode in ("1", "L", "I;16", "I", "F")
      image = image.convert("L" if grayscale else "RGB")
      if size > 0 and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
      return np.asarray(image, np.uint8), grayscale
  except (OSError, UnidentifiedImageError, ValueError) as e:
    raise DataError(f"{path}: cannot decode this image ({e}); delete or replace the file") from e


def read_tree(root: pathlib.Path, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
  """Every image under ``root/<class>/`` as ``<uint8>[n, h, w, c]`` and its class ids."""
  images, labels, gray = [], [], []
  for c, name in enumerate(classes):
    for path in _files(root / name) if (root / name).is_dir() else []:
      pixels, grayscale = _decode(path, size)
      images.append(pixels)
      labels.append(c)
      gray.append(grayscale)
  if not images:
    raise DataError(f"{root} holds no images ({', '.join(SUFFIXES)}) in its class folders")
  shapes = {im.shape[:2] for im in images}
  if len(shapes) > 1:
    raise DataError(f"images under {root} have {len(shapes)} different sizes (e.g. "
                    f"{sorted(shapes)[:2]}); set data.image_size to resize them all")
  channels = 1 if all(gray) else 3
  stacked = np.stack([im[..., None] if im.ndim == 2 else im for im in images])
  if channels == 3 and stacked.shape[-1] == 1:
    stacked = np.repeat(stacked, 3, axis=-1)
  elif channels == 3:
    stacked = np.stack([np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in images])
  return stacked, np.asarray(labels, np.int32)


def load_image_folder(folder: str, size: int) -> tuple[dict, tuple[str, ...], list[str]]:
  """``({split: (images, labels)}, class names, notes)`` of an image folder."""
  root = pathlib.Path(folder)
  if not root.is_dir():
    raise DataError(f"image folder {folder!r} does not exist; set data.name to "
                    "imagefolder:<folder with one sub-folder per class>")
  split_roots = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
  if "train" in split_roots:
    classes = [p.name for p in _class_folders(split_roots["train"])]
    layout = "train/ and test/ trees"
  else:
    split_roots = {"train": root}
    classes = [p.name for p in _class_folders(root)]
    layout = "one tree, test and validation held out"
  if len(classes) < 2:
    raise DataError(f"{root}: found {len(classes)} class folder(s); an image folder needs one "
                    "sub-folder per class, at least two")
  for path in split_roots.values():
    extra = sorted({p.name for p in _class_folders(path)} - set(classes))
    if extra:
      raise DataError(f"{path}: class folder {extra[0]!r} is not in the training tree's classes "
                      f"({', '.join(classes)})")
  splits = {split: read_tree(path, classes, size) for split, path in split_roots.items()}
  notes = [f"image folder {folder} ({layout}; {len(classes)} classes: "
           f"{', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})"]
  return splits, tuple(classes), notes
