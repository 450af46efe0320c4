#!/usr/bin/env bash
# fnn's prepared GPU check: one command, installs nothing, needs no network.
#
#   scripts/gpu_check.sh            on a machine with JAX (CUDA), PyTorch (CUDA), Flax, optax: ≤ 8 min
#   scripts/gpu_check.sh --smoke    on CPU, a smoke run of the same steps in seconds
#                                   (also FNN_GPU_CHECK_SMOKE=1; tests/scripts/test_bench.py runs it)
#
# What it runs (each against PyTorch CUDA eager and torch.compile, compile times apart), all
# through scripts/bench.py:
#   1. cases large, tiny, cnn, sweep (--members 64)      -> DIR/bench/bench.{json,md}
#   2. cases fashion, fashion_cnn: `fnn train` of configs/fashion_mnist.toml and
#      configs/fashion_cnn.toml to their accuracy, and the same recipes in PyTorch
#                                                         -> DIR/configs/bench.{json,md}
#   3. DIR/summary.md: the GPU targets met or missed, printed last.
# DIR is $OUT if set, else gpu_results/ in the checkout.
#
# Data. The Fashion-MNIST IDX files are read from the git-ignored folder .gpu_data/fashion_mnist/
# (FNN_DATA_DIR=.gpu_data), filled once on a machine that has them:
#     mkdir -p .gpu_data/fashion_mnist && cp /usr/share/datasets/fashion-mnist/*.gz .gpu_data/fashion_mnist/
# The device tool copies only tracked and non-ignored files: CARRY ".gpu_data" (30 MB), e.g.
#     run(command="scripts/gpu_check.sh", carry=[".gpu_data"], timeout_s=540)
# Without that folder the loaders' own search applies ($FNN_DATA_DIR, ~/.cache/fnn, the Debian
# package's /usr/share/datasets/fashion-mnist); nothing is downloaded on a machine without network.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SMOKE="${FNN_GPU_CHECK_SMOKE:-0}"
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $arg (expected --smoke)" >&2; exit 2 ;;
  esac
done
DIR="${OUT:-$ROOT/gpu_results}"
mkdir -p "$DIR"
PY="${PYTHON:-$(command -v python || command -v python3)}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -f "$ROOT/.gpu_data/fashion_mnist/train-images-idx3-ubyte.gz" ] || \
   [ -f "$ROOT/.gpu_data/fashion_mnist/train-images-idx3-ubyte" ]; then
  export FNN_DATA_DIR="$ROOT/.gpu_data"
fi
START=$(date +%s)
LOG="$DIR/gpu_check.log"
: > "$LOG"

if [ "$SMOKE" = "1" ]; then
  DEVICE=cpu
  # tiny sizes, one process per bench run, one contestant per family: seconds, not figures
  COMMON=(--device cpu --quick --in-process --threads 1 --repeats 1 --samples 256 --members 2
          --fashion-members 2 --n-images 192 --fashion-epochs 1 --fashion-cnn-epochs 1 --cnn-steps 1
          --no-torch-compile --timeout 120
          --skip fnn-scan-autodiff,fnn-loop,torch-fused,flax,fnn-im2col,fnn-xla,fnn-hybrid,fnn-autodiff,sklearn,fnn-fashion-seq)
  CASES1=large,tiny,cnn,sweep
  T1=120; T2=120
else
  DEVICE=gpu
  backend=$("$PY" -c "import jax; print(jax.default_backend())" 2>>"$LOG" | tail -1)
  if [ "$backend" != "gpu" ]; then
    echo "gpu_check: JAX's default backend is '${backend:-none}', not gpu (use --smoke on CPU)" | tee -a "$LOG" >&2
    exit 1
  fi
  COMMON=(--device gpu --timeout 300 --skip sklearn)
  CASES1=large,tiny,cnn,sweep
  T1=330; T2=150
fi
echo "gpu_check: device=$DEVICE smoke=$SMOKE out=$DIR data=${FNN_DATA_DIR:-default search}" | tee -a "$LOG"

status=0
# 1. throughput: large and tiny MLP, the CNN, the sweeps (64 members of the tiny net)
members=64; [ "$SMOKE" = "1" ] && members=2
timeout "$T1" "$PY" scripts/bench.py "${COMMON[@]}" --members "$members" --cases "$CASES1" \
  --out "$DIR/bench" >>"$LOG" 2>&1 || { echo "gpu_check: bench ($CASES1) failed or timed out; see $LOG" >&2; status=1; }
# 2. the shipped configs to their accuracy through fnn train, against PyTorch
timeout "$T2" "$PY" scripts/bench.py "${COMMON[@]}" --cases fashion,fashion_cnn \
  --out "$DIR/configs" >>"$LOG" 2>&1 || { echo "gpu_check: bench (fashion, fashion_cnn) failed or timed out; see $LOG" >&2; status=1; }

# 3. the summary, printed last
"$PY" scripts/gpu_summary.py "$DIR" "$SMOKE" "$(( $(date +%s) - START ))" || status=1
exit $status
