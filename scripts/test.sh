#!/usr/bin/env bash
# The test suite: install what is missing, build with -Werror, run every
# Criterion suite, and end with one line "N passed, N failed".
# Test data comes from $FLXEMU_DATA (default: ../shared/data beside the checkout).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" --tests
build="$top/build-test"
data="${FLXEMU_DATA:-$top/../shared/data}"
if [ -f "$build/build.ninja" ]; then
  meson configure "$build" -Ddata_dir="$data" >/dev/null
else
  meson setup "$build" "$top" --buildtype=release -Dwerror=true -Dtests=enabled \
    -Ddata_dir="$data" >/dev/null
fi
ninja -C "$build"
rc=0
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || rc=$?
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
python3 - "$build/meson-logs/testlog.json" "$fuzz_tap" <<'PY'
import json, re, sys
passed = failed = 0
for extra in sys.argv[2:]:      # TAP files of the blocks above
    text = open(extra).read()
    passed += len(re.findall(r"^ok ", text, re.M))
    failed += len(re.findall(r"^not ok ", text, re.M))
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdout") or ""
    ok = len(re.findall(r"^ok ", out, re.M))
    bad = len(re.findall(r"^not ok ", out, re.M))
    if t["result"] not in ("OK", "EXPECTEDFAIL", "SKIP") and bad == 0:
        bad = 1          # crashed or timed out before reporting
    passed += ok
    failed += bad
print(f"{passed} passed, {failed} failed")
PY
exit $rc
