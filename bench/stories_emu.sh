#!/usr/bin/env bash
# stories260K through fake quantization and the bit-exact FlexLLM engine.
#   bench/stories_emu.sh BUILD/app/flxemu [DATA_DIR] [WINDOWS]
# Evaluation text: the first 60% of TinyStories' bytes (cut at a newline),
# WINDOWS (default 100) windows of 256 tokens, HF protocol, no BOS;
# calibration (static scales, GPTQ): the remaining 40%, 32 windows of 256.
# Model: the Hugging Face checkpoint (split-half RoPE, as the engine's
# kernel), tokenizer from the GGUF.  Prints one Markdown table: PPL, and KLD /
# same-top against the float model and between fake-quant and bit-exact.
set -euo pipefail
bin=$(realpath "$1")
data=$(realpath "${2:-$(dirname "$0")/../../shared/data}")
windows=${3:-100}
tmp=$(mktemp -d /tmp/stories_emu.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
text="$data/tinystories/tinystories_val_first_stories.txt"
python3 - "$text" "$tmp" <<'PY'
import sys
t = open(sys.argv[1], 'rb').read()
cut = len(t) * 6 // 10
while cut < len(t) and t[cut:cut + 1] != b'\n':
    cut += 1
open(sys.argv[2] + '/eval.txt', 'wb').write(t[:cut])
open(sys.argv[2] + '/calib.txt', 'wb').write(t[cut:])
PY
model="$data/stories260K/hf"
tok="$data/stories260K/stories260K.gguf"
ev=(--tokenizer "$tok" --ctx 256 --chunks "$windows" --threads 2 --no-progress)
evf=("${ev[@]}" --file "$tmp/eval.txt")
ppl_of() { grep -o 'PPL = [0-9.]*' | head -1 | cut -d' ' -f3; }
kld_of() { awk '/Mean    KLD:/ {k=$3} /Same top p:/ {s=$4} END {printf "%s | %s%%", k, s}'; }
base=$("$bin" ppl --model "$model" "${evf[@]}" --save-logits "$tmp/base.kld" 2>/dev/null | ppl_of)
echo "float model: PPL $base ($windows x 256 tokens)"
echo
echo "| flexllm | fake-quant PPL | bit-exact PPL | KLD fq vs float | same-top fq | KLD emu vs float | same-top emu | KLD emu vs fq | same-top emu vs fq |"
echo "|---|---|---|---|---|---|---|---|---|"
for rot in none hadamard; do
  for w in rtn gptq; do
    f="$tmp/q.flxq"
    g=(); [ "$w" = gptq ] && g=(--gptq)
    "$bin" quantize --model "$model" --tokenizer "$tok" --recipe flexllm --rotate "$rot" --seed 0 \
      --calib "$tmp/calib.txt" --nsamples 32 --seqlen 256 --threads 2 --no-progress "${g[@]}" \
      --out "$f" 2>/dev/null
    fq=$("$bin" ppl --model "$f" "${ev[@]}" --kl-base "$tmp/base.kld" 2>/dev/null)
    "$bin" ppl --model "$f" "${evf[@]}" --save-logits "$tmp/fq.kld" >/dev/null 2>&1
    em=$("$bin" ppl --model "$f" --engine emu "${ev[@]}" --kl-base "$tmp/base.kld" 2>/dev/null)
    ef=$("$bin" ppl --model "$f" --engine emu "${ev[@]}" --kl-base "$tmp/fq.kld" 2>/dev/null)
    echo "| $rot, $w | $(echo "$fq" | ppl_of) | $(echo "$em" | ppl_of) | $(echo "$fq" | kld_of) | $(echo "$em" | kld_of) | $(echo "$ef" | kld_of) |"
  done
done
