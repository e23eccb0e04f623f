#!/usr/bin/env bash
# flxemu under Open MPI: `mpirun -n N flxemu ppl ...` on this machine gives
# what one process gives -- the same stdout, the same --json apart from
# timing and resource fields, a byte-identical --save-logits file -- for the
# hf and llama.cpp protocols, --kl-base, a fake-quant .flxq, the bit-exact
# engine (--engine emu) on a flexllm .flxq, more ranks than
# cores and a rank count that does not divide the windows; a failing job
# exits non-zero; `flxemu golden --seeds` shared among ranks writes the
# tree one process writes; `flxemu dse` shared among ranks prints and writes
# (--json, --svg) what one process does.  Uses $FLXEMU_BIN and $FLXEMU_DATA (fails when missing).
# Prints TAP.
set -u
bin=${FLXEMU_BIN:?FLXEMU_BIN is not set}
data=${FLXEMU_DATA:?FLXEMU_DATA is not set}
gguf="$data/stories260K/stories260K.gguf"
src="$data/tinystories/tinystories_val_first_stories.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
text="$tmp/text.txt"   # the first 24 kB: thousands of tokens, quick to tokenize
mpirun=(mpirun --oversubscribe --allow-run-as-root)
# In the ASan build, Open MPI's own allocations (libmpi, its dlopened plugins)
# are still live at exit and LeakSanitizer reports them; leak checking stays
# on for everything the suite runs without MPI, and ASan/UBSan stay on here.
if [ -n "${ASAN_OPTIONS:-}" ]; then
  mpirun+=(-x "ASAN_OPTIONS=${ASAN_OPTIONS//detect_leaks=1/detect_leaks=0}:detect_leaks=0")
fi
echo "1..10"
n=0
fail() { echo "not ok $n - $1"; shift; for f in "$@"; do [ -f "$f" ] && sed 's/^/# /' "$f"; done; }
for f in "$gguf" "$src"; do
  [ -f "$f" ] || { echo "not ok 1 - test data missing: $f"; exit 1; }
done
head -c 24000 "$src" >"$text"
command -v mpirun >/dev/null || { echo "not ok 1 - mpirun not found (scripts/deps.sh --tests installs openmpi-bin)"; exit 1; }

# JSON without the fields that measure this run rather than compute it
strip_json() {
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("seconds", "tokens_per_second", "seconds_load", "seconds_tokenize", "seconds_by_kind",
          "peak_rss_bytes", "process_cpu_user_seconds", "process_cpu_sys_seconds"):
    d.pop(k, None)
print(json.dumps(d, sort_keys=True, indent=1))
PY
}

# same(tag, ranks, args...): one process vs `mpirun -n ranks`, stdout + JSON (+ logits when saved)
same() {
  local tag=$1 ranks=$2; shift 2
  local save1=() saveN=()
  if [ "${SAVE:-0}" = 1 ]; then save1=(--save-logits "$tmp/$tag.1.kl"); saveN=(--save-logits "$tmp/$tag.N.kl"); fi
  "$bin" ppl "$@" --json "$tmp/$tag.1.json" "${save1[@]}" >"$tmp/$tag.1.out" 2>"$tmp/$tag.1.err" || {
    fail "$tag: one process failed" "$tmp/$tag.1.err"; return; }
  "${mpirun[@]}" -n "$ranks" "$bin" ppl "$@" --json "$tmp/$tag.N.json" "${saveN[@]}" \
    >"$tmp/$tag.N.out" 2>"$tmp/$tag.N.err" || { fail "$tag: $ranks ranks failed" "$tmp/$tag.N.err"; return; }
  if ! cmp -s "$tmp/$tag.1.out" "$tmp/$tag.N.out"; then
    diff "$tmp/$tag.1.out" "$tmp/$tag.N.out" >"$tmp/$tag.diff"; fail "$tag: stdout differs" "$tmp/$tag.diff"; return
  fi
  strip_json "$tmp/$tag.1.json" >"$tmp/$tag.1.sj"; strip_json "$tmp/$tag.N.json" >"$tmp/$tag.N.sj"
  if ! cmp -s "$tmp/$tag.1.sj" "$tmp/$tag.N.sj"; then
    diff "$tmp/$tag.1.sj" "$tmp/$tag.N.sj" >"$tmp/$tag.diff"; fail "$tag: JSON differs" "$tmp/$tag.diff"; return
  fi
  grep -q '"ppl": [0-9]' "$tmp/$tag.N.json" || { fail "$tag: no ppl in the JSON" "$tmp/$tag.N.json"; return; }
  if [ "${SAVE:-0}" = 1 ]; then
    cmp -s "$tmp/$tag.1.kl" "$tmp/$tag.N.kl" || { fail "$tag: --save-logits files differ"; return; }
    ls "$tmp/$tag.N.kl".rank* >/dev/null 2>&1 && { fail "$tag: rank parts left behind"; return; }
  fi
  echo "ok $n - $tag: $ranks ranks = one process"
}

n=1; SAVE=1 same hf 2 --model "$gguf" --file "$text" --ctx 64 --chunks 7 --threads 1
n=2; SAVE=1 same hf-uneven 3 --model "$gguf" --file "$text" --ctx 48 --chunks 5 --threads 2
n=3; SAVE=0 same kl-base 2 --model "$gguf" --kl-base "$tmp/hf.1.kl" --bf16-activations --threads 1
n=4; SAVE=0 same llamacpp 2 --model "$gguf" --file "$text" --protocol llamacpp --ctx 64 --chunks 5 --threads 1
n=5
if "$bin" quantize --model "$gguf" --recipe w4a8 --out "$tmp/q.flxq" >"$tmp/q.log" 2>&1; then
  SAVE=1 same fake-quant 2 --model "$tmp/q.flxq" --tokenizer "$gguf" --file "$text" --ctx 64 --chunks 4 --threads 1
else
  fail "quantize for the fake-quant case failed" "$tmp/q.log"
fi
n=6
grep -q '"fake_quant": true' "$tmp/fake-quant.N.json" 2>/dev/null && echo "ok 6 - the fake-quant run used the .flxq" \
  || fail "the fake-quant run did not use the .flxq" "$tmp/fake-quant.N.json"
n=7
if "${mpirun[@]}" -n 2 "$bin" ppl --model "$gguf" --file "$text" --ctx 64 --chunks 3 --threads 1 \
     --save-logits "$tmp/no/such/dir/x.kl" >"$tmp/bad.out" 2>"$tmp/bad.err"; then
  fail "a job whose ranks cannot write their output exited 0" "$tmp/bad.err"
elif grep -q "cannot create" "$tmp/bad.err"; then
  echo "ok 7 - a failing job exits non-zero with the rank's message"
else
  fail "failing job: no message" "$tmp/bad.err"
fi
n=8
if "$bin" golden --kernel softmax_dec --seed 3 --seeds 5 --out "$tmp/g1" >"$tmp/g1.log" 2>&1 &&
   "${mpirun[@]}" -n 2 "$bin" golden --kernel softmax_dec --seed 3 --seeds 5 --out "$tmp/g2" >"$tmp/g2.log" 2>&1; then
  if diff -r "$tmp/g1" "$tmp/g2" >"$tmp/g.diff" && [ -f "$tmp/g2/seed-7/manifest.json" ] &&
     "$bin" golden --check "$tmp/g2/seed-4" >>"$tmp/g2.log" 2>&1; then
    echo "ok 8 - golden --seeds 5 on 2 ranks = one process"
  else
    fail "golden trees differ or do not check" "$tmp/g.diff" "$tmp/g2.log"
  fi
else
  fail "golden --seeds failed" "$tmp/g1.log" "$tmp/g2.log"
fi
n=9
tiny="$data/tiny-llama3-random"
if "$bin" quantize --model "$tiny" --recipe flexllm --calib "$text" --nsamples 2 --seqlen 64 \
     --out "$tmp/f.flxq" >"$tmp/f.log" 2>&1; then
  SAVE=0 same emu-engine 2 --engine emu --model "$tmp/f.flxq" --file "$text" --ctx 64 --chunks 5 --threads 1
else
  fail "quantize --recipe flexllm for the engine case failed" "$tmp/f.log"
fi
n=10
# dse: 3 ranks (the 299 sweep tasks do not divide evenly) against one process
if "$bin" dse u280 --prefill 256 --decode 32 --json "$tmp/d1.json" --svg "$tmp/d1.svg" >"$tmp/d1.out" 2>"$tmp/d1.err" &&
   "${mpirun[@]}" -n 3 "$bin" dse u280 --prefill 256 --decode 32 --json "$tmp/d3.json" --svg "$tmp/d3.svg" \
     >"$tmp/d3.out" 2>"$tmp/d3.err"; then
  if cmp -s "$tmp/d1.out" "$tmp/d3.out" && cmp -s "$tmp/d1.json" "$tmp/d3.json" && cmp -s "$tmp/d1.svg" "$tmp/d3.svg" &&
     grep -q '"pareto"' "$tmp/d3.json" && grep -q "feasible designs" "$tmp/d3.out"; then
    echo "ok 10 - dse on 3 ranks = one process (stdout, --json, --svg)"
  else
    diff "$tmp/d1.out" "$tmp/d3.out" >"$tmp/d.diff"; diff "$tmp/d1.json" "$tmp/d3.json" >>"$tmp/d.diff"
    fail "dse: 3 ranks differ from one process" "$tmp/d.diff"
  fi
else
  fail "dse failed" "$tmp/d1.err" "$tmp/d3.err"
fi
