#!/usr/bin/env bash
# Sets everything up (packages, npm ci, build) and runs the whole test suite with node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# unit tests sit beside their modules; integration tests drive a real engine under test/
mapfile -t files < <(find dist/src dist/test -name '*.test.js' | sort)
exec node --test --test-concurrency="${SAMPAN_TEST_CONCURRENCY:-2}" --test-reporter=spec "${files[@]}"
