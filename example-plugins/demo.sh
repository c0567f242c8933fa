#!/usr/bin/env bash
# The main job, end to end: build the example plugins, drop accounts and notes into ./plugins,
# migrate ./wasmig.db with `wasmig up`, then show `wasmig status`.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
(cd example-plugins && cargo build --release --locked --target wasm32-wasip2 -p accounts -p notes)
mkdir -p plugins
cp example-plugins/target/wasm32-wasip2/release/accounts.wasm \
   example-plugins/target/wasm32-wasip2/release/notes.wasm plugins/

cargo build --locked -p wasmig-cli
./target/debug/wasmig --plugins plugins --db wasmig.db up
./target/debug/wasmig --plugins plugins --db wasmig.db status
echo
echo "See it in a browser: ./target/debug/wasmig --plugins plugins --db wasmig.db serve"
