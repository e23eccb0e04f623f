#!/usr/bin/env bash
# The test suite: install what is missing, build with -Werror, run every
# Criterion suite, and end with one line "N passed, N failed".
# Test data comes from $FLXEMU_DATA (default: ../shared/data beside the checkout),
# AMD's ap_int headers from $FLXEMU_VENDOR/xilinx-ap_int (default: vendor/ beside the data).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" --tests
build="$top/build-test"
data="${FLXEMU_DATA:-$top/../shared/data}"
vendor="${FLXEMU_VENDOR:-}"      # AMD ap_int headers' parent; default beside the data
if [ -f "$build/build.ninja" ]; then
  meson configure "$build" -Ddata_dir="$data" -Dvendor_dir="$vendor" >/dev/null
else
  meson setup "$build" "$top" --buildtype=release -Dwerror=true -Dtests=enabled \
    -Ddata_dir="$data" -Dvendor_dir="$vendor" >/dev/null
fi
ninja -C "$build"
rc=0
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || rc=$?
python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, re, sys
passed = failed = 0
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
