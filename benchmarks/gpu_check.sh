#!/usr/bin/env bash
# The GPU checks, in one go, on a machine with a CUDA device (under 8 minutes on one H200):
#
#   1. the CUDA-marked tests (pytest -m cuda): the trainer, bf16, channels_last, the batched
#      population against the sequential path on the device;
#   2. ResNet-20 images/s on CIFAR-shaped data: the textbook loop (DataLoader, fp32) against
#      ours (device data, bf16, channels_last, torch.compile); target >= 5x;
#   3. SGD-SA's accept/undo overhead per step on the device;
#   4. batched populations against sequential members on the device (K = 1, 8) and PBT /
#      random search end to end.
#
# Run from the repository root:  bash benchmarks/gpu_check.sh  [> gpu_check.log]
# GPU_CHECK_DEVICE=cpu runs the same steps small on the CPU (a smoke test of this script).
# Nothing else in the project depends on a GPU: CI never runs this.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MPLBACKEND=Agg MLFLOW_TRACKING_URI="sqlite:///${TMPDIR:-/tmp}/gpu_check_mlflow.db"
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
status=0

step() {  # step SECONDS TITLE COMMAND...
  local limit=$1 title=$2
  shift 2
  echo
  echo "=== $title  ($(date -u +%H:%M:%S), limit ${limit}s)"
  timeout "$limit" "$@"
  local rc=$?
  [ $rc -ne 0 ] && { echo "--- $title: exit code $rc"; status=1; }
  return 0
}

echo "=== machine"
"$PY" - <<'EOF'
import importlib, platform, sys
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, cuda {torch.version.cuda}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
missing = [m for m in ("optuna", "mlflow", "botorch", "gpytorch", "tqdm", "pytest")
           if importlib.util.find_spec(m) is None]
if missing:
    print("missing packages:", ", ".join(missing), file=sys.stderr)
EOF

if [ "$DEVICE" = cpu ]; then
  step 300 "CUDA-marked tests (skipped on the CPU)" "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/trainers
  step 300 "ResNet-20 images/s (smoke)" "$PY" benchmarks/gpu_throughput.py --device cpu --examples 512 --repeats 1
  step 300 "SGD-SA overhead (smoke)" "$PY" benchmarks/sgd_sa_overhead.py --device cpu --repeats 1
  step 300 "populations (smoke)" "$PY" benchmarks/population.py --device cpu --quick --repeats 1
else
  step 150 "CUDA-marked tests" "$PY" -m pytest -q -p no:cacheprovider -m cuda tests
  step 200 "ResNet-20 images/s" "$PY" benchmarks/gpu_throughput.py --device "$DEVICE" --compile
  step 60 "SGD-SA overhead" "$PY" benchmarks/sgd_sa_overhead.py --device "$DEVICE" --repeats 5
  step 120 "populations" "$PY" benchmarks/population.py --device "$DEVICE" --quick --repeats 3
fi
echo
echo "=== done ($(date -u +%H:%M:%S)): $([ $status -eq 0 ] && echo 'every step passed' || echo 'a step FAILED')"
exit $status
