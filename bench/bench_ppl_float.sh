#!/usr/bin/env bash
# Float perplexity benchmark (issue 2, item 10): `flxemu ppl` on a synthetic
# Llama-3.2-1B (random BF16 weights from `flxemu synth`, Llama-3 tokenizer),
# HF protocol, 2 windows of 2048 tokens of WikiText-2, 2 threads.
#
#   bench/bench_ppl_float.sh [FLXEMU] [CORETYPES]
#
# FLXEMU     the program (default: build/app/flxemu)
# CORETYPES  OpenBLAS kernels to measure, space-separated (default "Haswell Cooperlake");
#            "env" keeps the caller's OPENBLAS_CORETYPE.  Only this script overrides
#            it, never the tests.
# Env: BENCH_DIR (default ${TMPDIR:-/tmp}/flxemu-bench) holds the synthetic checkpoint
# (2.5 GB, written once, never inside the repository); FLXEMU_DATA as for the tests;
# BENCH_REPEAT (default 1) runs per core type, the best is reported.
#
# Prints one line per run:
#   ppl_float core=K threads=2 windows=2 ctx=2048 eval_tok_s=X e2e_tok_s=Y wall_s=W
#     peak_rss_gib=R f32_weights_gib=F rss_ratio=Q ppl=P cpu_s=C (user+sys of the process)
# and checks the targets: e2e >= 70 tokens/s, peak RSS <= 1.25 x F32 weights.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/app/flxemu}
cores=${2:-"Haswell Cooperlake"}
bench=${BENCH_DIR:-${TMPDIR:-/tmp}/flxemu-bench}
data=${FLXEMU_DATA:-$top/../shared/data}
repeat=${BENCH_REPEAT:-1}
model=$bench/llama-3.2-1b-synth
text=$data/wikitext2/wiki.test.raw
tok=$data/tiny-llama3-random/tokenizer.json   # the Llama-3.2 tokenizer (BOS post-processor)
case "$model" in "$top"/*) echo "BENCH_DIR must be outside the repository" >&2; exit 2;; esac
[ -x "$bin" ] || { echo "no program at $bin (build first)" >&2; exit 2; }
[ -f "$text" ] || { echo "missing $text (see data/wikitext2/README.md)" >&2; exit 2; }
if [ ! -f "$model/model.safetensors" ]; then
  mkdir -p "$bench"
  echo "writing the synthetic Llama-3.2-1B to $model (once)" >&2
  "$bin" synth --shape llama-3.2-1b --dtype bf16 --seed 1 --tokenizer "$tok" --out "$model" --force >&2
fi
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for core in $cores; do
  best=""
  for r in $(seq 1 "$repeat"); do
    json=$bench/ppl-$core-$r.json
    rm -f "$json"
    t0=$(date +%s.%N)
    if [ "$core" = env ]; then
      "$bin" ppl --model "$model" --file "$text" --chunks 2 --ctx 2048 --threads 2 --no-progress \
        --json "$json" > "$bench/ppl-$core-$r.out" 2> "$bench/ppl-$core-$r.err"
    else
      OPENBLAS_CORETYPE=$core "$bin" ppl --model "$model" --file "$text" --chunks 2 --ctx 2048 \
        --threads 2 --no-progress --json "$json" > "$bench/ppl-$core-$r.out" 2> "$bench/ppl-$core-$r.err"
    fi
    t1=$(date +%s.%N)
    line=$(python3 - "$json" "$t0" "$t1" "$core" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
n = j["windows"] * j["ctx"]
gib = 1024 ** 3
k = j["seconds_by_kind"]
print(f"ppl_float core={sys.argv[4]} threads={j['threads']} windows={j['windows']} ctx={j['ctx']} "
      f"eval_tok_s={j['tokens_per_second']:.1f} e2e_tok_s={n / wall:.1f} wall_s={wall:.1f} "
      f"peak_rss_gib={j['peak_rss_bytes'] / gib:.2f} f32_weights_gib={j['weight_bytes_f32'] / gib:.2f} "
      f"rss_ratio={j['peak_rss_bytes'] / j['weight_bytes_f32']:.3f} ppl={j['ppl']:.1f} "
      f"cpu_s={j['process_cpu_user_seconds'] + j['process_cpu_sys_seconds']:.1f} "
      f"load_s={j['seconds_load']:.1f} tokenize_s={j['seconds_tokenize']:.1f} eval_s={j['seconds']:.1f} [proj {k['projections']:.1f} attn {k['attention']:.1f} "
      f"elem {k['elementwise']:.1f} head {k['head']:.1f} score {k['scoring']:.1f}]")
PY
)
    echo "$line"
    e2e=$(echo "$line" | sed 's/.*e2e_tok_s=\([0-9.]*\).*/\1/')
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $e2e > $best else 1)"; then best=$e2e; bestline=$line; fi
  done
  ratio=$(echo "$bestline" | sed 's/.*rss_ratio=\([0-9.]*\).*/\1/')
  verdict=$(python3 -c "print('PASS' if $best >= 70 and $ratio <= 1.25 else 'BELOW TARGET')")
  echo "best core=$core e2e_tok_s=$best rss_ratio=$ratio -> $verdict (targets: >= 70 tokens/s, <= 1.25)"
  [ "$verdict" = PASS ] || status=1
done
exit $status
