#!/usr/bin/env bash
# ThreadSanitizer run of the threaded paths: builds flxemu with
# -fsanitize=thread in build-tsan and runs every command that uses the
# thread pool, with 2 threads, on the small test models; a data race (or any
# TSan report) stops the run with exit status 66.  The Criterion suites are
# not run under TSan: Criterion 2.4's runner cannot start there ("Could not
# initialize inheritable arena"); scripts/test.sh covers them with ASan+UBSan.
# Usage: scripts/tsan.sh   (test data from $FLXEMU_DATA, default ../shared/data)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
data="${FLXEMU_DATA:-$top/../shared/data}"
build="$top/build-tsan"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$top" --buildtype=debugoptimized -Db_sanitize=thread -Dtests=disabled \
    >/dev/null
fi
ninja -C "$build" app/flxemu >/dev/null
bin="$build/app/flxemu"
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 ${TSAN_OPTIONS:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
run() {
  n=$((n + 1))
  local t0=$SECONDS
  if ! "$bin" "$@" >"$tmp/out" 2>"$tmp/err"; then
    echo "FAILED: flxemu $*" >&2
    cat "$tmp/err" >&2
    exit 1
  fi
  echo "ok $n - flxemu $* ($((SECONDS - t0)) s)"
}
model="$data/tiny-llama3-random"
head -c 200000 "$data/tinystories/tinystories_val_first_stories.txt" >"$tmp/calib.txt"
run ppl --threads 2
run ppl --model "$model" --threads 2 --ctx 128 --chunks 4
run ppl --model "$model.gguf" --protocol llamacpp --threads 2 --ctx 128 --chunks 2
run generate --model "$model" --prompt "Once upon a time" -n 16 --threads 2
run info --model "$model.gguf" --threads 2
run synth --shape tiny --out "$tmp/synth" --threads 2
run quantize --model "$model" --recipe flexllm --calib "$tmp/calib.txt" --nsamples 4 --seqlen 64 \
  --threads 2 --out "$tmp/m.flxq"
run quantize --model "$model" --recipe flexllm --gptq --calib "$tmp/calib.txt" --nsamples 4 \
  --seqlen 64 --threads 2 --out "$tmp/g.flxq"
run ppl --model "$tmp/m.flxq" --threads 2 --ctx 64 --chunks 2
run ppl --engine emu --model "$tmp/m.flxq" --threads 2 --ctx 64 --chunks 2
run generate --engine emu --model "$tmp/g.flxq" --prompt "Hello" -n 8 --threads 2
run golden --kernel all --out "$tmp/golden"
run golden --check "$tmp/golden"
run dse --device u280
echo "$n commands, no ThreadSanitizer report"
