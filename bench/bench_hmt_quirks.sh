#!/usr/bin/env bash
# The quirk table of docs/hmt.md §6: what each of FlexLLM's as-written HMT
# behaviours does to perplexity, measured on a tiny model with RANDOM HMT
# parameters (no trained ones exist).  Tiny synthetic model (flxemu synth
# --shape tiny --seed 1, byte-level vocabulary), quantized with the flexllm
# recipe (RTN, static scales from 4 x 256 TinyStories tokens), HMT parameters
# `flxemu synth --shape tiny --seed 1 --hmt` (FlexLLM's 990/495/32 layout,
# 64 slots), WikiText-2 test text (--protocol hf), 8 contexts of 4 segments
# (7,920 scored tokens), 2 threads.  One line per run: HMT PPL, baseline PPL
# (plain 1024-token window), segment 0's mean NLL.
#
#   bench/bench_hmt_quirks.sh [FLXEMU]
#
# Env: BENCH_DIR (default ${TMPDIR:-/tmp}/flxemu-bench-quirks, outside the
# repository); FLXEMU_DATA as for the tests.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/app/flxemu}
bench=${BENCH_DIR:-${TMPDIR:-/tmp}/flxemu-bench-quirks}
data=${FLXEMU_DATA:-$top/../shared/data}
text=$data/wikitext2/wiki.test.raw
case "$bench" in "$top"/*) echo "BENCH_DIR must be outside the repository" >&2; exit 2;; esac
[ -x "$bin" ] || { echo "no program at $bin (build first)" >&2; exit 2; }
[ -f "$text" ] || { echo "missing $text" >&2; exit 2; }
mkdir -p "$bench"
"$bin" synth --shape tiny --seed 1 --out "$bench/model" --force --hmt "$bench/hmt.safetensors" >&2
head -c 20000 "$data/tinystories/tinystories_val_first_stories.txt" > "$bench/calib.txt"
"$bin" quantize --model "$bench/model" --recipe flexllm --calib "$bench/calib.txt" --nsamples 4 --seqlen 256 \
  --threads 2 --out "$bench/m.flxq" >&2
common=(--model "$bench/m.flxq" --file "$text" --protocol hf --hmt "$bench/hmt.safetensors" --hmt-segments 4 --hmt-eval contexts
        --chunks 8 --threads 2 --no-progress)
row() {   # label, then flags
  local label=$1; shift
  "$bin" ppl "${common[@]}" "$@" --json "$bench/r.json" > /dev/null 2> "$bench/r.err" ||
    { cat "$bench/r.err" >&2; exit 1; }
  python3 - "$label" "$bench/r.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[2]))
print("| %s | %.4f | %.4f | %s | %d |" % (sys.argv[1], r["ppl"], r["baseline_ppl"],
      "%.4f" % r["segment_mean_nll"][0] if r["engine"] == "emu" else "%.4f (float)" % r["segment_mean_nll"][0],
      r["scored_tokens"]))
EOF
}
echo "| run | HMT PPL | baseline PPL | segment 0 mean NLL | scored tokens |"
echo "|---|---:|---:|---:|---:|"
row "float engine (fake-quant of the same file)"
row "emu, intended (no quirk)" --engine emu
for q in region0 unmasked zero-init zero-sensory all; do
  row "\`--hmt-quirks $q\`" --engine emu --hmt-quirks "$q"
done
row "\`--reference-quirks\`" --engine emu --reference-quirks
