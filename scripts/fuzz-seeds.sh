#!/usr/bin/env bash
# Seed corpora for the fuzz targets in tests/fuzz, made from tiny inputs the
# program writes itself (flxemu synth / quantize / golden / ppl / tokenize):
# nothing large is kept in git.  Multi-file seeds (HF folder, golden set) are
# joined with the separator line the targets split at (tests/fuzz/fuzz_util.h).
# Usage: scripts/fuzz-seeds.sh FLXEMU OUT_DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
flx=$1
out=$2
export ASAN_OPTIONS=detect_leaks=0   # FLXEMU may be the sanitized fuzz build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets="gguf hf safetensors tokenizer_json flxq golden tokens kld perf_config text"
rm -rf "$out"
for t in $targets; do mkdir -p "$out/$t"; done
sep=$'\n--flxfuzz-file--\n'
# join OUT FILE...: the files with the separator between them
join() {
  local o=$1 first=1; shift
  { for f in "$@"; do [ $first = 1 ] || printf '%s' "$sep"; cat "$f"; first=0; done; } > "$o"
}

q() { "$flx" "$@" >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }; }
q synth --shape tiny --out "$work/bf16"
q synth --shape tiny --dtype f32 --seed 2 --out "$work/f32"

# HF folders: config.json, model.safetensors, tokenizer.json, index.json
python3 - "$work/bf16/model.safetensors" > "$work/index.json" <<'PY'
import json, struct, sys
d = open(sys.argv[1], 'rb').read(8)
n = struct.unpack('<Q', d)[0]
head = json.loads(open(sys.argv[1], 'rb').read(8 + n)[8:])
print(json.dumps({"metadata": {}, "weight_map": {k: "model.safetensors" for k in head if k != "__metadata__"}}))
PY
join "$out/hf/bf16" "$work/bf16/config.json" "$work/bf16/model.safetensors" "$work/bf16/tokenizer.json"
join "$out/hf/f32_no_tokenizer" "$work/f32/config.json" "$work/f32/model.safetensors"
: > "$work/empty"
join "$out/hf/index" "$work/bf16/config.json" "$work/bf16/model.safetensors" "$work/empty" "$work/index.json"

# GGUF: the tiny model in five tensor types, and an SPM tokenizer
python3 "$top/tests/fuzz/make_gguf.py" model "$work/bf16" "$out/gguf/tiny.gguf"
python3 "$top/tests/fuzz/make_gguf.py" spm "$out/gguf/spm.gguf"

# .flxq (also safetensors)
q quantize --model "$work/bf16" --recipe w4a16 --out "$out/flxq/w4a16.flxq"
q quantize --model "$work/bf16" --recipe w8a8 --out "$out/flxq/w8a8.flxq"
q quantize --model "$work/f32" --recipe w4a4kv4-spinquant --rotate hadamard --out "$out/flxq/spinquant.flxq"

# a rotation seed of 1e300 (an undefined cast before it was checked; now refused)
python3 - "$out/flxq/w4a16.flxq" "$out/flxq/seed_1e300.flxq" <<'PY'
import json, struct, sys
d = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', d[:8])[0]
h = json.loads(d[8:8 + n])
rot = json.loads(h["__metadata__"]["rotation"])
rot["seed"] = 1e300
h["__metadata__"]["rotation"] = json.dumps(rot)
j = json.dumps(h).encode()
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(j)) + j + d[8 + n:])
PY

cp "$work/bf16/model.safetensors" "$out/safetensors/bf16.safetensors"
cp "$work/f32/model.safetensors" "$out/safetensors/f32.safetensors"
cp "$out/flxq/w4a16.flxq" "$out/safetensors/w4a16.flxq"

# tokenizer.json: the byte-level one synth writes, and one with merges,
# added tokens (special and not) and a post-processor
cp "$work/bf16/tokenizer.json" "$out/tokenizer_json/bytes.json"
python3 - "$work/bf16/tokenizer.json" > "$out/tokenizer_json/merges.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
v = t["model"]["vocab"]
merges = [["t", "h"], ["th", "e"], ["Ġ", "the"], ["i", "n"], ["in", "g"], ["e", "r"]]
for a, b in merges:
    v.setdefault(a + b, len(v))
t["model"]["merges"] = [" ".join(m) if i % 2 else m for i, m in enumerate(merges)]
t["model"]["ignore_merges"] = True
n = max(v.values()) + 1
t["added_tokens"] = [
    {"id": n, "content": "<|begin_of_text|>", "special": True, "single_word": False,
     "lstrip": False, "rstrip": False, "normalized": False},
    {"id": n + 1, "content": "<|end_of_text|>", "special": True, "single_word": False,
     "lstrip": False, "rstrip": False, "normalized": False},
    {"id": n + 2, "content": "<user>", "special": False, "single_word": False,
     "lstrip": False, "rstrip": False, "normalized": False}]
t["post_processor"]["single"][0]["SpecialToken"]["id"] = "<|begin_of_text|>"
print(json.dumps(t, ensure_ascii=False))
PY

# golden sets: a flag byte (1: the target fixes the CRCs), the manifest,
# then the kernel's files in manifest order
golden() {   # golden SEED_NAME KERNEL [--gzip]
  local name=$1 k=$2; shift 2
  q golden --kernel "$k" --out "$work/g_$name" "$@"
  local files
  files=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]));
print("\n".join(sys.argv[2]+"/"+m["kernels"][0]["kernel"]+"/"+f["file"] for f in m["kernels"][0]["files"]))' \
          "$work/g_$name/manifest.json" "$work/g_$name")
  printf '\001' > "$work/flag1"; printf '\000' > "$work/flag0"
  # shellcheck disable=SC2086
  join "$work/body" "$work/g_$name/manifest.json" $files
  cat "$work/flag0" "$work/body" > "$out/golden/$name"
  cat "$work/flag1" "$work/body" > "$out/golden/${name}_fixcrc"
}
golden softmax_dec softmax_dec
golden quant_asym_dec quant_asym_dec
golden residual_dec residual_dec
golden exp_gz exp --gzip
golden rope_ftz rope_pref --ftz --exp flx

# token files: the first byte picks the vocabulary (1: 258 ids)
printf 'The quick brown fox jumps over the lazy dog.\nIt was 2026.\n' > "$work/text.txt"
"$flx" tokenize --model "$work/bf16" --file "$work/text.txt" > "$work/ids" 2>/dev/null
{ printf '\001'; cat "$work/ids"; } > "$out/tokens/ids"
{ printf '\002'; printf ' 12\r\n\n\t7 \n128000\n'; } > "$out/tokens/spaces"

# .kld bases of the built-in tiny model on a short text, both protocols
q ppl --model "$work/bf16" --file "$work/text.txt" --ctx 8 --save-logits "$out/kld/hf.kld"
q ppl --model "$work/bf16" --file "$work/text.txt" --ctx 8 --protocol llamacpp --save-logits "$out/kld/llamacpp.kld"

cp "$top"/perf/configs/*.json "$out/perf_config/"
# bandwidths that made the modelled times infinite or NaN before they were bounded
sed 's/"hbm_efficiency": [0-9.]*/"hbm_efficiency": 1e-300/' "$top/perf/configs/u280.json" \
  > "$out/perf_config/tiny_efficiency.json"
sed 's/"hbm_port_gbps": [0-9.]*/"hbm_port_gbps": 1e-310/' "$top/perf/configs/u280.json" \
  > "$out/perf_config/subnormal_bandwidth.json"

# text: first byte = tokenizer (bits 0-1), parse_special (bit 2), add_bos (bit 3)
printf '\000Hello world, it'"'"'s 2026!\n\n  the and' > "$out/text/bpe"
printf '\005<|begin_of_text|>the<|fuzz|> \303\251t\303\251 \360\237\230\200' > "$out/text/special"
printf '\011caf\303\251 \377\376 \342\226\201 the' > "$out/text/gpt2_bos"
printf '\016 the  and\tthe ing <user>' > "$out/text/spm"
n=$(find "$out" -type f | wc -l)
echo "fuzz seeds: $n files in $out ($(du -sh "$out" | cut -f1))" >&2
