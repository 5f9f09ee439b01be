"""Extra metrics (top-k, macro-F1, MCC) and a researcher's own loss and metric."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import f1_score, matthews_corrcoef

import jaxdl
from conftest import experiment
from jaxdl.errors import ConfigError
from jaxdl.training import metrics
from jaxdl.training.metric_sums import means, merge


def _sums(logits, labels, mask, names):
  batch = {"label": jnp.asarray(labels), "mask": jnp.asarray(mask, jnp.float32)}
  _, functions, _ = metrics.resolve(names)
  out = {"count": batch["mask"].sum()}
  for fn in functions:
    out.update(fn(jnp.asarray(logits), batch))
  return out


def test_macro_f1_and_mcc_equal_scikit_learns_and_ignore_padding():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, 200)
  logits = rng.normal(size=(200, 4)) + 2.0 * np.eye(4)[labels] * (rng.random(200) < 0.6)[:, None]
  mask = (np.arange(200) < 170).astype(np.float32)  # The last 30 are padding.
  # Two batches merged, as epochs and devices do.
  first = _sums(logits[:100], labels[:100], mask[:100], ("macro_f1", "mcc"))
  second = _sums(logits[100:], labels[100:], mask[100:], ("macro_f1", "mcc"))
  got = means({k: np.asarray(v) for k, v in merge(first, second).items()})
  predicted = logits.argmax(-1)
  assert got["macro_f1"] == pytest.approx(f1_score(labels[:170], predicted[:170],
                                                   average="macro"), rel=1e-6)
  assert got["mcc"] == pytest.approx(matthews_corrcoef(labels[:170], predicted[:170]), rel=1e-6)


def test_accuracy_rewards_never_spam_and_these_metrics_do_not():
  labels = np.array([0] * 90 + [1] * 10)  # 10% spam.
  never = np.tile([5.0, 0.0], (100, 1))  # Always "ham".
  got = means({k: np.asarray(v) for k, v in _sums(never, labels, np.ones(100),
                                                   ("macro_f1", "mcc")).items()})
  assert got["macro_f1"] == pytest.approx(f1_score(labels, np.zeros(100), average="macro"))
  assert got["macro_f1"] < 0.5 and got["mcc"] == 0.0  # Accuracy would be 0.9.


def test_top_k_accuracy():
  logits = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 2.0, 0.0]])
  labels = np.array([1, 0, 0])
  sums = _sums(logits, labels, np.ones(3), ("top1_accuracy", "top2_accuracy", "top3_accuracy"))
  assert [float(sums[f"top{k}_accuracy"]) for k in (1, 2, 3)] == [0.0, 1.0, 2.0]


def test_unknown_metrics_are_clear_errors():
  with pytest.raises(ConfigError, match="unknown metric 'f1'"):
    metrics.resolve(("f1",))


def test_metrics_are_reported_selected_on_and_a_users_loss_and_metric_train(tmp_path):
  results = jaxdl.train("experiments/seed_cnn_digits.py", tmp_path / "a",
                        ["num_epochs=2", "batch_size=128", "metrics=top3_accuracy,macro_f1,mcc",
                         "select.metric=val_macro_f1"])
  for key in ("test_top3_accuracy", "test_macro_f1", "test_mcc", "val_macro_f1",
              "last_test_mcc"):
    assert 0.0 < results[key] <= 1.0, key
  assert results["selection_metric"] == "val_macro_f1" and results["selection_mode"] == "max"
  assert results["test_top3_accuracy"] >= results["test_accuracy"]
  own = jaxdl.train("experiments/seed_cnn_digits.py", tmp_path / "b",
                    ["num_epochs=2", "batch_size=128",
                     "objective=plugin_models:smoothed_cross_entropy",
                     "metrics=plugin_models:confident", "select.metric=val_loss"])
  assert own["selection_metric"] == "val_loss" and 0.1 < own["test_confident"] <= 1.0
  assert "test_accuracy" not in own or own["test_accuracy"] is None  # Not the built-in loss.
  with pytest.raises(ConfigError, match="classification metrics"):
    jaxdl.train("experiments/adding_lstm.py", tmp_path / "c", ["metrics=macro_f1"])


@pytest.mark.slow
def test_a_confusion_matrix_survives_a_mid_epoch_checkpoint(tmp_path, monkeypatch):
  from conftest import Crash, comparable_files, crash_at_batch
  from jaxdl.training import train_and_evaluate

  cfg = experiment("seed_cnn_digits", "num_epochs=1", "batch_size=64",
                   "checkpoint_every_steps=5", "metrics=macro_f1")
  train_and_evaluate(cfg, tmp_path / "whole", quiet=True)
  with monkeypatch.context() as patch:
    crash_at_batch(patch, 8)  # After the step-5 checkpoint, whose partial sums hold the matrix.
    with pytest.raises(Crash):
      train_and_evaluate(cfg, tmp_path / "resumed", quiet=True)
  train_and_evaluate(cfg, tmp_path / "resumed", quiet=True)
  assert comparable_files(tmp_path / "resumed") == comparable_files(tmp_path / "whole")
  assert "train_macro_f1" in comparable_files(tmp_path / "whole")[0][0]
