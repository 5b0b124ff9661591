#!/usr/bin/env bash
# Benchmark: the population on all 50,000 CIFAR-10N images on one GPU (issue 26's GPU figures).
#
#   CURATE_CIFAR10N=/path/to/cifar10n scripts/bench_gpu.sh OUT_DIR [SECONDS]
#
# POPULATIONS ("32:512 32:256") names the populations' resnet-small widths and batch sizes. N (50000), DEVICE (cuda) and EXTRA (more
# curate run options) change it for a dry run on a CPU first:
#   N=600 DEVICE=cpu EXTRA="--members 2 --epochs 1 --finetune-epochs 1" POPULATIONS=8:64 RECIPES=w8-b64 MAIN=w8-b64 scripts/bench_gpu.sh /tmp/gpu-dry 600
#
# Made for a GPU machine lent for minutes: each step runs under its own time limit inside SECONDS (default
# 560), so one that fails or runs long leaves the others' figures, and everything lands in OUT_DIR:
#   1. curate run on all 50,000 images with the defaults (the GPU's batch is 512), K = 4 x F = 2, four chained
#      pruning levels and the control copy, no other compressions, for each width:batch of POPULATIONS, then
#      its figures (bench_population.py --networks-of: per network and level accuracy, PIE fractions, seconds);
#   2. scripts/bench_training.py --device cuda: one network's held-out accuracy for other recipes (batch,
#      width, the whitened first layer, epochs, and four fifths of the images instead of half);
#   3. scripts/bench_together.py --device cuda at the shapes the populations train;
#   4. scripts/bench_airbench.py --device cuda: what airbench94's recipe reaches on one fold (half the images).
set -u
out=${1:?usage: scripts/bench_gpu.sh OUT_DIR [SECONDS]}
budget=${2:-560}
py=${PYTHON:-python3}
n=${N:-50000} device=${DEVICE:-cuda} extra=(${EXTRA:-}) populations=(${POPULATIONS:-32:512 32:256})
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 FIFTYONE_DO_NOT_TRACK=true
export CURATE_HOME=${CURATE_HOME:-/tmp/curate-bench-gpu-home}
mkdir -p "$out"
left() { echo $((budget - SECONDS)); }
# Every step's output goes to the screen and to one OUT_DIR/steps.log: a lent machine returns only a few files.
log="$out/steps.log"
step() {  # step NAME SECONDS COMMAND...: run under a time limit
    local name=$1 limit=$2; shift 2
    ((limit > $(left))) && limit=$(left)
    if ((limit < 20)); then echo "== $name: skipped, ${limit} s left"; return 1; fi
    echo "== $name (at most ${limit} s, $(left) s left): $*" | tee -a "$log"
    local started=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - started)) s" | tee -a "$log"
    return "$rc"
}
population() {  # population NAME SECONDS ARGS...: curate run on the 50,000 images, then its figures
    local name=$1 limit=$2; shift 2
    local run="/tmp/curate-bench-gpu-$name"
    rm -rf "$run"
    step "$name" "$limit" "$py" -m curate run "$csv" --no-fiftyone --run-dir "$run" --device "$device" \
        --quantize none --filter-prune none --distill none --robustness-images 0 "${fallback[@]}" "${extra[@]}" "$@"
    [ -f "$run/manifest.json" ] && cp "$csv" "$run/labels.csv" && "$py" scripts/bench_population.py cifar10n --networks-of "$run" \
        --out "$out/$name.json" 2>&1 | tee -a "$log"
}

cd "$repo"
nvidia-smi -L 2>&1; "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
csv=$("$py" scripts/bench_population.py cifar10n --n "$n" --write-manifest /tmp) || exit 1
fallback=()
for spec in "${populations[@]}"; do
    population "population-w${spec%%:*}-b${spec##*:}" 240 --model "resnet-small:${spec%%:*}" --batch-size "${spec##*:}"
done
# One network each: RECIPES at 16 epochs; MAIN and LONGER at 32; MAIN on four fifths of the images.
# On 2 CPU cores the whitened first layer (-wh) added 0.4-1.7 points at 8 epochs and none at 16: a GPU's
# 784 steps a network are a short budget.
main=${MAIN:-w64-b256-lr0.1} recipes=${RECIPES:-w32-b512-lr0.1,w32-b512-lr0.1-wh,w32-b256-lr0.1,w64-b256-lr0.1-wh}
step training 150 "$py" scripts/bench_training.py --n "$n" --device "$device" --recipes "$recipes" --epochs 16 \
    --out "$out/training.json"
step training-longer 90 "$py" scripts/bench_training.py --n "$n" --device "$device" --recipes "$main,${LONGER:-w32-b512-lr0.1}" \
    --epochs 32 --out "$out/training-longer.json"
step training-more-images 40 "$py" scripts/bench_training.py --n "$n" --device "$device" --folds 5 \
    --recipes "$main" --epochs 16 --out "$out/training-more-images.json"
step together 60 "$py" scripts/bench_together.py --device "$device" --shapes 32:32:64,32:32:512,32:64:512 \
    --out "$out/together.json"
# The ceiling of half the images: airbench94's network and recipe on one fold (0.879 at 10 epochs, 0.887 at 20, on 2 CPU cores).
step airbench 60 "$py" scripts/bench_airbench.py --n "$n" --device "$device" --epochs 10,20,40 --batch 512 \
    --out "$out/airbench.json"
echo "== done in $SECONDS s"
