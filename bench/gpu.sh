#!/usr/bin/env bash
# Every GPU-relevant benchmark in one go, each step's output written to OUT_DIR (docs/benchmarks.md, "GPU").
#
#   bench/gpu.sh OUT_DIR          # on a machine with a CUDA device; about 5-8 minutes
#   bench/gpu.sh --cpu OUT_DIR    # smoke run on CPU with tiny sizes (checks the script end to end)
#
# Steps (each in OUT_DIR/<step>.txt, status and seconds in OUT_DIR/steps.tsv):
#   1. population  bench/bench_population.py: the population engine against the thesis loop, P = 10 and 100
#   2. shade       trainlab train: SHADE on LeNet-5 / MNIST (10,000 images) at the thesis budget, 4,200
#                  full-training-set fitness evaluations; OUT_DIR/shade-lenet5/result.json
#   3. sweep       bench/bench_sweep.py: 64 spiral cells, sweep against single runs, cells per second
#   4. train       bench/bench_train.py: gradient training against a hand-written loop, same evaluation policy,
#                  then compile = true against eager
# Environment: PYTHON (default: .venv/bin/python if present, else python3), TRAINLAB_DATA (raw data sets).
# Each step has its own time limit (90 + 120 + 90 + 150 s on a GPU: under 8 minutes in all; 300 s each with
# --cpu); a step that fails or runs out of time is recorded as such, the others still run, and the exit
# status is 1.
set -uo pipefail

usage() { echo "usage: bench/gpu.sh [--cpu] OUT_DIR" >&2; exit 2; }
CPU=0
if [[ "${1:-}" == "--cpu" ]]; then CPU=1; shift; fi
[[ $# -eq 1 ]] || usage
OUT=$1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"

if [[ $CPU -eq 1 ]]; then
    export CUDA_VISIBLE_DEVICES=""
    DEVICE=cpu
else
    DEVICE=cuda
    if ! "$PYTHON" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    build = f"CUDA build {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    sys.exit(f"bench/gpu.sh: no CUDA device visible to torch {torch.__version__} ({build}); "
             "run 'bench/gpu.sh --cpu OUT_DIR' for a CPU smoke run")
EOF
    then
        exit 1
    fi
fi
mkdir -p "$OUT" || { echo "bench/gpu.sh: cannot create OUT_DIR '$OUT'" >&2; exit 2; }
OUT=$(cd "$OUT" && pwd)
printf 'step\tstatus\tseconds\n' > "$OUT/steps.tsv"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'device', '$DEVICE',
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" > "$OUT/device.txt" 2>&1

FAILED=0
step() {  # step NAME SECONDS COMMAND...: run with that time limit (300 s with --cpu), output to OUT/NAME.txt
    local name=$1 limit=$2; shift 2
    local start=$SECONDS status
    if [[ $CPU -eq 1 ]]; then limit=300; fi
    echo "== $name: $*"
    (cd "$ROOT" && timeout "$limit" "$@") > "$OUT/$name.txt" 2>&1
    status=$?
    if [[ $status -eq 124 ]]; then status="timeout after ${limit}s"; FAILED=1
    elif [[ $status -ne 0 ]]; then status="failed (exit $status)"; FAILED=1
    else status=ok; fi
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" >> "$OUT/steps.tsv"
    echo "   $status in $((SECONDS - start)) s; tail of $OUT/$name.txt:"
    tail -n 12 "$OUT/$name.txt" | sed 's/^/   | /'
}

if [[ $CPU -eq 1 ]]; then
    step population 90 "$PYTHON" bench/bench_population.py --cases mlp2/bcw --sizes 2 4 --samples 32 --repeats 1
    step shade 120 "$PYTHON" -c "from trainlab.cli import main; main()" train --task mnist --model lenet5 --trainer shade --evals 20 \
        --set task.n_train=100 --set task.n_test=40 --device cpu --out "$OUT/shade-lenet5" --overwrite
    step sweep 90 "$PYTHON" bench/bench_sweep.py --cells 4 --width 8 --steps 20 --repeats 1 --device cpu
    step train 150 "$PYTHON" bench/bench_train.py --cases mlp2/bcw --epochs 2 --repeats 1 --device cpu --compile
else
    step population 90 "$PYTHON" bench/bench_population.py --repeats 2
    step shade 120 "$PYTHON" -c "from trainlab.cli import main; main()" train --task mnist --model lenet5 --trainer shade --evals 4200 \
        --device cuda --out "$OUT/shade-lenet5" --overwrite
    step sweep 90 "$PYTHON" bench/bench_sweep.py --cells 64 --width 100 --steps 300 --repeats 1 --device cuda
    step train 150 "$PYTHON" bench/bench_train.py --cases lenet5/mnist,mlp5/wqc --epochs 3 --repeats 3 \
        --device cuda --compile
fi
echo "== figures in $OUT (steps.tsv: status and seconds of each step)"
cat "$OUT/steps.tsv"
exit $FAILED
