"""Attributions: completeness, a linear model's saliency, and the files jaxdl explain writes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment, init
from jaxdl import cli
from jaxdl.interpret import integrated_gradients, lstm_gate_trace, saliency
from jaxdl.models import LSTMCell, SeedCNN
from jaxdl.training import train_and_evaluate


def test_saliency_of_a_linear_model_is_its_weights(getkey):
  w = jax.random.normal(getkey(), (5, 4))
  f = lambda x: jnp.sum(w * x) + 3.0
  x = jax.random.normal(getkey(), (5, 4))
  np.testing.assert_allclose(saliency(f, x), w, rtol=1e-6)
  attributions, error = integrated_gradients(f, x, jnp.zeros_like(x), steps=4)
  np.testing.assert_allclose(attributions, w * x, rtol=1e-5, atol=1e-6)  # Exact for linear f.
  assert abs(float(error)) < 1e-5


@pytest.mark.slow
def test_integrated_gradients_are_complete_on_a_cnn(getkey):
  model = SeedCNN(num_classes=10)
  x = jax.random.uniform(getkey(), (28, 28, 1))
  variables = init(model, getkey(), x[None])
  f = lambda image: model.apply(variables, image[None])[0, 3]
  attributions, error = integrated_gradients(f, x, jnp.zeros_like(x), steps=256)
  gap = float(f(x) - f(jnp.zeros_like(x)))
  assert attributions.shape == x.shape
  np.testing.assert_allclose(float(attributions.sum()), gap, rtol=1e-2, atol=1e-4)
  assert abs(float(error)) <= 1e-2 * abs(gap) + 1e-4


def test_gate_trace_reproduces_the_cell(getkey):
  cell = LSTMCell(hidden_size=6)
  x = jax.random.normal(getkey(), (9, 3))
  params = init(cell, getkey(), cell.initialize_carry(1), x[:1])["params"]
  trace = lstm_gate_trace(params, x)
  carry = cell.initialize_carry(1)
  for t in range(9):
    carry, h = cell.apply({"params": params}, carry, x[t:t + 1])
    np.testing.assert_allclose(trace["hidden"][t], h[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trace["cell_state"][t], carry[0][0], rtol=1e-5, atol=1e-6)
  for gate in ("input_gate", "forget_gate", "output_gate"):
    assert np.all((trace[gate] > 0) & (trace[gate] < 1))


@pytest.mark.parametrize("name, overrides, expected", [
    ("seed_cnn_digits", ("num_epochs=1", "batch_size=128"),
     {"class_0.png", "class_9.png", "summary.json"}),
    ("adding_lstm", ("num_epochs=1", "data.num_train=256", "data.num_test=32", "data.seq_len=12",
                     "model.hidden_sizes=(8,)"), {"steps.png", "lstm_gates.png", "summary.json"}),
])
@pytest.mark.slow
def test_explain_writes_its_files(tmp_path, capsys, name, overrides, expected):
  train_and_evaluate(experiment(name, *overrides), tmp_path, quiet=True)
  assert cli.main(["explain", "--workdir", str(tmp_path), "--examples", "2", "--steps", "32"]) == 0
  files = {p.name for p in (tmp_path / "explain").iterdir()}
  assert expected <= files
  summary = json.loads((tmp_path / "explain" / "summary.json").read_text())
  assert summary["examples"] and summary["max_abs_completeness_error"] is not None
  for name_ in files - {"summary.json"}:
    assert (tmp_path / "explain" / name_).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_explain_text_shades_tokens(tmp_path, capsys):
  folder = tmp_path / "texts"
  folder.mkdir()
  (folder / "t.pos").write_text("a good fun film\ngreat acting\nnice one\nlovely\nsuperb cast\n")
  (folder / "t.neg").write_text("a bad dull film\nawful acting\nboring one\nweak\npoor cast\n")
  cfg = experiment("seed_lstm_mr", f"data.name=textfile:{folder}", "data.encoding=utf-8",
                   "num_epochs=1", "data.val_fraction=0.0", "data.test_fraction=0.2",
                   "model.hidden_sizes=(4,)", "data.max_len=6", "model.embed_dim=8",
                   "batch_size=4")
  train_and_evaluate(cfg, tmp_path / "run", quiet=True)
  assert cli.main(["explain", "--workdir", str(tmp_path / "run"), "--examples", "2"]) == 0
  page = (tmp_path / "run" / "explain" / "tokens.html").read_text()
  assert page.count("<span") >= 2 and "predicted:" in page
  assert (tmp_path / "run" / "explain" / "lstm_gates.png").exists()


@pytest.fixture(scope="module")
def small_texts(tmp_path_factory):
  texts = tmp_path_factory.mktemp("texts")
  (texts / "t.pos").write_text("a good good fun film\ngreat acting\nnice one\nsuperb cast\n" * 3)
  (texts / "t.neg").write_text("a bad bad dull film\nawful acting\nboring one\npoor cast\n" * 3)
  return texts


def _text_experiment(texts, model):
  from jaxdl import parts
  from jaxdl.training.experiment import build_experiment

  import plugin_models
  cfg = experiment("seed_lstm_mr", f"data.name=textfile:{texts}", "data.encoding=utf-8",
                   "data.test_fraction=0.2", "data.max_len=8")
  module = getattr(plugin_models, model)
  config = jaxdl_config(cfg, module)
  with parts.given(model=(config.model.name, module)):  # As jaxdl's API hands it over.
    return build_experiment(config)


def jaxdl_config(cfg, model):
  import jaxdl
  return jaxdl.get_config(cfg, model=model)


def test_attributions_by_table_match_the_equations_of_a_linear_nnx_model(small_texts):
  """The table path (an NNX Embed through the bridge, found by tracing) against the model's
  own algebra: logit_c = W_c . mean of the real positions' vectors + b_c is linear in each
  vector, so integrated gradients from zero are exactly e_p . W_c / n per position, a
  repeated word ('good good') getting its share at each of its positions."""
  from jaxdl.interpret.run import _by_interception, _by_table, _example

  exp = _text_experiment(small_texts, "NNXBagOfWords")
  variables = exp.initial_state.variables()
  train = exp.datasets.train
  index = next(i for i in range(len(train)) if len(set(train.model_inputs(i).tolist())) <
               int(train.extra["lengths"][i]) + 1)  # A sentence with a repeated word.
  batch, length = _example(train, index), int(train.extra["lengths"][index])
  assert _by_interception(exp, variables, batch) is None  # No linen Embed to intercept.
  embedded, f = _by_table(exp, variables, batch, length)
  table = np.asarray(variables["params"]["embed"]["embedding"])
  np.testing.assert_array_equal(embedded, table[train.model_inputs(index)])
  kernel = np.asarray(variables["params"]["out"]["kernel"])  # [dim, classes]
  for c in (0, 1):
    ig, error = integrated_gradients(lambda e: f(e, c), embedded, jnp.zeros_like(embedded), 8)
    want = np.asarray(embedded[:length]) @ kernel[:, c] / length
    np.testing.assert_allclose(np.asarray(ig.sum(-1))[:length], want, rtol=1e-5, atol=1e-7)
    assert abs(float(error)) < 1e-5


@pytest.mark.slow
def test_explain_attributes_an_nnx_text_model(small_texts, tmp_path):
  """An NNX model through the bridge has no linen Embed; it was refused ("has no
  flax.linen.Embed layer"). Its lookup is found by tracing, and IG is complete."""
  import jaxdl
  import plugin_models

  cfg = experiment("seed_lstm_mr", f"data.name=textfile:{small_texts}", "data.encoding=utf-8",
                   "data.test_fraction=0.2", "data.max_len=8", "num_epochs=2", "batch_size=4")
  jaxdl.train(cfg, tmp_path, model=plugin_models.NNXBagOfWords)
  summary = jaxdl.explain(tmp_path, examples=3, steps=64, model=plugin_models.NNXBagOfWords)
  assert summary["max_abs_completeness_error"] < 1e-3
  html = (tmp_path / "explain" / "tokens.html").read_text()
  assert html.count("<span") >= 3
  assert any(word in html for word in ("good", "bad", "great", "awful", "acting", "film"))


def test_inputs_explain_cannot_attribute_are_refused_before_anything_loads(tmp_path):
  """Read from data_spec.json alone: the folder here has no config or checkpoint to load."""
  import jaxdl
  from jaxdl.errors import JaxdlError

  (tmp_path / "data_spec.json").write_text(json.dumps(
      {"name": "py:tumours", "input_shape": [30], "input_dtype": "float32"}))
  with pytest.raises(JaxdlError, match="py:tumours gives float32 inputs of shape \\[30\\]"):
    jaxdl.explain(tmp_path)
