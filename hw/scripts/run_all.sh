#!/usr/bin/env bash
# Runs hw/scripts/run_hls.tcl for every kernel (or the ones named) on a machine
# with Vitis HLS: golden vectors first (flx-exp, the exponential the tops use),
# then csim, csynth and cosim per kernel; a summary line per kernel.
#   hw/scripts/run_all.sh [--flxemu PATH] [--steps csim,csynth,cosim] [--out DIR] [KERNEL...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
flxemu=${FLXEMU:-}
steps=csim,csynth,cosim
out=$PWD/hls_runs
kernels=()
while [ $# -gt 0 ]; do
  case "$1" in
    --flxemu) flxemu=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    -*) echo "run_all.sh: unknown option $1" >&2; exit 2 ;;
    *) kernels+=("$1"); shift ;;
  esac
done
if [ -z "$flxemu" ]; then flxemu=$(command -v flxemu || true); fi
[ -n "$flxemu" ] || { echo "run_all.sh: give --flxemu PATH (the built flxemu)" >&2; exit 2; }
command -v vitis_hls >/dev/null || { echo "run_all.sh: vitis_hls not on PATH" >&2; exit 2; }
mkdir -p "$out"
"$flxemu" golden --kernel all --exp flx --out "$out/golden"
if [ ${#kernels[@]} -eq 0 ]; then
  for f in "$here"/../tops/top_*.cpp; do k=$(basename "$f" .cpp); kernels+=("${k#top_}"); done
fi
fail=0
for k in "${kernels[@]}"; do
  if (cd "$out" && vitis_hls -f "$here/run_hls.tcl" -tclargs "$k" "$out/golden" "$steps" prj > "$out/$k.log" 2>&1); then
    echo "PASS $k ($out/$k.log)"
  else
    echo "FAIL $k ($out/$k.log)"; fail=$((fail + 1))
  fi
done
echo "run_all.sh: ${#kernels[@]} kernels, $fail failed"
[ $fail -eq 0 ]
