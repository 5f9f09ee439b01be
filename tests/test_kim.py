"""Kim's (2014) CNN: the forward pass against a NumPy transcription of the paper and its
code, its initialisation, and the experiment's data as the paper counts it."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from conftest import EXPERIMENTS, experiment, init, shared_data
from jaxdl import data, models
from jaxdl.models.kim import KimCNN


def _numpy_forward(params, tokens, lengths, widths):
  """Kim's code in float64: zero padding vector, width - 1 zeros on both sides, convolution,
  ReLU, max over the windows that touch a word, then the softmax layer's logits."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  emb = p["Embed_0"]["embedding"][tokens]
  emb[np.arange(tokens.shape[1])[None, :] >= lengths[:, None]] = 0.0
  features = []
  for i, h in enumerate(widths):
    kernel, bias = p[f"Conv_{i}"]["kernel"], p[f"Conv_{i}"]["bias"]  # [h, E, F], [F]
    padded = np.pad(emb, ((0, 0), (h - 1, h - 1), (0, 0)))
    windows = padded.shape[1] - h + 1
    conv = np.stack([np.einsum("bhe,hef->bf", padded[:, j:j + h], kernel) for j in
                     range(windows)], 1) + bias
    relu = np.maximum(conv, 0.0)
    features.append(np.stack([relu[b, :lengths[b] + h - 1].max(0) for b in range(len(tokens))]))
  pooled = np.concatenate(features, 1)
  return pooled @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]


def test_the_forward_pass_is_kims(getkey):
  model = KimCNN(embed_dim=8, widths=(2, 3), features=4, vocab_size=20, num_classes=3)
  tokens = np.asarray(jax.random.randint(getkey(), (5, 9), 2, 20), np.int32)
  lengths = np.array([9, 4, 1, 6, 2], np.int32)
  params = init(model, getkey(), tokens, lengths, train=False)["params"]
  # The softmax layer starts at zero (Kim's LogisticRegression): give it values to test.
  params["Dense_0"]["kernel"] = jax.random.normal(getkey(), (8, 3))
  params["Dense_0"]["bias"] = jax.random.normal(getkey(), (3,))
  got = model.apply({"params": params}, tokens, lengths, train=False)
  want = _numpy_forward(params, tokens, lengths, (2, 3))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # Tokens past a sentence's length are padding: they change nothing.
  noise = np.where(np.arange(9)[None] >= lengths[:, None], 7, tokens).astype(np.int32)
  np.testing.assert_array_equal(model.apply({"params": params}, noise, lengths, train=False), got)


def test_initialisation_follows_kims_code(getkey):
  model = KimCNN(vocab_size=50, num_classes=2)
  tokens = jnp.ones((2, 30), jnp.int32)
  params = init(model, getkey(), tokens, jnp.array([30, 5]), train=False)["params"]
  embedding = np.asarray(params["Embed_0"]["embedding"])
  assert embedding.shape == (50, 300) and 0.24 < np.abs(embedding).max() <= 0.25
  for i, h in enumerate((3, 4, 5)):
    windows = 30 + h - 1
    bound = np.sqrt(6.0 / (h * 300 + 100 * h * 300 / windows))
    kernel = np.asarray(params[f"Conv_{i}"]["kernel"])
    assert kernel.shape == (h, 300, 100) and 0.95 * bound < np.abs(kernel).max() <= bound
    assert not np.asarray(params[f"Conv_{i}"]["bias"]).any()
  assert not np.asarray(params["Dense_0"]["kernel"]).any()
  assert models.resolve("kim_cnn").fields == {"embed_dim": 300, "widths": (3, 4, 5),
                                              "features": 100, "dropout_rate": 0.5,
                                              "embed_init_range": 0.25,
                                              "embeddings": "rand", "vectors_file": ""}


def test_the_recipe_is_the_papers():
  config = experiment("kim2014")
  assert (config.optim.name, config.optim.learning_rate, config.optim.rho,
          config.optim.eps) == ("adadelta", 1.0, 0.95, 1e-6)
  assert config.constraints.softmax.to_dict() == {"name": "max_norm", "params": "Dense_0/kernel",
                                                  "max_norm": 3.0}
  assert (config.batch_size, config.num_epochs, config.model.name) == (50, 25, "kim_cnn")


# Kim (2014) Table 1's N (examples) where ours agrees; CR loses 4 empty lines (3,775 there).
COUNTS = {"mr": 10662, "sst1": 11855, "sst2": 9613, "subj": 10000, "trec": 5952, "cr": 3771,
          "mpqa": 10603}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(COUNTS))
def test_each_dataset_loads_whole_with_no_text_truncated(dataset):
  shared_data(dataset)  # Skips where ../shared/data is absent.
  config = experiment(f"kim2014:{dataset}")
  datasets = data.build(config.data, str(EXPERIMENTS / "kim2014.py"))
  spec = datasets.spec
  assert spec.num_train + spec.num_val + spec.num_test == COUNTS[dataset]
  assert spec.num_classes == {"sst1": 5, "trec": 6}.get(dataset, 2)
  for split in (datasets.train, datasets.val, datasets.test):
    lengths = split.rows(np.arange(len(split)))[0]["lengths"]
    assert lengths.max() < config.data.max_len  # Nothing was cut.
