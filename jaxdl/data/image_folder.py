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

from jaxdl.data.columns import LazyColumn, keep_in_memory
from jaxdl.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GRAYSCALE_MODES = ("1", "L", "I;16", "I", "F")
# Images whose headers decide the channels of a folder read on demand.
CHANNEL_SAMPLE = 64


class ImageFileColumn(LazyColumn):
  """Image files decoded (and resized) when read: ``<uint8>[h, w, channels]`` each.

  Args:
    paths: one file per example.
    example_shape: ``(height, width, channels)``; an image of another size is
      an error naming it unless ``size`` resizes every image.
    size: resize to ``size`` x ``size`` (0: keep the size).
  """

  def __init__(self, paths: list[pathlib.Path], example_shape: tuple[int, int, int], size: int):
    super().__init__(len(paths), example_shape, np.uint8)
    self.paths, self.size = [str(p) for p in paths], size

  def read(self, i: int) -> np.ndarray:
    self.reads += 1
    pixels, _ = _decode(pathlib.Path(self.paths[i]), self.size, self.example_shape[-1])
    return pixels[..., None] if pixels.ndim == 2 else pixels

  def describe(self, i: int) -> str:
    return self.paths[i]


def _header(path: pathlib.Path) -> tuple[tuple[int, int], bool]:
  """``((height, width), grayscale)`` from the file's header, without decoding the pixels."""
  from PIL import Image, UnidentifiedImageError

  try:
    with Image.open(path) as image:
      return (image.size[1], image.size[0]), image.mode in GRAYSCALE_MODES
  except (OSError, UnidentifiedImageError, ValueError) as e:
    raise DataError(f"{path}: cannot decode this image ({e}); delete or replace the file") from e


def list_tree(root: pathlib.Path, classes: list[str]) -> tuple[list[pathlib.Path], np.ndarray]:
  """Every image file under ``root/<class>/`` and its class id, without reading them."""
  paths, labels = [], []
  for c, name in enumerate(classes):
    files = image_files(root / name) if (root / name).is_dir() else []
    paths += files
    labels += [c] * len(files)
  if not paths:
    raise DataError(f"{root} holds no images ({', '.join(SUFFIXES)}) in its class folders")
  return paths, np.asarray(labels, np.int32)


def lazy_tree(paths: list[pathlib.Path], size: int) -> ImageFileColumn:
  """The files as a column read on demand; channels and size from the first files' headers.

  One channel when every sampled image is grayscale, else RGB (any image
  converts to either); without ``size``, the first image's size is every
  image's, and one of another size is an error naming it when read.
  """
  step = max(1, len(paths) // CHANNEL_SAMPLE)  # Spread over the classes (paths are by class).
  headers = [_header(p) for p in paths[::step][:CHANNEL_SAMPLE]]
  channels = 1 if all(gray for _, gray in headers) else 3
  height, width = (size, size) if size > 0 else headers[0][0]
  return ImageFileColumn(paths, (height, width, channels), size)


def _class_folders(root: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())


def _decode(path: pathlib.Path, size: int, channels: int = 0):
  """``(<uint8>[h, w] or [h, w, 3], grayscale)``: in the image's own mode, or as ``channels``."""
  from PIL import Image, UnidentifiedImageError  # Pillow comes with matplotlib.

  try:
    with Image.open(path) as image:
      image.load()
      grayscale = image.mode in GRAYSCALE_MODES
      mode = {1: "L", 3: "RGB"}.get(channels, "L" if grayscale else "RGB")
      image = image.convert(mode)
      if size > 0 and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
      return np.asarray(image, np.uint8), grayscale
  except (OSError, UnidentifiedImageError, ValueError) as e:
    raise DataError(f"{path}: cannot decode this image ({e}); delete or replace the file") from e


def decode_for(path: pathlib.Path, shape: tuple[int, ...]) -> np.ndarray:
  """One image file as a run of input shape ``[size, size, channels]`` reads it: decoded,
  converted to its channels and resized as ``imagefolder:`` does (``<uint8>[*shape]``)."""
  height, width, channels = shape
  if height != width:
    raise DataError(f"{path}: this run takes {height}x{width} images, and image files are "
                    "resized to squares; give its inputs as arrays instead")
  pixels, _ = _decode(pathlib.Path(path), height, channels)
  return pixels.reshape(shape)


def read_tree(paths: list[pathlib.Path], root: pathlib.Path, size: int) -> np.ndarray:
  """The images ``paths`` (under ``root``) decoded into memory: ``<uint8>[n, h, w, c]``."""
  images, gray = [], []
  for path in paths:
    pixels, grayscale = _decode(path, size)
    images.append(pixels)
    gray.append(grayscale)
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
  return stacked


def _layout(root: pathlib.Path) -> tuple[dict[str, pathlib.Path], list[str], str]:
  """``({split: its folder}, class names, a description)``; bad class folders are errors."""
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
  return split_roots, classes, layout


def load_image_folder(folder: str, size: int, in_memory: str = "auto"
                      ) -> tuple[dict, tuple[str, ...], list[str]]:
  """``({split: (images, labels)}, class names, notes)`` of an image folder.

  The images are decoded now (``<uint8>[n, h, w, c]`` arrays) or when read
  (``ImageFileColumn``), as ``in_memory`` (``data.in_memory``) decides
  from their decoded size.
  """
  root = pathlib.Path(folder)
  if not root.is_dir():
    raise DataError(f"image folder {folder!r} does not exist; set data.name to "
                    "imagefolder:<folder with one sub-folder per class>")
  split_roots, classes, layout = _layout(root)
  listed = {split: list_tree(path, classes) for split, path in split_roots.items()}
  first = lazy_tree(listed["train"][0], size)
  decoded_bytes = sum(len(paths) for paths, _ in listed.values()) * int(np.prod(first.example_shape))
  eager = keep_in_memory(in_memory, decoded_bytes)
  splits = {split: (read_tree(paths, split_roots[split], size) if eager else
                    ImageFileColumn(paths, first.example_shape, size), labels)
            for split, (paths, labels) in listed.items()}
  notes = [f"image folder {folder} ({layout}; {len(classes)} classes: "
           f"{', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}; "
           + ("decoded into memory)" if eager else
              f"decoded when read: {decoded_bytes / 2**20:.1f} MiB decoded)")]
  return splits, tuple(classes), notes
