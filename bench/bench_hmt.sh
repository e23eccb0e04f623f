#!/usr/bin/env bash
# HMT benchmark (issue 11): the bit-exact engine on a synthetic Llama-3.2-1B
# (`flxemu synth` BF16 checkpoint with the Llama-3 tokenizer, quantized with
# `flxemu quantize --recipe flexllm`, RTN), WikiText-2, 2 threads:
#   1. plain prefill perplexity, 2 windows of 1024 tokens (the accelerator's window);
#   2. HMT perplexity, 1 context of 4 segments (3,960 tokens), no baseline;
#   3. HMT perplexity, 1 context of 16 segments (15,840 tokens) with its baseline.
#
#   bench/bench_hmt.sh [FLXEMU]
#
# Env: BENCH_DIR (default ${TMPDIR:-/tmp}/flxemu-bench) holds the checkpoint, the
# .flxq and the HMT parameters (written once, never inside the repository);
# FLXEMU_DATA as for the tests.
#
# Prints one line per run with tokens/s (plain), context tokens/s and backbone
# rows/s (HMT: stage-0 summary rows + stage-1 rows, the work the summary pass adds
# counted), peak RSS and PPL, then the ratios the issue asks for:
#   hmt_rows_vs_plain = HMT backbone rows/s / plain tokens/s   (target >= 0.8)
#   rss_16_vs_4       = peak RSS of 16 segments / 4 segments   (target ~1: independent)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/app/flxemu}
bench=${BENCH_DIR:-${TMPDIR:-/tmp}/flxemu-bench}
data=${FLXEMU_DATA:-$top/../shared/data}
model=$bench/llama-3.2-1b-synth
flxq=$bench/llama-3.2-1b-flexllm-rtn.flxq
hmt=$bench/hmt-llama-3.2-1b-seed1.safetensors
text=$data/wikitext2/wiki.test.raw
tok=$data/tiny-llama3-random/tokenizer.json
case "$bench" in "$top"/*) echo "BENCH_DIR must be outside the repository" >&2; exit 2;; esac
[ -x "$bin" ] || { echo "no program at $bin (build first)" >&2; exit 2; }
[ -f "$text" ] || { echo "missing $text" >&2; exit 2; }
mkdir -p "$bench"
if [ ! -f "$model/model.safetensors" ]; then
  "$bin" synth --shape llama-3.2-1b --dtype bf16 --seed 1 --tokenizer "$tok" --out "$model" --force >&2
fi
if [ ! -f "$flxq" ]; then
  head -c 200000 "$data/tinystories/tinystories_val_first_stories.txt" > "$bench/calib-hmt.txt"
  "$bin" quantize --model "$model" --recipe flexllm --calib "$bench/calib-hmt.txt" --nsamples 4 --seqlen 512 \
    --threads 2 --out "$flxq" >&2
fi
[ -f "$hmt" ] || "$bin" synth --shape llama-3.2-1b --seed 1 --hmt "$hmt" >&2
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
j=$bench/hmt-bench
"$bin" ppl --engine emu --model "$flxq" --file "$text" --ctx 1024 --chunks 2 --threads 2 --json "$j-plain.json" \
  >/dev/null 2>&1
"$bin" ppl --engine emu --model "$flxq" --file "$text" --hmt "$hmt" --hmt-segments 4 --hmt-eval contexts --chunks 1 \
  --hmt-baseline-ctx 0 --threads 2 --json "$j-4.json" >/dev/null 2>&1
"$bin" ppl --engine emu --model "$flxq" --file "$text" --hmt "$hmt" --hmt-segments 16 --hmt-eval contexts --chunks 1 --threads 2 \
  --json "$j-16.json" >/dev/null 2>&1
python3 - "$j-plain.json" "$j-4.json" "$j-16.json" <<'PY'
import json, sys
p, h4, h16 = (json.load(open(f)) for f in sys.argv[1:])
gib = 1 << 30
print(f"plain  tok_s={p['tokens_per_second']:.2f} peak_rss_gib={p['peak_rss_bytes']/gib:.2f} ppl={p['ppl']:.1f}")
for n, h in (("hmt4", h4), ("hmt16", h16)):
    print(f"{n}  ctx_tok_s={h['context_tokens_per_second']:.2f} rows={h['backbone_rows']} "
          f"rows_s={h['backbone_rows_per_second']:.2f} peak_rss_gib={h['peak_rss_bytes']/gib:.2f} "
          f"ppl={h['ppl']:.1f} baseline_ppl={h['baseline_ppl']} device_s={h['device_seconds']:.3f}")
print(f"hmt_rows_vs_plain={h16['backbone_rows_per_second']/p['tokens_per_second']:.3f} "
      f"hmt_ctx_vs_plain={h16['context_tokens_per_second']/p['tokens_per_second']:.3f} "
      f"rss_16_vs_4={h16['peak_rss_bytes']/h4['peak_rss_bytes']:.3f}")
PY
