#!/usr/bin/env bash
# Proves the published package works on its own: pack it, install it with production
# dependencies only into an empty project, and run `modelgate validate` on the shipped examples.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
cd "$work"
npm init -y >/dev/null
npm install --omit=dev --no-audit --no-fund "./$tarball" >/dev/null
node_bin="$root/node_modules/.bin/node"
"$node_bin" node_modules/modelgate/dist/cli/main.js --version
"$node_bin" node_modules/modelgate/dist/cli/main.js validate -f node_modules/modelgate/examples/
PATH="$(dirname "$node_bin"):$PATH" npx --no-install modelgate validate -f node_modules/modelgate/examples/
echo "pack smoke: ok"
