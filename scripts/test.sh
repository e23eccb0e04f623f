#!/usr/bin/env bash
# The test suite: install what is missing, build with -Werror, run every
# Criterion suite twice -- in the release build and in a -O0 build with
# AddressSanitizer + UBSan (build-san) --, run every libFuzzer target for a
# short smoke time (build-fuzz), and end with one line "N passed, N failed"
# counting all three.
# Test data comes from $FLXEMU_DATA (default: ../shared/data beside the checkout),
# AMD's ap_int headers from $FLXEMU_VENDOR/xilinx-ap_int (default: vendor/ beside the data).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" --tests
build="$top/build-test"
data="${FLXEMU_DATA:-$top/../shared/data}"
vendor="${FLXEMU_VENDOR:-}"      # AMD ap_int headers' parent; default beside the data
if [ -f "$build/build.ninja" ]; then
  meson configure "$build" -Ddata_dir="$data" -Dvendor_dir="$vendor" -Dmpi=enabled >/dev/null
else
  meson setup "$build" "$top" --buildtype=release -Dwerror=true -Dtests=enabled -Dmpi=enabled \
    -Ddata_dir="$data" -Dvendor_dir="$vendor" >/dev/null
fi
# The second build: memory errors, undefined behaviour and -O0-only bugs
# (a debug build once crashed where the release build did not) fail the run.
# It runs everything but the hw/ C-simulation suites (suite csim: whole HLS
# layers at -O0 under ASan would take tens of minutes; the release build
# runs them against both ap_int header sets).
san="$top/build-san"
if [ -f "$san/build.ninja" ]; then
  meson configure "$san" -Ddata_dir="$data" >/dev/null
else
  meson setup "$san" "$top" --buildtype=debug -Dwerror=true -Dtests=enabled \
    -Db_sanitize=address,undefined -Ddata_dir="$data" >/dev/null
fi
ninja -C "$build"
ninja -C "$san"
rc=0
# FLXEMU_REF_BIN: the hard_builds suite checks each build's bits against the other's
FLXEMU_REF_BIN="$san/app/flxemu" \
  meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || rc=$?
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
FLXEMU_REF_BIN="$build/app/flxemu" \
  meson test -C "$san" --print-errorlogs --num-processes 2 --timeout-multiplier 4 --no-suite csim "$@" || rc=$?
# ---- fuzz smoke (tests/fuzz, scripts/fuzz.sh): each libFuzzer target for
# FLXEMU_FUZZ_SECONDS (default 15; 0 skips), counted as one test per target
fuzz_dir="${FUZZ_BUILD:-$top/build-fuzz}/fuzz-smoke"
fuzz_tap="$fuzz_dir/results.tap"
rm -f "$fuzz_tap"
if [ "${FLXEMU_FUZZ_SECONDS:-15}" != 0 ]; then
  FUZZ_OUT="$fuzz_dir" FUZZ_JOBS=2 \
    "$top/scripts/fuzz.sh" "${FLXEMU_FUZZ_SECONDS:-15}" || rc=1
  [ -s "$fuzz_tap" ] || { mkdir -p "$fuzz_dir"; echo "not ok 1 fuzz build" > "$fuzz_tap"; }
else
  fuzz_tap=/dev/null
fi
# ---- end fuzz smoke
python3 - "$build/meson-logs/testlog.json" "$san/meson-logs/testlog.json" "$fuzz_tap" <<'PY'
import json, re, sys
total = [0, 0]
def count_meson(log):
    passed = failed = 0
    for line in open(log):
        t = json.loads(line)
        out = t.get("stdout") or ""
        ok = len(re.findall(r"^ok ", out, re.M))
        bad = len(re.findall(r"^not ok ", out, re.M))
        if t["result"] not in ("OK", "EXPECTEDFAIL", "SKIP") and bad == 0:
            bad = 1          # crashed or timed out before reporting
        passed += ok
        failed += bad
    return passed, failed
def count_tap(path):
    text = open(path).read()
    return len(re.findall(r"^ok ", text, re.M)), len(re.findall(r"^not ok ", text, re.M))
runs = [("release", count_meson(sys.argv[1])), ("asan+ubsan -O0", count_meson(sys.argv[2])),
        ("fuzz smoke", count_tap(sys.argv[3]))]
for name, (p, f) in runs:
    print(f"{name}: {p} passed, {f} failed")
    total[0] += p
    total[1] += f
print(f"{total[0]} passed, {total[1]} failed")
PY
exit $rc
