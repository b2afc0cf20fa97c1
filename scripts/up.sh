#!/usr/bin/env bash
# Sets everything up on a fresh machine, then starts the all-in-one (`sampan up`) in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPAN_SETUP_PEERS=0 bash scripts/setup.sh
exec bin/sampan up "$@"
