"""PyTorch: the seed's two models as nn.Modules, eager ('torch-eager') or torch.compile'd."""

import torch
from torch import nn

from benchmark_impls import workloads
from benchmark_impls.workloads import BATCH, LEARNING_RATE, POOL_BATCHES, Workload, random_data


class SeedCNN(nn.Module):
  """Conv(32) -> pool -> Conv(64) -> pool -> Conv(64) -> Dense(64) -> Dense(10), 'valid' padding."""

  def __init__(self, w: Workload):
    super().__init__()
    channels = w.image_shape[-1]
    self.layers = nn.Sequential(
        nn.Conv2d(channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(64 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, w.num_classes))

  def forward(self, x):
    return self.layers(x)


class SeedLSTM(nn.Module):
  """Embedding(10000, 64) -> LSTM(64, sequences) -> LSTM(64) -> Dense(10)."""

  def __init__(self, w: Workload):
    super().__init__()
    self.embed = nn.Embedding(w.vocab_size, w.embed_dim)
    self.lstm1 = nn.LSTM(w.embed_dim, w.hidden, batch_first=True)
    self.lstm2 = nn.LSTM(w.hidden, w.hidden, batch_first=True)
    self.out = nn.Linear(w.hidden, w.num_classes)

  def forward(self, tokens):
    x, _ = self.lstm1(self.embed(tokens))
    _, (h, _) = self.lstm2(x)
    return self.out(h[-1])


class Runner(workloads.Runner):
  def __init__(self, workload: Workload, compiled: bool):
    if workload.members != 1:
      raise NotImplementedError("the PyTorch runner trains one model")
    torch.manual_seed(0)
    # On a GPU, nn.LSTM runs cuDNN's fused LSTM kernels.
    self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = SeedCNN(workload) if workload.model == "cnn" else SeedLSTM(workload)
    self.model = model.to(self.device)
    self.forward = torch.compile(self.model) if compiled else self.model
    self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
    self.loss_fn = nn.CrossEntropyLoss()  # Softmax + cross-entropy, as sparse CE on softmax.
    x, y = random_data(workload, BATCH * POOL_BATCHES)
    x = torch.from_numpy(x)
    if workload.model == "cnn":
      x = x.permute(0, 3, 1, 2).contiguous()  # PyTorch's NCHW.
    else:
      x = x.long()
    x, y = x.to(self.device), torch.from_numpy(y).long().to(self.device)
    self.batches = [(x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH])
                    for i in range(POOL_BATCHES)]
    self.examples_per_step = BATCH
    self.step = 0
    self.info = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                 "compiled": compiled, "device": str(self.device),
                 "device_name": (torch.cuda.get_device_name() if self.device.type == "cuda"
                                 else "cpu")}

  def run(self, steps: int) -> None:
    for _ in range(steps):
      x, y = self.batches[self.step % len(self.batches)]
      self.optimizer.zero_grad(set_to_none=True)
      loss = self.loss_fn(self.forward(x), y)
      loss.backward()
      self.optimizer.step()
      self.step += 1
    loss.item()  # Waits for the device's queue (CPU execution is already synchronous).


def build(workload: Workload, compiled: bool) -> Runner:
  return Runner(workload, compiled)
