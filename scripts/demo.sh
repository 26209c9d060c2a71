#!/usr/bin/env bash
# The main job on a fresh Debian/Ubuntu machine with Go: install what is
# missing (Docker engine, debootstrap), start the engine, build isol8 and its
# runtime images (with progress), then run the data-processing examples.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
echo "==> building isol8"
go build -o bin/isol8 ./cmd/isol8
echo "==> building the runtime images (first time: a few minutes; then cached)"
./bin/isol8 setup
echo "==> stdin JSON transform (library): add total = price * quantity to each row"
go run ./examples/stdin-transform
echo "==> file-based run (library): a CSV in through files, a summary CSV back through outputPaths"
go run ./examples/file-based
echo "==> the same kind of job through the CLI"
./bin/isol8 run -e 'import json,sys; d=json.load(sys.stdin); print(len(d))' --stdin '[{"x":1},{"x":2}]'
