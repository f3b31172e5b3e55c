#!/usr/bin/env bash
# The checks that need a GPU, in under 5 minutes: the gpu-marked tests, then the
# GPU benchmark.  Run from the repository root on a machine with CuPy and a CUDA
# device (pyFFTW, soundfile and hypothesis are not needed):
#
#     benchmarks/device_check.sh OUTDIR
#
# BENCHMARK_ONLY=name,name limits the benchmark to those workloads (the ones a
# first run left out for time, say).
# Writes OUTDIR/device_check.log (everything printed), OUTDIR/pytest.xml (JUnit),
# OUTDIR/gpu_benchmarks.json (the benchmark's results) and OUTDIR/summary.json.
# Exit status: 0 if the tests and the benchmark's cross-checks passed.
set -u

out=${1:?usage: benchmarks/device_check.sh OUTDIR}
mkdir -p "$out"
log="$out/device_check.log"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export FFTCONV_CACHE_DIR="$out/cache"  # wisdom and plan wisdom of this run only
export FFTCONV_SAVE_WISDOM=0
py=${PYTHON:-python3}

{
    echo "== device_check $(date -u +%Y-%m-%dT%H:%M:%SZ) in $root"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    "$py" -c 'import sys, numpy, cupy; print(sys.version.split()[0], "numpy", numpy.__version__,
               "cupy", cupy.__version__, "devices", cupy.cuda.runtime.getDeviceCount())' 2>&1
} >"$log"

# The gpu-marked tests: the GPU's own (test_gpu.py) and the golden and property
# cases on the real CuPy backend; the stand-in tests of the backend's logic too
# (fast, and they must pass here as well); the PyTorch module's CUDA gradcheck
# where torch is installed.  The property and gradient tests need hypothesis.
tests=(tests/test_gpu.py tests/test_golden.py tests/test_cupy_backend.py
       tests/test_cupy_transfers.py tests/test_cupy_overlap.py tests/test_fir_path.py)
"$py" -c 'import torch' 2>/dev/null && tests+=(tests/test_torch.py)
"$py" -c 'import hypothesis' 2>/dev/null &&
    tests+=(tests/test_property.py tests/test_streaming.py tests/test_vjp.py)
# Four workers share the GPU where pytest-xdist is installed.
workers=()
"$py" -c 'import xdist' 2>/dev/null && workers=(-n 4)
echo "== pytest ${workers[*]} ${tests[*]}" >>"$log"
PYTHONUNBUFFERED=1 timeout 200 "$py" -m pytest -q -p no:cacheprovider "${workers[@]}" \
    --durations=10 --junitxml="$out/pytest.xml" -k "gpu or cupy" "${tests[@]}" >>"$log" 2>&1
tests_status=$?

echo "== gpu_benchmarks" >>"$log"
PYTHONUNBUFFERED=1 timeout 110 "$py" benchmarks/gpu_benchmarks.py --repeat 20 \
    --max-seconds 75 ${BENCHMARK_ONLY:+--only "$BENCHMARK_ONLY"} \
    --json "$out/gpu_benchmarks.json" >>"$log" 2>&1
bench_status=$?

printf '{"tests_status": %d, "benchmark_status": %d}\n' "$tests_status" "$bench_status" \
    >"$out/summary.json"
grep -E "passed|failed|error" "$log" | tail -n 3
sed -n '/^| workload/,$p' "$log"
[ "$tests_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
