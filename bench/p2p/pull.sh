#!/usr/bin/env bash
# One pull for bench/p2p/run.sh, run inside a host's namespace: wait until the common start time, GET the blob,
# write "rc start_us end_us http_code bytes sha256" to OUT.
# Usage: pull.sh START_US URL OUT VERIFY(0|1) MAX_SECONDS
start_at=$1 url=$2 out=$3 verify=$4 max=$5
now=${EPOCHREALTIME/./}
d=$((start_at - now))
[ "$d" -gt 0 ] && sleep "$((d / 1000000)).$(printf '%06d' $((d % 1000000)))"
t0=${EPOCHREALTIME/./}
sum=-
if [ "$verify" = 1 ]; then
  set -o pipefail
  # openssl's sha256 uses the CPU's SHA extensions: a quarter of sha256sum's CPU, which 32 pulls at once feel
  if command -v openssl >/dev/null; then hash=(openssl dgst -sha256 -r); else hash=(sha256sum); fi
  sum=$(curl -sS -f --max-time "$max" -w '%{stderr}\n%{http_code} %{size_download}\n' "$url" 2>"$out.curl" | "${hash[@]}" | cut -d' ' -f1)
  rc=$?
else
  curl -sS -f --max-time "$max" -o /dev/null -w '\n%{http_code} %{size_download}\n' "$url" >"$out.curl" 2>&1
  rc=$?
fi
t1=${EPOCHREALTIME/./}
read -r code size < <(tail -1 "$out.curl")
echo "$rc $t0 $t1 ${code:-0} ${size:-0} $sum" >"$out"
