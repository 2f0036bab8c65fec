#!/usr/bin/env bash
# The book's GPU measurements, one stage at a time, on a machine with an NVIDIA GPU, its driver,
# the CUDA 13 libraries and a CUDA build of PyTorch, but no Rust toolchain.
#
# Build the binary on any Linux machine first (no GPU needed) and put it in .gpu/:
#
#   bash .ci/build-cuda.sh --bin zero-to-r1
#   mkdir -p .gpu && cp target/cuda/release/zero-to-r1 .gpu/
#
# Then, on the GPU machine, from the repository root:
#
#   bash benches/gpu.sh check      # nvidia-smi, ldd, a tiny matmul, zero-to-r1 gpu-check
#   bash benches/gpu.sh bench      # candle vs PyTorch eager: rollout, update, GRPO step, MFU
#   bash benches/gpu.sh grpo       # the GPU run: SFT, then GRPO (configs/countdown-gpu.toml)
#   bash benches/gpu.sh dr-grpo    # Dr. GRPO from the same SFT model
#
# Each stage takes a few minutes. Results go to $OUT (default runs/gpu): the logs, JSON numbers,
# each run's metrics.jsonl and summary.json, and the peak GPU memory (nvidia-smi, every 0.5 s).
# An interrupted run continues where it stopped when its stage is run again.
#
# Settings (environment): BIN (default .gpu/zero-to-r1), OUT, PYTHON (default python3),
# PEAK_F32 and PEAK_BF16, the GPU's dense peak TFLOP/s (default: an H100 SXM, 67 and 989).
set -euo pipefail

bin=${BIN:-.gpu/zero-to-r1}
out=${OUT:-runs/gpu}
py=${PYTHON:-python3}
peak_f32=${PEAK_F32:-67}
peak_bf16=${PEAK_BF16:-989}
config=configs/countdown-gpu.toml
runs=runs/gpu-runs
mkdir -p "$out" "$runs"

# The CUDA 13 libraries of the PyTorch installation, for the binary.
libs=$("$py" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH=${libs:+$libs:}${LD_LIBRARY_PATH:-}

# Runs a command with the GPU's memory sampled in the background; writes the peak (MiB).
with_memory() {
  local name=$1
  shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$out/$name-memory.log" &
  local sampler=$!
  local status=0 timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -v)   # wall time and peak host memory, if there
  "${timer[@]}" "$@" 2>&1 | tee "$out/$name.log" || status=${PIPESTATUS[0]}
  kill "$sampler" 2>/dev/null || true
  sort -n "$out/$name-memory.log" | tail -n 1 | awk '{print "peak GPU memory: " $1 " MiB"}' \
    | tee "$out/$name-peak-memory.txt"
  return "$status"
}

# Continues the run in $2 if it has started (its settings are in run.json), else starts it
# with the given flags.
r1_zero() {
  local name=$1 dir=$2
  shift 2
  if [ -f "$dir/run.json" ]; then
    with_memory "$name" "$bin" lm r1-zero --device cuda --out "$dir" --resume
  else
    with_memory "$name" "$bin" lm r1-zero --config "$config" --device cuda --out "$dir" --overwrite "$@"
  fi
  cp "$dir/grpo/metrics.jsonl" "$out/$name-metrics.jsonl"
  cp "$dir/summary.json" "$out/$name-summary.json" 2>/dev/null || true
}

case ${1:-} in
  check)
    nvidia-smi | tee "$out/nvidia-smi.txt"
    ldd "$bin" | tee "$out/ldd.txt"
    "$py" -c 'import torch; a = torch.ones(64, 64, device="cuda"); print("tiny matmul:", (a @ a)[0, 0].item(), torch.__version__, torch.cuda.get_device_name())'
    "$bin" gpu-check --device cuda --json "$out/gpu-check.json" | tee "$out/gpu-check.txt"
    ;;
  bench)
    "$bin" bench lm --config "$config" --device cuda --peak-tflops "$peak_f32" \
      --json "$out/rust-lm-gpu.json" | tee "$out/rust-lm-gpu.txt"
    "$py" benches/torch_lm.py --config gpu --device cuda --peak-tflops "$peak_f32" \
      --json "$out/torch-lm-gpu-f32.json" | tee "$out/torch-lm-gpu-f32.txt"
    "$py" benches/torch_lm.py --config gpu --device cuda --dtype bf16 --peak-tflops "$peak_bf16" \
      --json "$out/torch-lm-gpu-bf16.json" | tee "$out/torch-lm-gpu-bf16.txt"
    ;;
  grpo)
    r1_zero grpo "$runs/grpo" --algo grpo
    ;;
  dr-grpo)
    if [ ! -d "$runs/grpo/sft" ]; then
      echo "run the grpo stage first: Dr. GRPO starts from its SFT model" >&2
      exit 1
    fi
    r1_zero dr-grpo "$runs/dr-grpo" --algo dr-grpo --sft "$runs/grpo/sft"
    ;;
  *)
    sed -n '2,22p' "$0"
    exit 2
    ;;
esac
