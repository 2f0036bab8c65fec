#!/usr/bin/env bash
# Builds zero-to-r1 with candle's CUDA backend on a machine that has no GPU and no CUDA
# toolkit: the CUDA 13.0 compiler, headers and libraries come from PyPI into a venv.
#
#   bash .ci/build-cuda.sh                 # cargo build --release --features cuda
#   bash .ci/build-cuda.sh --bin zero-to-r1
#
# The binary runs on a machine with an NVIDIA driver ≥ 580 (CUDA 13.0) and the CUDA 13
# libraries (cuBLAS, cuRAND, the runtime, NVRTC) on its library path; see book/src/running.md.
#
# Settings (environment):
#   CUDA_VENV         where the CUDA packages go      (default ~/.cache/zero-to-r1-cuda13)
#   CUDA_COMPUTE_CAP  the GPU architecture to compile for (default 90: H100/H200)
#   CARGO_TARGET_DIR  the build folder (default target/cuda, so the CPU binary in target/ stays:
#                     a CUDA binary cannot even start on a machine without the driver)
#
# Why the pins: a 580 driver can only load PTX of CUDA ≤ 13.0, and cudarc refuses newer nvcc
# versions, so every package is held at 13.0 (nvvm too: nvcc does not pin it itself).
set -euo pipefail

venv=${CUDA_VENV:-$HOME/.cache/zero-to-r1-cuda13}
cap=${CUDA_COMPUTE_CAP:-90}
started=$(date +%s)

if [ ! -x "$venv/bin/pip" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" \
  "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-nvrtc==13.0.*" \
  "nvidia-cublas==13.0.*" "nvidia-curand==10.4.0.*"
cuda=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
echo "CUDA from PyPI in $cuda ($(( $(date +%s) - started )) s)"

# The linker needs unversioned names (the wheels ship only libX.so.N) and a libcuda.so, which
# is part of the driver, not of the toolkit. cudarc looks in $CUDA_HOME/lib/stubs by itself.
stubs=$cuda/lib/stubs
mkdir -p "$stubs"
for lib in cublas cublasLt curand nvrtc cudart; do
  real=$(ls "$cuda"/lib/lib$lib.so.* | grep -v '\.alt\.' | head -n 1)
  ln -sf "$real" "$stubs/lib$lib.so"
done

# A stand-in libcuda.so for linking only: every driver function cudarc declares, each
# returning CUDA_ERROR_STUB_LIBRARY (34). The real driver replaces it at run time; never ship it.
cargo fetch --quiet
cudarc=$(cargo metadata --format-version 1 --features cuda | python3 -c '
import json, os, sys
packages = json.load(sys.stdin)["packages"]
print(os.path.dirname(next(p for p in packages if p["name"] == "cudarc")["manifest_path"]))')
grep -oE 'pub unsafe fn cu[A-Z][A-Za-z0-9_]*' "$cudarc/src/driver/sys/mod.rs" \
  | awk '{print $4}' | sort -u \
  | awk '{print "int " $1 "(void) { return 34; }"}' > "$stubs/libcuda_stub.c"
gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda_stub.c"

export CUDA_HOME=$cuda PATH=$cuda/bin:$PATH CUDA_COMPUTE_CAP=$cap
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
if [ $# -eq 0 ]; then
  set -- --features cuda
else
  set -- --features cuda "$@"
fi
cargo build --release "$@"
echo "CUDA build done in $(( $(date +%s) - started )) s: $CARGO_TARGET_DIR/release/zero-to-r1"
