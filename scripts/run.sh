#!/usr/bin/env bash
# The main job: install what is missing, build, then run 'flxemu ppl'.
#   scripts/run.sh                      embedded default (synthetic model, built-in text)
#   scripts/run.sh --model DIR|FILE ... a real model; any 'flxemu ppl' option works
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
build="$top/build"
[ -f "$build/build.ninja" ] || meson setup "$build" "$top" --buildtype=release >&2
# Only the program: the test suite and benchmarks are scripts/test.sh's job.
ninja -C "$build" app/flxemu >&2
exec "$build/app/flxemu" ppl "$@"
