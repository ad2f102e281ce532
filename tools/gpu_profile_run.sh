#!/usr/bin/env bash
# The cuda_lowvram profile on a real GPU, sized for a few minutes of GPU time.
#
#   tools/gpu_profile_run.sh setup   a Python environment (from wheels in $SDPERF_WHEELS, offline, when
#                                    that folder exists; else the current python must have sdperf's
#                                    dependencies), then builds builtin:sd3-medium (timed)
#   tools/gpu_profile_run.sh tiny    every cuda_lowvram recipe on tiny-sd3 (256x256): latency, and each
#                                    recipe's image against cuda_fp16's (the fidelity floors, on a GPU)
#   tools/gpu_profile_run.sh full    every cuda_lowvram recipe on builtin:sd3-medium at 1024x1024 under
#                                    the 6 GB cap (--sdperf-vram-cap 6144), then cuda_fp16 without it
#   tools/gpu_profile_run.sh all     the three in turn (capped and uncapped: the two halves of full)
#
# SDPERF_GPU_RECIPES (comma-separated) limits the capped stage to those recipes; SDPERF_GPU_WARMUP
# sets its warm-up generations (default 1).
#
# Results go to $OUT (default ./gpu-profile-out): each stage's log (with the results table) and its
# pytest-benchmark JSON. Each pytest stage stops (SIGINT: finished cases are kept and saved) at its
# time budget, $SDPERF_GPU_BUDGET_S seconds (default 240), and each case at --sdperf-timeout.
set -uo pipefail

stage=${1:-all}
out=${OUT:-gpu-profile-out}
wheels=${SDPERF_WHEELS:-.whl}
venv=${SDPERF_GPU_VENV:-/tmp/sdperf-gpu-venv}
budget=${SDPERF_GPU_BUDGET_S:-240}
case_timeout=${SDPERF_GPU_CASE_TIMEOUT_S:-100}
export SDPERF_CACHE=${SDPERF_CACHE:-/tmp/sdperf-cache} PYTHONUNBUFFERED=1
mkdir -p "$out"

if [ -d "$wheels" ]; then
    python=$venv/bin/python
else
    python=${SDPERF_PYTHON:-python3}
fi

setup() {
    if [ -d "$wheels" ] && [ ! -x "$python" ]; then
        # The machine's own torch (a CUDA build) stays: the carried wheels add what it lacks. python3
        # may itself be a virtual environment's, whose packages --system-site-packages would not see.
        python3 -m venv "$venv" || return 1
        python3 -c "import site; print('\n'.join(site.getsitepackages()))" \
            > "$("$python" -c "import site; print(site.getsitepackages()[0])")/machine-packages.pth" || return 1
        "$python" -m pip install -q --no-index --no-deps --no-compile "$wheels"/*.whl || return 1
        "$python" -m pip install -q --no-index --no-deps --no-build-isolation . || return 1
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$python" -c "import torch, diffusers, transformers, sdperf; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'| diffusers', diffusers.__version__, '| transformers', transformers.__version__, '| gpu', torch.cuda.get_device_name())" || return 1
    /usr/bin/time -f "build: %e s wall, peak RSS %M KiB" "$python" -m sdperf.cli build-model sd3-medium
    du -sh "$SDPERF_CACHE"/sd3-medium-*[0-9a-f] 2>/dev/null
    "$python" -m sdperf.cli models | grep -A7 "^builtin:sd3-medium"
}

suite() {  # NAME, then pytest arguments
    local name=$1
    shift
    timeout -s INT -k 30 "$budget" "$python" -m pytest -p no:cacheprovider --benchmark-json "$out/$name.json" \
        --sdperf-timeout "$case_timeout" "$@"
    echo "stage $name: pytest exit $?"
}

tiny() {
    suite tiny perf/test_latency.py perf/test_correctness.py -m cuda_lowvram \
        --sdperf-rounds 2 --sdperf-warmup 1 --sdperf-workers 1
}

capped() {
    suite capped perf/test_latency.py -m cuda_lowvram --sdperf-model builtin:sd3-medium --sdperf-vram-cap 6144 \
        --sdperf-rounds 1 --sdperf-warmup "${SDPERF_GPU_WARMUP:-1}" ${SDPERF_GPU_RECIPES:+--sdperf-recipes "$SDPERF_GPU_RECIPES"}
}

uncapped() {
    suite uncapped perf/test_latency.py -m cuda_lowvram -k cuda_fp16 --sdperf-model builtin:sd3-medium \
        --sdperf-rounds 2 --sdperf-warmup 1
}

full() {
    capped
    uncapped
}

case $stage in
    setup) setup 2>&1 | tee "$out/setup.log" ;;
    tiny) tiny 2>&1 | tee "$out/tiny.log" ;;
    full) full 2>&1 | tee "$out/full.log" ;;
    capped) capped 2>&1 | tee "$out/capped.log" ;;
    uncapped) uncapped 2>&1 | tee "$out/uncapped.log" ;;
    all)
        setup 2>&1 | tee "$out/setup.log"
        tiny 2>&1 | tee "$out/tiny.log"
        full 2>&1 | tee "$out/full.log"
        ;;
    *) echo "usage: $0 setup|tiny|full|capped|uncapped|all" >&2; exit 2 ;;
esac
