#!/usr/bin/env bash
# Downloads the WikiText-2 (raw) test split and checks it.
#   data/wikitext2/fetch.sh [DIR]     writes DIR/wiki.test.raw (default: this folder)
# License of the data: CC BY-SA 3.0 (see README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here}
want=173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08
want_zip=ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11
urls=(
  "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip"
  "https://huggingface.co/datasets/ggml-org/ci/resolve/main/wikitext-2-raw-v1.zip"
)
if [ -f "$dest/wiki.test.raw" ] && [ "$(sha256sum "$dest/wiki.test.raw" | cut -d' ' -f1)" = "$want" ]; then
  echo "$dest/wiki.test.raw is already there and correct"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
got=""
for u in "${urls[@]}"; do
  echo "fetching $u" >&2
  if command -v curl >/dev/null; then
    curl -fsSL --retry 2 -o "$tmp/w.zip" "$u" || continue
  else
    wget -q -O "$tmp/w.zip" "$u" || continue
  fi
  if [ "$(sha256sum "$tmp/w.zip" | cut -d' ' -f1)" != "$want_zip" ]; then
    echo "  zip digest differs from $want_zip; checking the member anyway" >&2
  fi
  got=$u
  break
done
[ -n "$got" ] || { echo "could not download wikitext-2-raw-v1.zip from any known URL" >&2; exit 1; }
if command -v unzip >/dev/null; then
  unzip -p "$tmp/w.zip" wikitext-2-raw/wiki.test.raw > "$tmp/wiki.test.raw"
else
  python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("wikitext-2-raw/wiki.test.raw"))' \
    "$tmp/w.zip" > "$tmp/wiki.test.raw"
fi
have=$(sha256sum "$tmp/wiki.test.raw" | cut -d' ' -f1)
if [ "$have" != "$want" ]; then
  echo "wiki.test.raw from $got has sha256 $have, expected $want; not installed" >&2
  exit 1
fi
mkdir -p "$dest"
mv "$tmp/wiki.test.raw" "$dest/wiki.test.raw"
echo "wrote $dest/wiki.test.raw (sha256 $want)"
