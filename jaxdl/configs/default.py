"""The base config every experiment starts from.

Experiments in ``experiments/`` call ``get_config`` and change a few fields;
every key that any part of jaxdl reads is defined here with its default, so an
override of an unknown key is an error rather than a silent no-op.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default config: the seed's CNN on the offline digits."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Root of every PRNG stream: init, dropout and data order.
  # The experiment file (set when it is loaded): its folder resolves the
  # PKG.MODULE:ATTR import paths of the researcher's own parts.
  c.experiment = ""
  c.num_epochs = 10  # The seed's model.fit(epochs=10).
  c.batch_size = 32  # Keras's model.fit default, which the seed's code uses.
  c.eval_batch_size = 256  # Evaluation only: does not change any result.

  c.data = ml_collections.ConfigDict()
  # Images: 'digits' | 'idx:<dir>' | 'imagefolder:<dir>' | 'arrayrecord:<dir>'. Text:
  # 'textfile:<dir>'. Either: 'tfds:<name>', 'py:PKG.MODULE:ATTR' (a function returning
  # the splits). Sequences: 'adding' | 'memory' | 'seq_digits'. Loading adds the source's
  # own fields (image_size, max_len, ...: jaxdl/data/fields.py, `jaxdl parts data`).
  c.data.name = "digits"
  # Fraction of the training split held out for validation each epoch.
  c.data.val_fraction = 0.1
  # Where a source has no test split (digits, a one-split IDX folder), this
  # fraction becomes the test set, drawn with split_seed.
  c.data.test_fraction = 0.2
  # The splits are drawn with split_seed, not seed, so runs over several model
  # seeds are scored on the same test set.
  c.data.split_seed = 0
  # k-fold cross-validation (the published protocol of MR, SUBJ, ...): with
  # folds = k > 1, the test set is fold data.fold (0..k-1) of a stratified
  # k-fold partition drawn with split_seed, replacing test_fraction. Sweep
  # data.fold=0:k to run every fold; `jaxdl report` averages over folds.
  c.data.folds = 0
  c.data.fold = 0
  # Pin the number of classes (0: from the data).
  c.data.num_classes = 0
  # What the labels are: 'auto' (integers or strings: classes; floats: regression targets),
  # 'classification' (floats that are whole numbers become class ids) or 'regression'.
  # A source whose labels say otherwise is refused.
  c.data.task = "auto"
  # The input pipeline (data/pipeline.py, on Grain): worker processes that
  # read, decode and augment batches (0: this process; -1: none on a CPU backend
  # or for data in memory, as measured fastest, else half the cores, at most 8),
  # and how many batches are prepared ahead of the running step (0: none; -1: 2
  # when reading files or feeding an accelerator, else none, as measured fastest).
  c.data.workers = -1
  c.data.prefetch = -1
  # Leave out (and count, as skipped_examples) examples whose file fails to
  # read or decode, instead of stopping with an error naming the file.
  c.data.skip_bad_examples = False
  # Sources that can read examples on demand (image folders, ArrayRecord):
  # 'auto' reads them whole into memory when that takes at most 2 GiB (and a
  # quarter of the free memory), 'yes' always, 'no' never (bounded memory).
  c.data.in_memory = "auto"

  c.model = ml_collections.ConfigDict()
  # A built-in model: 'seed_cnn' | 'deep_cnn' (images), 'text_rnn' (token ids),
  # 'seq_rnn' (float sequences); or the researcher's own, as 'PKG.MODULE:ATTR'
  # (a flax.linen or Flax NNX Module class, or a factory f(model_config, spec)),
  # or 'get_model' for the experiment file's get_model(config, spec).
  # config.model holds the chosen model's own fields besides the name (see
  # jaxdl/models/cnn.py and sequence.py for the built-ins'; a user's Module's
  # dataclass fields are its), filled in when the config is loaded.
  c.model.name = "seed_cnn"

  # The loss: 'auto' (softmax cross-entropy for integer labels, MSE for float
  # targets), or PKG.MODULE:ATTR of a jaxdl.Objective or of a function
  # (outputs, batch) -> (per-example losses, sums).
  c.objective = "auto"
  # Extra metrics, reported for every split and selectable (select.metric):
  # 'top5_accuracy' (any K), 'macro_f1', 'mcc', or PKG.MODULE:ATTR of a function
  # (logits, batch) -> per-example values.
  c.metrics = ()

  c.optim = ml_collections.ConfigDict()
  # 'adam' (the seed's), any optax optimizer by name ('sgd', 'adamw', 'adadelta', 'rmsprop',
  # ...: `jaxdl parts optimizers`) or PKG.MODULE:ATTR. Loading adds the optimizer's own
  # fields with optax's defaults (sgd: momentum=0.9, nesterov=False; adadelta: rho, eps).
  c.optim.name = "adam"
  c.optim.learning_rate = 1e-3  # Keras's Adam default.
  # Decoupled where the optimizer takes weight_decay itself (adamw, lion, adadelta, ...);
  # otherwise L2 decay added to the gradient (adam, sgd).
  c.optim.weight_decay = 0.0
  c.optim.grad_clip_norm = 0.0  # Global-norm clipping; 0 disables it.
  c.optim.schedule = "constant"  # 'constant' | 'cosine' | 'warmup_cosine'.
  c.optim.warmup_epochs = 0.0  # warmup_cosine only.
  c.optim.end_lr_fraction = 0.0  # Cosine schedules end at lr * this.
  # Projections applied to parameters after every update, by label: e.g.
  # c.constraints.softmax = dict(name="max_norm", params=".*Dense_1/kernel", max_norm=3.0)
  # (Kim 2014). Built in: max_norm (per_unit, eps), non_negative; or PKG.MODULE:ATTR.
  c.constraints = ml_collections.ConfigDict()

  # Compute dtype: 'float32', or 'bfloat16' for mixed precision (float32
  # parameters, optimizer state and losses; bf16 forward and backward passes).
  c.dtype = "float32"

  # Differentially private training (DP-SGD); see jaxdl/training/privacy.py.
  c.privacy = ml_collections.ConfigDict()
  c.privacy.enabled = False
  c.privacy.clip_norm = 1.0  # C: each example's gradient is clipped to this L2 norm.
  c.privacy.noise_multiplier = 1.1  # sigma: noise std is sigma * C.
  # If > 0, the noise multiplier is calibrated to reach this epsilon at the end.
  c.privacy.target_epsilon = 0.0
  c.privacy.delta = 0.0  # 0: 1 / (10 * training examples).
  c.privacy.accountant = "rdp"  # 'rdp' | 'pld' (dp-accounting).

  # A NaN or infinite loss or gradient: 'stop' with an error naming the step
  # (keeping the last good checkpoint), or 'skip' the update and go on.
  c.nonfinite = "stop"
  # Devices: the batch is split over the 'data' axis of the mesh; with
  # model_axis = k > 1, parameters are also split over k devices (see parallel.py).
  c.parallel = ml_collections.ConfigDict()
  c.parallel.model_axis = 1

  # Model selection: which epoch's checkpoint is the run's result. Test data is
  # evaluated once, on that checkpoint (and on the last epoch's, for comparison).
  c.select = ml_collections.ConfigDict()
  # 'auto' (val_accuracy for classification, val_loss for regression), any
  # validation metric of metrics.jsonl ('val_loss', ...), or 'last' (the last epoch).
  c.select.metric = "auto"
  c.select.mode = "auto"  # 'max' | 'min' | 'auto' (max for accuracies, min otherwise).
  # Early stopping: stop after this many epochs without a better validation
  # metric (0: train every epoch).
  c.select.patience = 0

  # Copies of metrics.jsonl's rows (the source of truth) for watching runs.
  c.log = ml_collections.ConfigDict()
  c.log.tensorboard = True  # Event files in RUN/tb (no TensorFlow needed).
  c.log.every_steps = 0  # Also the running training means every N steps (0: per epoch only).
  c.log.wandb = False  # Weights & Biases (pip install -e '.[wandb]'; WANDB_MODE=offline works).
  c.log.wandb_project = "jaxdl"
  c.log.wandb_entity = ""  # '' : your default entity.
  c.log.wandb_group = ""  # '' : a sweep's folder name for its members.

  c.checkpoint_every_steps = 500  # Plus one at the end of every epoch.
  c.checkpoints_to_keep = 2
  return c
