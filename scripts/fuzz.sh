#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan+UBSan, meson
# -Dfuzz=true in build-fuzz/), makes their seed corpora (scripts/fuzz-seeds.sh)
# and runs each target for SECONDS with its dictionary.
# Usage: scripts/fuzz.sh SECONDS [TARGET...]      (default: all ten targets)
#   FUZZ_BUILD=DIR build folder (default build-fuzz)
#   FUZZ_JOBS=2    run two targets at once (default 1; the machine has 2 cores)
#   FUZZ_OUT=DIR   corpora, crash artifacts and logs (default build-fuzz/fuzz-out);
#                  DIR/corpus/T keeps what a run found, so runs build on each other
# Prints one line per target, "fuzz T: ok|FAILED, N execs, cov N, ft N, corpus N (B bytes)",
# writes DIR/results.tap, and exits non-zero when any target found a crash, a
# leak, a timeout, an over-large allocation or a failed assertion.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
targets=${*:-gguf hf safetensors tokenizer_json flxq golden tokens kld perf_config text}
"$top/scripts/deps.sh" --fuzz
build=${FUZZ_BUILD:-$top/build-fuzz}
out=${FUZZ_OUT:-$build/fuzz-out}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" "$top" -Dfuzz=true -Dtests=disabled -Dwerror=true \
    --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$build" -j2 >/dev/null
"$top/scripts/fuzz-seeds.sh" "$build/app/flxemu" "$out/seeds"
mkdir -p "$out/artifacts" "$out/logs"

declare -A dict=([gguf]=gguf [hf]=json [safetensors]=safetensors [tokenizer_json]=json
                 [flxq]=safetensors [golden]=json [tokens]=tokens [kld]=kld
                 [perf_config]=json [text]=text)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {   # run_one TARGET: libFuzzer for $secs seconds; status in logs/T.rc
  local t=$1
  mkdir -p "$out/corpus/$t"
  local rc=0
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 \
    -dict="$top/tests/fuzz/dicts/${dict[$t]}.dict" -artifact_prefix="$out/artifacts/$t-" \
    -print_final_stats=1 "$out/corpus/$t" "$out/seeds/$t" > "$out/logs/$t.log" 2>&1 || rc=$?
  echo "$rc" > "$out/logs/$t.rc"
}

jobs=${FUZZ_JOBS:-1}
running=0
for t in $targets; do
  [ -n "${dict[$t]:-}" ] || { echo "fuzz: unknown target $t" >&2; exit 2; }
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

n=0 failed=0
: > "$out/results.tap"
for t in $targets; do
  n=$((n + 1))
  log="$out/logs/$t.log"
  rc=$(cat "$out/logs/$t.rc" 2>/dev/null || echo 99)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  units=$(find "$out/corpus/$t" -type f | wc -l)
  bytes=$(du -sb "$out/corpus/$t" | cut -f1)
  if [ "$rc" = 0 ]; then status=ok; echo "ok $n fuzz_$t" >> "$out/results.tap"
  else status=FAILED; failed=$((failed + 1)); echo "not ok $n fuzz_$t" >> "$out/results.tap"; fi
  echo "fuzz $t: $status, ${execs:-0} execs in ${secs} s, cov ${cov:-?}, ft ${ft:-?}, corpus $units ($bytes bytes)"
  if [ "$status" = FAILED ]; then
    grep -E 'ERROR|SUMMARY|runtime error|fuzz: |Test unit written' "$log" | head -8 | sed 's/^/    /'
  fi
done
echo "fuzz: $((n - failed)) passed, $failed failed (logs in $out/logs)"
[ "$failed" = 0 ]
