"""The config fields of each kind of data source, with their defaults.

``config.data`` holds the keys every source shares (``jaxdl/configs/default.py``: the
name, the splits, folds, the input pipeline) plus exactly the fields of the source that
``data.name`` names, filled in when the config is loaded; a key the source does not have
is an error with a did-you-mean. ``jaxdl parts data`` lists each source's fields.
"""

import types

IMAGES = types.MappingProxyType({
    # Resize images to [size, size] (0 keeps the source size). The 8x8 digits are
    # resized to 28x28 so the seed's Keras CNN runs on them unchanged.
    "image_size": 0,
    # Subtract the training set's mean and divide by its std (per channel),
    # after scaling pixels to [0, 1].
    "standardize": False,
    # Training-time augmentation: shift each image by up to this many pixels
    # (zero fill), fresh for every batch; 0 disables it.
    "augment_shift": 0,
})

TEXT = types.MappingProxyType({
    "vocab_size": 10_000,  # Words kept, PAD and OOV included (the seed's Embedding(10000)).
    "max_len": 100,  # Tokens per text (the seed's input_length=100).
    # Cut each batch to its longest sequence, rounded up to a multiple of this many
    # steps (0: every batch keeps max_len steps). Faster for short texts; one compile
    # per width. Only for models that read `lengths` (padding must not change their output).
    "length_bucket": 0,
    "encoding": "utf-8",  # Of the text files.
    # Keep each label up to this separator ('' keeps it whole): ':' gives TREC's 6 coarse
    # classes from labels such as 'DESC:manner'.
    "label_separator": "",
})

COLUMNS = types.MappingProxyType({
    "text_key": "text",  # The TFDS feature / table column of the text.
    "label_key": "label",  # The TFDS feature / table column of the label.
})

TFDS = types.MappingProxyType({
    "data_dir": "",  # TFDS data dir; '' means TFDS's default.
    "download": False,  # Let TFDS download and prepare (needs internet).
    "train_split": "train",
    "test_split": "test",
    "image_key": "image",  # The TFDS feature of an image dataset's images.
    **COLUMNS, **IMAGES, **TEXT,  # A TFDS dataset is images or text: which, it says itself.
})

SEQUENCE_SIZES = types.MappingProxyType({
    "seq_len": 50,  # Steps per sequence (T).
    "num_train": 10_000,  # Training sequences generated (validation is drawn from them).
    "num_test": 1_000,  # Test sequences generated.
})
MEMORY = types.MappingProxyType({
    **SEQUENCE_SIZES,
    "num_symbols": 8,  # The alphabet of the recall task.
})
SEQ_DIGITS = types.MappingProxyType({
    "permute": False,  # One fixed permutation of the 64 pixels (drawn with split_seed).
})

# Data a researcher's function returns: arrays of any kind, so the two settings the
# training input applies to any images (shifts) and any sequences with lengths (buckets).
USER_ARRAYS = types.MappingProxyType({
    "augment_shift": IMAGES["augment_shift"],
    "length_bucket": TEXT["length_bucket"],
})


def augment_shift(data) -> int:
  """``data.augment_shift`` (pixels), 0 for a source without that field (no images)."""
  return data.get("augment_shift", IMAGES["augment_shift"])


def length_bucket(data) -> int:
  """``data.length_bucket`` (steps), 0 for a source without that field (no lengths)."""
  return data.get("length_bucket", TEXT["length_bucket"])
