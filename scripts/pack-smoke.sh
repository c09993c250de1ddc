#!/usr/bin/env bash
# Proves the published package works on its own: pack it, install it with production
# dependencies only into an empty project, and run `modelgate validate` on the shipped examples.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"
# npm and the installed binary run on the project's Node 24.
export PATH="$root/node_modules/.bin:$PATH"
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
cd "$work"
npm init -y >/dev/null
npm install --omit=dev --no-audit --no-fund "./$tarball" >/dev/null
node node_modules/modelgate/dist/cli/main.js --version
npx --no-install modelgate validate -f node_modules/modelgate/examples/
npx --no-install modelgate compile -f node_modules/modelgate/examples/quickstart/ >/dev/null
echo "pack smoke: ok"
