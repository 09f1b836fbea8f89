#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU and CuPy, run the GPU tests, a short rso_speed
# run on CuPy, one round of the paper preset and its evaluation, each under `timeout`, and
# write a report (nvidia-smi, versions, each step's exit code, time and the tail of its output).
# The steps' limits add up to 9.5 minutes: the whole check fits in 10 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh [REPORT_DIR]    # default: $OUT if set, else runs/gpu-check-<time>
#
# MNIST is read from $MINIRSO_DATA (default: data/mnist; downloaded there if missing and the
# machine is online). $PYTHON picks the interpreter (default: python, else python3). Without a
# usable CUDA GPU (CuPy missing, no device, CUDA_VISIBLE_DEVICES="") it stops at once with
# exit code 2 and says why. Exit code 1 when a step failed or ran out of time, 0 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
PYTHON="${PYTHON:-$(command -v python || command -v python3 || echo python3)}"

if ! reason=$("$PYTHON" - 2>&1 <<'EOF'
import sys
try:
    from minirso.backend import get_backend
    from minirso.errors import MinirsoError
except ImportError as err:
    sys.exit(f"minirso cannot be imported ({err}): install it with pip install -e \".[dev,gpu]\"")
try:
    cupy = get_backend("cupy")
except MinirsoError as err:
    sys.exit(str(err))
if getattr(cupy, "is_stand_in", False):
    sys.exit("the cupy imported here is the tests' CuPy stand-in (tests/fake_cupy.py: NumPy on the CPU, no GPU); "
             "drop tests/fake_gpu from PYTHONPATH, or run on the CPU (--backend numpy)")
EOF
); then
  echo "gpu_check: no usable CUDA GPU here, nothing was checked: ${reason:-$PYTHON failed}" >&2
  exit 2
fi

out="${1:-${OUT:-$root/runs/gpu-check-$(date -u +%Y%m%d-%H%M%S)}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export MINIRSO_DATA="${MINIRSO_DATA:-$root/data/mnist}"
report="$out/gpu_check.md"
summary="$out/.summary"
: > "$summary"
failed=0
start=$(date +%s)

{
  echo "# minirso GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo
  echo "minirso commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)'), data $MINIRSO_DATA"
  echo
  echo '## Machine'
  echo
  echo '```'
  if command -v nvidia-smi > /dev/null; then nvidia-smi 2>&1; else echo "nvidia-smi: not on PATH"; fi
  echo
  "$PYTHON" - 2>&1 <<'EOF'
import platform, numpy, cupy
print(f"Python {platform.python_version()}, NumPy {numpy.__version__}, CuPy {cupy.__version__}")
print(f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, driver {cupy.cuda.runtime.driverGetVersion()}")
props = cupy.cuda.runtime.getDeviceProperties(0)
print(f"device 0: {props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.1f} GiB")
EOF
  echo '```'
  echo
} > "$report"

# step NAME LIMIT_SECONDS COMMAND...: run it under timeout (SIGINT first: pytest and train stop
# cleanly), log its output to NAME.log, add its exit code, time and output tail to the report.
step() {
  local name=$1 limit=$2 t0 status seconds verdict
  shift 2
  echo "gpu_check: $name (at most ${limit} s): $*"
  t0=$(date +%s)
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$out/$name.log" 2>&1
  status=$?
  seconds=$(( $(date +%s) - t0 ))
  case $status in
    0) verdict="passed" ;;
    124|137) verdict="ran out of time (limit ${limit} s)"; failed=1 ;;
    *) verdict="failed"; failed=1 ;;
  esac
  echo "gpu_check: $name: exit $status, $seconds s, $verdict"
  echo "| $name | $status | $seconds | $verdict |" >> "$summary"
  {
    echo "## $name"
    echo
    echo "\`$*\`: exit code $status, $seconds s, $verdict. Last 40 lines of \`$name.log\`:"
    echo
    echo '```'
    tr '\r' '\n' < "$out/$name.log" | grep -v '^[[:space:]]*$' | tail -n 40
    echo '```'
    echo
  } >> "$report"
  return "$status"
}

step gpu-tests 150 "$PYTHON" -m pytest -m gpu -q -rs
step rso-speed 140 "$PYTHON" benchmarks/rso_speed.py --backend cupy --threads 1 \
  --trials literal=2,prefix=3,incremental=12 --json "$out/rso_speed.json"
if step paper-round-1 240 "$PYTHON" -m minirso.train --preset paper --rounds 1 --backend cupy \
     --out "$out/paper-round-1"; then
  step evaluate 40 "$PYTHON" -m minirso.evaluate "$out/paper-round-1" --backend cupy --confusion \
    --mistakes "$out/paper-round-1/mistakes.png"
else
  echo "| evaluate | - | - | skipped: the paper round did not finish |" >> "$summary"
fi

{
  echo "## Summary"
  echo
  echo "| step | exit code | seconds | result |"
  echo "|---|---:|---:|---|"
  cat "$summary"
  echo
  echo "Whole check: $(( $(date +%s) - start )) s."
} >> "$report"
rm -f "$summary"
echo "gpu_check: report written to $report"
exit "$failed"
