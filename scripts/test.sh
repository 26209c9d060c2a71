#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs and starts what the tests
# need (Docker engine, debootstrap, PostgreSQL), builds the runtime images
# (cached by content hash), then runs vet, gofmt and every test for real.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --with-postgres
ISOL8_TEST_PG=$(bash scripts/start-postgres.sh)
export ISOL8_TEST_PG

echo "==> go vet"
go vet ./...
echo "==> gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

echo "==> building isol8 and the runtime images"
go build -o bin/isol8 ./cmd/isol8
./bin/isol8 setup

echo "==> tests"
# -p 1: the suites share one Docker engine and 2 cores; running packages
# one at a time keeps timing-sensitive attacks (timeouts, OOM) honest.
go test -p 1 -timeout 30m -count=1 ./... 2>&1 | tee /tmp/isol8-test.log
echo "==> race detector on the concurrent packages"
go test -p 1 -race -timeout 20m -count=1 -run 'Limiter|Output' .
go test -p 1 -race -timeout 20m -count=1 ./server/... ./store/... ./client/... ./audit/... ./egress/... ./pool/... ./agent/... ./sandbox/...
