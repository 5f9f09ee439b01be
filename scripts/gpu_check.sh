#!/usr/bin/env bash
# The GPU checks of issue #16 in one command, for a session that is lent a GPU machine.
#
# What it runs (at most 10 minutes; 5 on an H100, 2026-11-27, plus about a minute to start the
# machine; results under $OUT):
#   1. tests/test_lstm_pallas.py: the Pallas LSTM kernels compiled by Triton against
#      autodiff of the scan (the interpreter and lowering tests run too);
#   2. scripts/benchmark.py: the seed CNN and LSTM, jaxdl and
#      jaxdl-xla against PyTorch (cuDNN's LSTM), eager and compiled, JAX's own cuDNN LSTM
#      (jax-cudnn: jax.experimental.rnn) and Keras 3 on its JAX backend (keras-jax, which
#      runs the same cuDNN call) (jaxdl runs the Pallas recurrence on a GPU, jaxdl-xla the
#      recurrence without it);
#   3. with GPU_CHECK_TUNING=1 only (measured on 2026-11-27; docs/benchmarks.md):
#      scripts/bench_lstm_kernels.py, the recurrence's gradient under the Pallas launch
#      settings that fit the GPU against the scan (one member, then a sweep of 8).
#
# The machine has JAX, flax, optax, chex, orbax and PyTorch, not ml_collections or keras:
# carry them as wheels. Prepare here, in the repository's root (once; .whl/ is git-ignored
# through .git/info/exclude):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 -d .whl ml_collections==1.1.0 \
#     keras==3.15.1 namex optree h5py
# then run there:  bash scripts/gpu_check.sh   (carry: [".whl"], timeout_s: 570)
set -u -o pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$OUT/log.txt"
python3 -c "import jax, torch, triton; print('jax', jax.__version__, jax.devices(), 'torch', torch.__version__, 'triton', triton.__version__)" \
  | tee -a "$OUT/log.txt"

# At most 8 files come back from $OUT: log.txt holds the tests and the kernel tables.
# Warnings are shown, not errors, on the device's newer JAX. Each step has its own time limit, so that one that hangs cannot take the others' time;
# the headline (step 2) runs before the launch tuning it does not depend on.
timeout 100 python3 -m pytest -q -p no:cacheprovider -W default tests/test_lstm_pallas.py 2>&1 | tee -a "$OUT/log.txt"
# benchmark.py writes its files at the end: two runs (LSTM, CNN), so that one cut off by its
# limit leaves the other's. Ratios are taken within a run, so each has its peers.
timeout 260 python3 scripts/benchmark.py \
  --impls jaxdl,jaxdl-xla,jax-cudnn,keras-jax,torch-eager,torch-compile \
  --workloads lstm,lstm-sweep8 --windows 5 --window-s 1 --allocator defaults \
  --out "$OUT/benchmark_lstm.jsonl" 2>&1 | tail -30 \
  | tee "$OUT/benchmark_lstm.txt"
timeout 110 python3 scripts/benchmark.py --impls jaxdl,torch-eager,torch-compile \
  --workloads cnn --windows 5 --window-s 1 --allocator defaults \
  --out "$OUT/benchmark_cnn.jsonl" 2>&1 | tail -20 \
  | tee "$OUT/benchmark_cnn.txt"
# The launch tuning below does not change what models run: GPU_CHECK_TUNING=1 runs it.
[ "${GPU_CHECK_TUNING:-0}" = 1 ] || exit 0
# The launches that fit an H100 without spilling (scripts/triton_resources.py, compiled
# without a GPU: docs/bench/triton-resources-sm90-2026-11-27.md).
FIT=16:4:0,16:4:1,16:4:0:1,16:4:1:1,16:8:1,16:8:1:1,32:8:0,32:8:0:1,32:8:1:1
timeout 90 python3 scripts/bench_lstm_kernels.py --rounds 5 --launches $FIT \
  --out "$OUT/lstm_kernels.jsonl" 2>&1 | tee -a "$OUT/log.txt"
timeout 50 python3 scripts/bench_lstm_kernels.py --members 8 --rounds 5 --launches 16:4:0,32:8:0 \
  --out "$OUT/lstm_kernels_sweep8.jsonl" 2>&1 | tee -a "$OUT/log.txt"
