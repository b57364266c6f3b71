#!/usr/bin/env bash
# Generates the containerd gRPC stubs into src/dockyard/containerd/_gen/
# (untracked) from the .proto files of Debian's golang-github-containerd-containerd-dev,
# which matches the containerd daemon version installed next to it.
#
# protoc names Python modules after the proto paths (github.com.containerd...,
# gogoproto, google.rpc). Rather than putting _gen on sys.path (which would
# publish top-level `github`, `gogoproto` and `google.rpc` packages to the whole
# process), the imports between generated modules are rewritten to live under
# dockyard.containerd._gen, and every directory gets an __init__.py.
#
# Idempotent: does nothing when the stamp is newer than every input proto and
# this script. Usage: scripts/gen-stubs.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-$repo/.venv/bin/python}"
gen="$repo/src/dockyard/containerd/_gen"
stamp="$gen/.stamp"

src=/usr/share/gocode/src
gogo="$src/github.com/gogo/protobuf"
googleapis="$src/github.com/gogo/googleapis"
ctrd=github.com/containerd/containerd

cd "$src"
# Paths relative to the include root: protoc must see each file under exactly one
# name, or it reports every gogoproto option as defined twice.
protos=(
  "$ctrd"/api/services/*/v1/*.proto
  "$ctrd"/api/types/*.proto
  "$ctrd"/api/types/task/*.proto
  "$ctrd"/api/events/*.proto
  "$ctrd"/protobuf/plugin/fieldpath.proto
)
for p in "${protos[@]}"; do
  [ -f "$p" ] || { echo "gen-stubs: missing $src/$p (install golang-github-containerd-containerd-dev)" >&2; exit 1; }
done
# Resolved through their own include roots, but generated all the same because
# the containerd modules import them.
extra=(gogoproto/gogo.proto google/rpc/status.proto)
[ -f "$gogo/gogoproto/gogo.proto" ] || { echo "gen-stubs: missing gogo.proto (install golang-github-gogo-protobuf-dev)" >&2; exit 1; }
[ -f "$googleapis/google/rpc/status.proto" ] || { echo "gen-stubs: missing status.proto (install golang-github-gogo-googleapis-dev)" >&2; exit 1; }

if [ "${1:-}" != "--force" ] && [ -f "$stamp" ]; then
  newer="$(find "${protos[@]}" "$gogo/gogoproto/gogo.proto" "$googleapis/google/rpc/status.proto" \
    "$here/gen-stubs.sh" -newer "$stamp" -print -quit)"
  [ -z "$newer" ] && exit 0
fi

tmp="$(mktemp -d /tmp/dockyard-gen-stubs.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

"$python" -m grpc_tools.protoc \
  -I"$src" -I"$gogo" -I"$gogo/protobuf" -I"$googleapis" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  "${protos[@]}" "${extra[@]}" 2> "$tmp.log" || { cat "$tmp.log" >&2; rm -f "$tmp.log"; exit 1; }
# Only the "import is unused" warnings are expected; anything else is shown.
grep -v 'warning: Import .* is unused' "$tmp.log" >&2 || true
rm -f "$tmp.log"

prefix=dockyard.containerd._gen
find "$tmp" \( -name '*.py' -o -name '*.pyi' \) -exec sed -i -E \
  -e "s/^from (github\.com\.|gogoproto[ .]|google\.rpc[ .])/from $prefix.\1/" \
  -e "s/^import (github\.com\.|gogoproto|google\.rpc)/import $prefix.\1/" {} +
find "$tmp" -type d -exec touch {}/__init__.py \;
echo '"""Generated containerd gRPC stubs (scripts/gen-stubs.sh); never edit, never commit."""' > "$tmp/__init__.py"

# Swap in the new tree only once it is complete, so a failed run leaves the old one.
rm -rf "$gen.new"
cp -r "$tmp" "$gen.new"
rm -rf "$gen"
mv "$gen.new" "$gen"
touch "$stamp"
echo "gen-stubs: generated $(find "$gen" -name '*_pb2.py' | wc -l) modules into ${gen#"$repo"/}"
