#!/usr/bin/env bash
# build.sh -- one entry point for the Vitis flow of hw/ (needs Vitis HLS,
# v++ and a platform; none of it runs on the development machine).
#
#   hw/scripts/build.sh csim|csynth|cosim KERNEL GOLDEN_DIR   per-kernel HLS flow (run_hls.tcl)
#   hw/scripts/build.sh xo      [--layer decode|prefill] [--board u280|v80] [--out DIR] [--vocab N]   top_layer_*.xo (+ top_head_sample.xo)
#   hw/scripts/build.sh hw_emu  [--layer decode|prefill] [--board u280|v80] [--out DIR] [--vocab N]   + v++ -l -t hw_emu
#   hw/scripts/build.sh hw      [--layer decode|prefill] [--board u280|v80] [--out DIR] [--vocab N]   + v++ -l -t hw
#
# KERNEL is a golden kernel or layer name (hw/tops/top_KERNEL.cpp), GOLDEN_DIR
# a folder written by `flxemu golden --kernel all --exp flx` (or --layer
# decode|prefill for layer_decode|layer_prefill).  The link uses
# hw/link/<board>_<layer>.cfg (default decode, u280); the
# platform comes from its platform= line.  hw/scripts/check_link.py runs
# first, so a port missing from the link configuration stops the build.
# --vocab: the head top's vocabulary rows (default 131072, Llama-3.2-1B's
# 128,256 padded; a multiple of 1024); flx_host must be built with the same
# (meson -Dhw_head_vocab=N).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hw=$(cd "$here/.." && pwd)
usage() { sed -n '4,15p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
step=$1; shift
case "$step" in
csim|csynth|cosim)
  [ $# -eq 2 ] || usage
  exec vitis_hls -f "$hw/scripts/run_hls.tcl" -tclargs "$1" "$(cd "$2" && pwd)" "$step"
  ;;
xo|hw_emu|hw) ;;
*) usage ;;
esac
board=u280 out=build_vitis layer=decode vocab=131072
while [ $# -gt 0 ]; do
  case "$1" in
  --board) board=$2; shift 2 ;;
  --layer) layer=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  --vocab) vocab=$2; shift 2 ;;
  *) usage ;;
  esac
done
cfg="$hw/link/${board}_${layer}.cfg"
[ -f "$cfg" ] || { echo "build.sh: no link configuration $cfg" >&2; exit 2; }
case "$board" in
u280) part=xcu280-fsvh2892-2L-e ;;
v80) part=xcv80-lsva4737-2MHP-e-S ;;   # assumed V80 part: check your platform
*) echo "build.sh: --board u280 or v80" >&2; exit 2 ;;
esac
case "$vocab" in ''|*[!0-9]*) usage ;; esac
[ "$vocab" -ge 1024 ] && [ $((vocab % 1024)) -eq 0 ] || { echo "build.sh: --vocab $vocab: a multiple of 1024" >&2; exit 2; }
python3 "$hw/scripts/check_link.py" "$hw"
mkdir -p "$out"
out=$(cd "$out" && pwd)
platform=$(sed -n 's/^platform=//p' "$cfg")
# the decode link also holds the step's tail, top_head_sample (LN2, lm_head,
# sampling, embedding fetch): every kernel its cfg instantiates (nk=) is linked
kernels="layer_$layer"
[ "$layer" = decode ] && kernels="$kernels head_sample"
xos=()
for k in $kernels; do
  vitis_hls -f "$hw/scripts/export_xo.tcl" -tclargs "$k" "$part" "$out" "$vocab"
  xos+=("$out/top_$k.xo")
done
[ "$step" = xo ] && exit 0
v++ -l -t "$step" --platform "$platform" --config "$cfg" --kernel_frequency 300 \
    -o "$out/layer_$layer.$board.$step.xclbin" "${xos[@]}"
echo "build.sh: $out/layer_$layer.$board.$step.xclbin"
