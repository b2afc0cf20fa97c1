#!/usr/bin/env bash
# Registry benchmark: `sampan registry` vs Distribution (Debian's docker-registry), side by side on this machine,
# in one run, on the same data (the same image pushed to both, the same 100 MB blob uploaded to both):
#   1. push and pull of a 200 MB image with skopeo (an OCI layout built with umoci: BENCH_LAYERS (4) layers of
#      BENCH_LAYER_MB (50) MB of /dev/urandom each), BENCH_RUNS (3) rounds; every round starts both registries
#      on empty storage, so each push uploads every blob; the order alternates from round to round
#   2. on the registries of the last round (interleaved: each repetition runs sampan and Distribution once, the
#      order alternating), medians of BENCH_RUNS repetitions:
#      - manifest GET by tag, BENCH_CONNECTIONS (50) connections: wrk, `Accept: <OCI manifest>`, BENCH_DURATION s
#      - blob HEAD, the same connections, keep-alive: `ab -k -i` for BENCH_DURATION s (wrk hangs on HEAD)
#      - 100 MB blob GET, one stream: curl -o /dev/null, median MB/s of BENCH_BLOB_GETS (7) GETs each
#      - 100 MB blob GET, 4 streams at once: wrk -c4, aggregate MB/s
#      and, for each, the server's CPU time (utime+stime of its process) per request
#   3. a table with ratios sampan/Distribution and a verdict against the targets (issue 3): manifest GET req/s at
#      least 1.5 x Distribution's; 100 MB blob GET MB/s at least 0.9 x Distribution's.
#
# Usage (from the repo root; as root when packages are missing):  bash bench/registry.sh
# Env: BENCH_RUNS (3)  BENCH_DURATION (8)  BENCH_CONNECTIONS (50)  BENCH_WRK_THREADS (2)  BENCH_BLOB_GETS (7)
#      BENCH_LAYERS (4)  BENCH_LAYER_MB (50)  BENCH_BLOB_MB (100)  BENCH_STRICT=1 exits 1 when a target is missed
#      BENCH_OUT=FILE also writes the results table (markdown) to FILE;  KEEP_LOGS=DIR keeps the registries' logs
# Results and how to read them: docs/benchmarks.md. MB = 10^6 bytes. Nothing here needs the network.
# It measures the built dist/ (npm run build first after changing the sources).
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/lib.sh"
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-3}
DUR=${BENCH_DURATION:-8}
CONNS=${BENCH_CONNECTIONS:-50}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
GETS=${BENCH_BLOB_GETS:-7}
LAYERS=${BENCH_LAYERS:-4}
LAYER_MB=${BENCH_LAYER_MB:-50}
BLOB_MB=${BENCH_BLOB_MB:-100}
STRICT=${BENCH_STRICT:-0}
OUT=${BENCH_OUT:-}
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
ENGINES=(sampan dist)


# ---------- prerequisites ----------
if [ ! -f dist/src/cli/main.js ]; then log "dist/ missing: running scripts/setup.sh"; bash scripts/setup.sh || die "setup failed"; fi
need_pkgs=()
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v ab >/dev/null || need_pkgs+=(apache2-utils)
command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)
command -v skopeo >/dev/null || need_pkgs+=(skopeo)
command -v umoci >/dev/null || need_pkgs+=(umoci)
command -v curl >/dev/null || need_pkgs+=(curl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need_pkgs[*]}: install them (apt-get install ${need_pkgs[*]}) or run as root"
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null || die "apt-get install failed"
fi
# Debian's docker-registry package enables a system service on :5000; this script never uses it (own ports, own roots)

# ---------- scratch dir, processes ----------
T=$(mktemp -d /tmp/sampan-regbench.XXXXXX) || die "mktemp failed"
PIDS=()
HZ=$(getconf CLK_TCK)

stop_pid() { # SIGTERM, wait up to $2 s, then SIGKILL
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < ${2:-10} * 10; i++)); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  log "cleaning up $T"
  for p in "${PIDS[@]}"; do stop_pid "$p" 10; done
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$T" 2>/dev/null || log "could not remove $T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # utime + stime, all threads
free_port() { # a random port nothing listens on
  local p i
  for ((i = 0; i < 50; i++)); do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
wait_v2() { # $1 port: until GET /v2/ answers 200
  local i
  for ((i = 0; i < 100; i++)); do
    [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/v2/")" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}
# median (nearest lower rank for an even count: half-way) of the numbers in file $1; "-" when empty
median() { sort -g "$1" | awk '{a[NR]=$1} END{ if (NR==0) {print "-"; exit} print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2 }'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN{ if (v=="-" || v=="") print "-"; else printf f, v }'; }

declare -A PORT PID ROOTDIR   # per engine, the running instance
start_registry() { # ENGINE TAG: empty storage under $T/TAG-ENGINE, a fresh port
  local e=$1 tag=$2 root="$T/$2-$1" p
  p=$(free_port) || die "no free port"
  mkdir -p "$root"
  case $e in
    sampan)
      bin/sampan registry --root "$root" --addr "127.0.0.1:$p" --log-level error >>"$T/sampan.log" 2>&1 &
      ;;
    dist)
      # Debian's /etc/docker/registry/config.yml minus auth, with logs at error level like sampan's and the
      # access log off (it would write a line per request)
      cat >"$T/$tag-dist.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $root
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$p
EOF
      docker-registry serve "$T/$tag-dist.yml" >>"$T/dist.log" 2>&1 &
      ;;
  esac
  PID[$e]=$! PORT[$e]=$p ROOTDIR[$e]=$root
  PIDS+=($!)
  wait_v2 "$p" || { tail -20 "$T/$e.log" >&2; die "$e registry did not answer /v2/ on port $p"; }
}
stop_registry() { # stop it, forget its PID (it may be reused), drop its storage
  local pid=${PID[$1]} p keep=()
  stop_pid "$pid" 10
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
  rm -rf "${ROOTDIR[$1]}"
}
name_of() { case $1 in sampan) echo "sampan registry";; dist) echo Distribution;; esac; }
# the engines in round $1's order: sampan first in odd rounds, Distribution first in even ones
order() { if (($1 % 2)); then echo sampan dist; else echo dist sampan; fi; }

declare -A R=([sampan.errors]=0 [dist.errors]=0)   # results: R[engine.metric]

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN{exit !(l > 0.5*n)}' &&
  log "WARNING: load average $LOAD_START on $(nproc) CPUs before the start: other work on this machine will skew the figures"
log "scratch dir $T; runs=$RUNS duration=${DUR}s connections=$CONNS image=${LAYERS}x${LAYER_MB} MB blob=$BLOB_MB MB"

# ---------- the image: an OCI layout, LAYERS layers of random data ----------
log "building a $((LAYERS * LAYER_MB)) MB image ($LAYERS layers of random data) with umoci"
umoci init --layout "$T/img" || die "umoci init failed"
umoci new --image "$T/img:1" || die "umoci new failed"
for ((i = 1; i <= LAYERS; i++)); do
  mkdir -p "$T/layer/data"
  head -c $((LAYER_MB * 1000 * 1000)) /dev/urandom >"$T/layer/data/layer$i.bin"
  tar -C "$T/layer" -cf "$T/layer.tar" data || die "tar failed"
  umoci raw add-layer --image "$T/img:1" "$T/layer.tar" || die "umoci raw add-layer failed"
  rm -rf "$T/layer" "$T/layer.tar"
done
IMG_BYTES=$(find "$T/img/blobs" -type f -printf '%s\n' | awk '{s+=$1} END{print s}')
IMG_MB=$(awk -v b="$IMG_BYTES" 'BEGIN{printf "%.0f", b/1e6}')
log "image: $IMG_MB MB of blobs"

# ---------- 1. push and pull with skopeo, a fresh pair of registries per round ----------
for e in "${ENGINES[@]}"; do : >"$T/$e-push.s"; : >"$T/$e-pull.s"; done
timed() { # FILE CMD...: appends the wall time in s to FILE; returns the command's status
  local f=$1 t0 t1 rc; shift
  t0=$(now_us); "$@" >>"$T/skopeo.log" 2>&1; rc=$?; t1=$(now_us)
  [ $rc = 0 ] && awk -v d=$((t1 - t0)) 'BEGIN{printf "%.3f\n", d/1e6}' >>"$f"
  return $rc
}
for ((r = 1; r <= RUNS; r++)); do
  for e in "${ENGINES[@]}"; do start_registry "$e" "round$r"; done
  for e in $(order "$r"); do
    sync # the previous copy's files out of the way
    timed "$T/$e-push.s" skopeo copy -q --dest-tls-verify=false "oci:$T/img:1" "docker://127.0.0.1:${PORT[$e]}/bench/big:1" ||
      die "$e: skopeo push failed (see the end of $T/skopeo.log): $(tail -3 "$T/skopeo.log")"
  done
  for e in $(order $((r + 1))); do
    rm -rf "$T/pulled"; sync
    timed "$T/$e-pull.s" skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:${PORT[$e]}/bench/big:1" "oci:$T/pulled:1" ||
      die "$e: skopeo pull failed: $(tail -3 "$T/skopeo.log")"
  done
  rm -rf "$T/pulled"
  log "round $r: push sampan $(tail -1 "$T/sampan-push.s") s, Distribution $(tail -1 "$T/dist-push.s") s;" \
      "pull sampan $(tail -1 "$T/sampan-pull.s") s, Distribution $(tail -1 "$T/dist-pull.s") s"
  if ((r < RUNS)); then for e in "${ENGINES[@]}"; do stop_registry "$e"; done; fi
done
for e in "${ENGINES[@]}"; do R[$e.push]=$(median "$T/$e-push.s"); R[$e.pull]=$(median "$T/$e-pull.s"); done

# ---------- 2. load on the last round's registries ----------
head -c $((BLOB_MB * 1000 * 1000)) /dev/urandom >"$T/blob"
BLOB=sha256:$(sha256sum "$T/blob" | cut -d' ' -f1)
for e in "${ENGINES[@]}"; do
  p=${PORT[$e]}
  loc=$(curl -s -D - -o /dev/null -X POST "http://127.0.0.1:$p/v2/bench/blob/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  [ -n "$loc" ] || die "$e: no upload location"
  case $loc in http*) ;; *) loc="http://127.0.0.1:$p$loc" ;; esac
  case $loc in *\?*) loc="$loc&digest=$BLOB" ;; *) loc="$loc?digest=$BLOB" ;; esac
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$T/blob" "$loc")
  [ "$code" = 201 ] || die "$e: blob upload answered $code"
  # the same answers from both before measuring
  ct=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' -H "Accept: $OCI_MANIFEST" "http://127.0.0.1:$p/v2/bench/big/manifests/1")
  [ "$ct" = "200 $OCI_MANIFEST" ] || die "$e: manifest GET answered '$ct'"
  code=$(curl -s -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/v2/bench/blob/blobs/$BLOB")
  [ "$code" = 200 ] || die "$e: blob HEAD answered $code"
  got=$(curl -s "http://127.0.0.1:$p/v2/bench/blob/blobs/$BLOB" | sha256sum | cut -d' ' -f1)
  [ "sha256:$got" = "$BLOB" ] || die "$e: the blob GET returned other bytes"
done
rm -f "$T/blob"

# wrk's "Transfer/sec" (binary units) in MB/s
wrk_mbs() { awk '/^Transfer\/sec/{v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v)
  m = (u=="GB") ? 1073741824 : (u=="MB") ? 1048576 : (u=="KB") ? 1024 : 1; printf "%.0f\n", v*m/1e6}' "$1"; }
# one load run: KIND ENGINE ROUND; appends req/s (or MB/s) to $T/ENGINE-KIND.v, requests to .n, CPU ticks to .cpu
load_once() {
  local kind=$1 e=$2 p=${PORT[$2]} c0 c1 f="$T/$2-$1.out" n v bad
  c0=$(cpu_ticks "${PID[$e]}")
  case $kind in
    manifest)
      wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DUR}s" -H "Accept: $OCI_MANIFEST" "http://127.0.0.1:$p/v2/bench/big/manifests/1" >"$f" 2>&1
      v=$(awk '/^Requests\/sec/{print $2}' "$f"); n=$(awk '/requests in/{print $1}' "$f")
      bad=$(awk '/Non-2xx/{s+=$NF} /Socket errors/{gsub(/[^0-9 ]/, " "); for (i=1;i<=NF;i++) s+=$i} END{print s+0}' "$f") ;;
    head)
      ab -k -i -q -c "$CONNS" -t "$DUR" -n 1000000 "http://127.0.0.1:$p/v2/bench/blob/blobs/$BLOB" >"$f" 2>&1
      v=$(awk '/^Requests per second/{print $4}' "$f"); n=$(awk '/^Complete requests/{print $3}' "$f")
      bad=$(awk '/^Failed requests/{s+=$3} /^Non-2xx/{s+=$3} END{print s+0}' "$f")
      [ "$(awk '/^Keep-Alive requests/{print $3}' "$f")" = "$n" ] || log "WARNING: $e: not every HEAD reused its connection" ;;
    blob4)
      wrk -t2 -c4 -d"${DUR}s" "http://127.0.0.1:$p/v2/bench/blob/blobs/$BLOB" >"$f" 2>&1
      v=$(wrk_mbs "$f"); n=$(awk '/requests in/{print $1}' "$f")
      bad=$(awk '/Non-2xx/{s+=$NF} END{print s+0}' "$f") ;;
  esac
  c1=$(cpu_ticks "${PID[$e]}")
  [ -n "$v" ] || { cat "$f" >&2; die "$e: no result from the $kind run"; }
  echo "$v" >>"$T/$e-$kind.v"
  R[$e.$kind.n]=$((${R[$e.$kind.n]:-0} + n)); R[$e.$kind.cpu]=$((${R[$e.$kind.cpu]:-0} + c1 - c0))
  R[$e.errors]=$((${R[$e.errors]:-0} + bad))
}
phase() { # KIND LABEL
  local kind=$1 r e
  for e in "${ENGINES[@]}"; do : >"$T/$e-$kind.v"; done
  for ((r = 1; r <= RUNS; r++)); do
    for e in $(order "$r"); do load_once "$kind" "$e"; done
    log "$2, run $r: sampan $(tail -1 "$T/sampan-$kind.v"), Distribution $(tail -1 "$T/dist-$kind.v")"
  done
  for e in "${ENGINES[@]}"; do R[$e.$kind]=$(median "$T/$e-$kind.v"); done
}

log "warm-up: 2 s of manifest GETs on each"
for e in "${ENGINES[@]}"; do wrk -t1 -c"$CONNS" -d2s -H "Accept: $OCI_MANIFEST" "http://127.0.0.1:${PORT[$e]}/v2/bench/big/manifests/1" >/dev/null 2>&1; done
phase manifest "manifest GET req/s"
phase head "blob HEAD req/s"

log "100 MB blob GET, one stream: $GETS GETs each, interleaved"
for e in "${ENGINES[@]}"; do : >"$T/$e-blob.v"; R[$e.blob.cpu]=0; done
for ((i = 1; i <= GETS; i++)); do
  for e in $(order "$i"); do
    c0=$(cpu_ticks "${PID[$e]}")
    curl -s -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:${PORT[$e]}/v2/bench/blob/blobs/$BLOB" | awk '{printf "%.0f\n", $1/1e6}' >>"$T/$e-blob.v"
    c1=$(cpu_ticks "${PID[$e]}")
    R[$e.blob.cpu]=$((R[$e.blob.cpu] + c1 - c0))
  done
done
for e in "${ENGINES[@]}"; do R[$e.blob]=$(median "$T/$e-blob.v"); R[$e.blob.n]=$GETS; done
log "100 MB blob GET, one stream, MB/s: sampan $(tr '\n' ' ' <"$T/sampan-blob.v"); Distribution $(tr '\n' ' ' <"$T/dist-blob.v")"
phase blob4 "100 MB blob GET, 4 streams, MB/s"
for e in "${ENGINES[@]}"; do stop_registry "$e"; done

# server CPU per request, in µs (per GET of the blob, in ms)
for e in "${ENGINES[@]}"; do
  for k in manifest head; do R[$e.$k.us]=$(awk -v t="${R[$e.$k.cpu]}" -v n="${R[$e.$k.n]}" -v hz="$HZ" 'BEGIN{ if (n>0) printf "%.0f", t/hz*1e6/n; else print "-" }'); done
  R[$e.blob.ms]=$(awk -v t="${R[$e.blob.cpu]}" -v n="${R[$e.blob.n]}" -v hz="$HZ" 'BEGIN{ if (n>0) printf "%.0f", t/hz*1e3/n; else print "-" }')
done

row() { # LABEL KEY FORMAT
  local s d
  s=$(fmt "$(g sampan.$2)" "$3"); d=$(fmt "$(g dist.$2)" "$3")
  echo "| $1 | $s | $d | $(ratio "$(g sampan.$2)" "$(g dist.$2)") |"
}
{
  echo
  echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "Versions: sampan registry (node $(node --version)); $(docker-registry --version | awk '{print "Distribution "$3}'); $(skopeo --version); $(wrk -v 2>&1 | awk 'NR==1{print "wrk "$2}'); $(ab -V | awk 'NR==1{print "ab "$5}'); umoci $(umoci --version | awk '{print $3}')"
  echo "Load average (1/5/15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "Image: $IMG_MB MB of blobs ($LAYERS gzip layers of $LAYER_MB MB of random data); medians of $RUNS runs ($GETS GETs for the single stream), ${DUR} s per load run"
  echo
  echo "| metric | sampan registry | Distribution | sampan/Distribution |"
  echo "|---|---:|---:|---:|"
  row "manifest GET by tag, $CONNS connections (req/s)" manifest "%.0f"
  row "manifest GET: server CPU per request (µs)" manifest.us "%s"
  row "blob HEAD, $CONNS connections (req/s)" head "%.0f"
  row "blob HEAD: server CPU per request (µs)" head.us "%s"
  row "$BLOB_MB MB blob GET, one stream (MB/s)" blob "%.0f"
  row "$BLOB_MB MB blob GET: server CPU per GET (ms)" blob.ms "%s"
  row "$BLOB_MB MB blob GET, 4 streams at once (MB/s, total)" blob4 "%.0f"
  row "$IMG_MB MB image push, skopeo (s)" push "%.2f"
  row "$IMG_MB MB image pull, skopeo (s)" pull "%.2f"
  echo "| errors (non-2xx, failed requests) | $(g sampan.errors) | $(g dist.errors) | |"
} | tee "$T/table.md"
[ -n "$OUT" ] && cp "$T/table.md" "$OUT"

man_ok=$(awk -v s="$(g sampan.manifest)" -v d="$(g dist.manifest)" 'BEGIN{print (s >= 1.5*d) ? "PASS" : "MISS"}')
blob_ok=$(awk -v s="$(g sampan.blob)" -v d="$(g dist.blob)" 'BEGIN{print (s >= 0.9*d) ? "PASS" : "MISS"}')
echo
echo "VERDICT: manifest GET $man_ok (sampan $(fmt "$(g sampan.manifest)" %.0f) req/s vs target >= 1.5 x Distribution $(fmt "$(g dist.manifest)" %.0f) req/s," \
     "ratio $(ratio "$(g sampan.manifest)" "$(g dist.manifest)"));" \
     "blob GET $blob_ok (sampan $(g sampan.blob) MB/s vs target >= 0.9 x Distribution $(g dist.blob) MB/s, ratio $(ratio "$(g sampan.blob)" "$(g dist.blob)"))"
errs=$(($(g sampan.errors) + $(g dist.errors)))
[ "$errs" -gt 0 ] && echo "NOTE: $errs requests failed or got a non-2xx answer (see the counts above)"
if [ "$STRICT" = 1 ] && { [ "$man_ok" != PASS ] || [ "$blob_ok" != PASS ]; }; then exit 1; fi
exit 0
