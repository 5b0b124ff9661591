#!/usr/bin/env bash
# Benchmark: the population on all 50,000 CIFAR-10N images on one GPU (issue 26's GPU figures).
#
#   CURATE_CIFAR10N=/path/to/cifar10n scripts/bench_gpu.sh OUT_DIR [SECONDS]
#
# WIDTHS ("32 64") names the resnet-small widths of steps 3 and 4 (WIDTHS=64: only the wider network). N (50000),
# DEVICE (cuda) and EXTRA (more curate run options) change it for a dry run on a CPU first:
#   N=600 DEVICE=cpu EXTRA="--members 2 --epochs 1 --finetune-epochs 1" scripts/bench_gpu.sh /tmp/gpu-dry 600
#
# Made for a GPU machine lent for minutes: each step runs under its own time limit inside SECONDS (default
# 560), so one that fails or runs long leaves the others' figures, and everything lands in OUT_DIR:
#   1. a digits run on the GPU, two members, one epoch (does the CUDA path run at all);
#   2. scripts/bench_together.py --device cuda (networks stacked as one against one by one);
#   3. curate run on all 50,000 images with the default network, K = 4 x F = 2, four chained pruning
#      levels and the control copy, no other compressions, then its figures (bench_population.py
#      --networks-of: per network and level accuracy, PIE fractions, seconds, the members' mean);
#   4. the same with a network twice as wide (resnet-small:64), in what time is left (on a 15-minute lease,
#      little: give it a call of its own).
set -u
out=${1:?usage: scripts/bench_gpu.sh OUT_DIR [SECONDS]}
budget=${2:-560}
py=${PYTHON:-python3}
n=${N:-50000} device=${DEVICE:-cuda} extra=(${EXTRA:-}) widths=(${WIDTHS:-32 64})
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 FIFTYONE_DO_NOT_TRACK=true
export CURATE_HOME=${CURATE_HOME:-/tmp/curate-bench-gpu-home}
mkdir -p "$out"
left() { echo $((budget - SECONDS)); }
step() {  # step NAME SECONDS COMMAND...: run under a time limit, output to the screen and OUT_DIR/NAME.log
    local name=$1 limit=$2; shift 2
    ((limit > $(left))) && limit=$(left)
    if ((limit < 20)); then echo "== $name: skipped, ${limit} s left"; return 1; fi
    echo "== $name (at most ${limit} s, $(left) s left): $*"
    local started=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - started)) s"
    return "$rc"
}
population() {  # population NAME SECONDS ARGS...: curate run on the 50,000 images, then its figures
    local name=$1 limit=$2; shift 2
    local run="/tmp/curate-bench-gpu-$name"
    rm -rf "$run"
    step "$name" "$limit" "$py" -m curate run "$csv" --no-fiftyone --run-dir "$run" --device "$device" \
        --quantize none --filter-prune none --distill none --robustness-images 0 "${fallback[@]}" "${extra[@]}" "$@"
    [ -f "$run/manifest.json" ] && cp "$csv" "$run/labels.csv" && "$py" scripts/bench_population.py cifar10n --networks-of "$run" \
        --out "$out/$name.json" 2>&1 | tee -a "$out/$name.log"
}

cd "$repo"
nvidia-smi -L 2>&1; "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
csv=$("$py" scripts/bench_population.py cifar10n --n "$n" --write-manifest /tmp) || exit 1
fallback=()
# Stacked networks are the GPU's default; should they fail there, the populations train one network at a time.
step smoke 120 "$py" -m curate run digits --no-fiftyone --device "$device" --members 2 --epochs 1 \
    --finetune-epochs 1 --quantize none --filter-prune none --distill none --robustness-images 0 \
    --run-dir /tmp/curate-bench-gpu-smoke -q || fallback=(--train-together 1)
step together 90 "$py" scripts/bench_together.py --device "$device" --out "$out/together.json"
# On an H200 (2026-12-04) the default population's training took 265 s of a 300 s limit, and the run was stopped
# in the checks after it: 420 s leaves room for its tables.
for width in "${widths[@]}"; do
    population "population-w$width" 420 --model "resnet-small:$width"
done
echo "== done in $SECONDS s"
