#!/usr/bin/env bash
# Build benchmark (issue 5): the classic builder of Sampan vs dockerd's (DOCKER_BUILDKIT=0; Debian docker.io, with
# its managed containerd) vs `podman build` (buildah, OCI isolation with runc), all in one run on this machine.
# The same 10-instruction, two-stage Dockerfile (a COPY of the context, two RUNs that write ~200 MB, a
# COPY --from of that output into the second stage) and the same context are built by all three:
#   1. cold: `build --no-cache -t bench:cold` wall time, BENCH_ROUNDS rounds (default 5), interleaved: each
#      round builds once on every engine, in a rotating order. Between builds (untimed): the dangling images
#      of the previous round are pruned and `sync` flushes the page cache's dirty data, so that one engine's
#      writeback does not land in the next one's build
#   2. cached: after one untimed warm build per engine, BENCH_ROUNDS builds with every step from the cache
#      (interleaved the same way); the output's "Using cache" lines are counted, so that a build that was not
#      fully cached shows
#   3. the built images are run on each engine (the listing the image's CMD prints must name out.bin)
#   4. a table (median, p90, ratios Sampan/dockerd and Sampan/podman), a table of the time each step took
#      (median over the rounds, from the arrival time of each step's first output line), and a verdict against
#      the targets: cold median <= 1.0 x dockerd's, cached median < 0.5 x dockerd's
#
# Usage (as root, from the repo root):  bash bench/build.sh
# Env: BENCH_ROUNDS (5)  BENCH_WARMUP (1 untimed cold build per engine first)
#      BENCH_FILES (20) x BENCH_FILE_KB (50) random files in the context, BENCH_REPEAT (200): how often the first RUN
#      concatenates them (the RUN output is FILES x FILE_KB x REPEAT KiB, 200 MB by default)
#      BENCH_ENGINES ("sampan dockerd podman")  BENCH_STRICT=1 exits 1 when a target is missed
#      BENCH_SYNC=0 skips the `sync` before each build (then a build also pays for the writeback of the one before)
#      BENCH_OUT=FILE also writes the results tables (markdown) to FILE;  KEEP_LOGS=DIR keeps the engines' logs and
#      every build's output (each line prefixed with the ms since the command started)
# Results and how to read them: docs/benchmarks.md
# Sampan and dockerd are driven by the same docker CLI (`docker -H unix://...`, DOCKER_BUILDKIT=0); podman by its own.
# All builds use --network none (no network is needed or available); busybox comes from `sampan image seed`.
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/lib.sh"
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-5}
WARMUP=${BENCH_WARMUP:-1}
NFILES=${BENCH_FILES:-20}
FILE_KB=${BENCH_FILE_KB:-50}
REPEAT=${BENCH_REPEAT:-200}
ENGINES=${BENCH_ENGINES:-"sampan dockerd podman"}
STRICT=${BENCH_STRICT:-0}
OUT=${BENCH_OUT:-}
SYNC=${BENCH_SYNC:-1}
NSTEPS=10       # instructions in the Dockerfile below
CACHEABLE=8     # all but the two FROMs
export DOCKER_BUILDKIT=0

[ "$(id -u)" = 0 ] || die "run as root (engines, runc, mounts)"
case " $ENGINES " in *" sampan "*) ;; *) die "BENCH_ENGINES must include sampan (it provides the busybox image)";; esac

# ---------- prerequisites ----------
if [ ! -f dist/src/cli/main.js ]; then log "dist/ missing: running scripts/setup.sh"; bash scripts/setup.sh || die "setup failed"; fi
need_pkgs=()
command -v runc >/dev/null || need_pkgs+=(runc)
command -v conmon >/dev/null || need_pkgs+=(conmon)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v docker >/dev/null || need_pkgs+=(docker.io)
case " $ENGINES " in *" dockerd "*) command -v dockerd >/dev/null || need_pkgs+=(docker.io);; esac
case " $ENGINES " in *" podman "*) command -v podman >/dev/null || need_pkgs+=(podman);; esac
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null || die "apt-get install failed"
fi

# ---------- scratch dir, state to restore ----------
T=$(mktemp -d /tmp/sbb.XXXX) || die "mktemp failed"
SAMPAN_SOCK=$T/e.sock
DOCKERD_SOCK=$T/d.sock
CTX=$T/ctx
host_net_save
SAMPAN_PID="" DOCKERD_PID=""
POD=(podman --root "$T/podroot" --runroot "$T/podrun" --tmpdir "$T/podtmp" --network-config-dir "$T/podnet"
     --runtime runc --cgroup-manager cgroupfs --events-backend file)
# podman asks runc for rlimits from its defaults; they must stay within this host's hard limits (nofile 20000)
POD_RUN=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
mkdir -p "$T/podtmp" "$T/podnet"

cleanup() {
  local rc=$? p m r c ids
  trap - EXIT INT TERM
  log "cleaning up $T"
  if [ -n "$SAMPAN_PID" ] && kill -0 "$SAMPAN_PID" 2>/dev/null; then
    ids=$(timeout 30 docker -H "unix://$SAMPAN_SOCK" ps -aq 2>/dev/null)
    [ -n "$ids" ] && timeout 120 docker -H "unix://$SAMPAN_SOCK" rm -f $ids >/dev/null 2>&1
    stop_pid "$SAMPAN_PID" 20
  fi
  DOCKERD_PID=$(cat "$T/dockerd.pid" 2>/dev/null || echo "$DOCKERD_PID")
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    ids=$(timeout 30 docker -H "unix://$DOCKERD_SOCK" ps -aq 2>/dev/null)
    [ -n "$ids" ] && timeout 120 docker -H "unix://$DOCKERD_SOCK" rm -f $ids >/dev/null 2>&1
    stop_pid "$DOCKERD_PID" 30
  fi
  if [ -d "$T/podroot" ]; then timeout 120 "${POD[@]}" rm -af -t 0 >/dev/null 2>&1; fi
  # leftovers whose command line mentions $T: builds and monitors first, then daemons
  for p in $(pids_of 'docker|conmon|containerd-shim.*|containerd|dockerd|node|podman'); do kill -KILL "$p" 2>/dev/null; done
  # containers that lost their monitor: runc state dirs that belong to this run
  runc_leftovers "$T"
  # mounts under $T (podman's build containers, overlay mounts), deepest first
  umount_under "$T"
  host_net_restore
  if [ -n "${KEEP_LOGS:-}" ]; then
    mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null
    [ -d "$T/out" ] && cp -r "$T/out" "$KEEP_LOGS"/ 2>/dev/null
  fi
  rm -rf "$T" 2>/dev/null || log "could not remove $T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A R   # results: R[engine.metric]

# ---------- the build context: the same bytes for every engine ----------
mkdir -p "$CTX/src" "$T/out"
for ((i = 1; i <= NFILES; i++)); do head -c $((FILE_KB * 1024)) /dev/urandom >"$CTX/src/$(printf 'f%03d.txt' "$i")"; done
cat >"$CTX/Dockerfile" <<EOF
FROM busybox AS build
WORKDIR /src
COPY src/ ./
RUN for i in \$(seq 1 $REPEAT); do cat *.txt >> /out.bin; done && sha256sum /out.bin > /out.sum
RUN mkdir -p /dist && cp /out.bin /out.sum /dist/
FROM busybox
ENV APP=/app
COPY --from=build /dist/ /app/
RUN ls -la /app > /app/listing
CMD ["cat", "/app/listing"]
EOF
OUT_BYTES=$((NFILES * FILE_KB * 1024 * REPEAT))
mapfile -t STEP_TEXT < <(grep -v '^\s*$' "$CTX/Dockerfile")
[ ${#STEP_TEXT[@]} = $NSTEPS ] || die "the Dockerfile should have $NSTEPS instructions"

# prefix every line with the ms since $1 (µs)
stamp() { local t0=$1 l; while IFS= read -r l; do printf '%d %s\n' $(((${EPOCHREALTIME/./} - t0) / 1000)) "$l"; done; }

# engine-specific build command (after the CLI); podman gets its ulimits
build_args() { # ENGINE
  if [ "$1" = podman ]; then printf '%s\n' build --layers --network none "${POD_RUN[@]}"
  else printf '%s\n' build --network none; fi
}
cache_hits() { # ENGINE FILE: how many steps the output says came from the cache
  if [ "$1" = podman ]; then grep -c -- ' --> Using cache' "$2"; else grep -c -- ' ---> Using cache' "$2"; fi
}

# one timed build: appends the wall time in ms to $3 and each step's ms to $T/$1-$2-stepN.ms; returns the status
timed_build() { # ENGINE PHASE(cold|cached|warm) FILE NAME-OF-OUTPUT ARGS...
  local e=$1 ph=$2 f=$3 o=$T/out/$4 t0 t1 rc CLI args hdr k; shift 4
  cli_of "$e"; mapfile -t args < <(build_args "$e")
  [ "$SYNC" = 1 ] && sync # untimed: the previous build's dirty pages go to disk now, not during this build
  t0=$(now_us)
  timeout 900 "${CLI[@]}" "${args[@]}" "$@" "$CTX" 2>&1 </dev/null | stamp "$t0" >"$o"
  rc=${PIPESTATUS[0]}
  t1=$(now_us)
  if [ "$rc" != 0 ]; then
    { echo "  (exit $rc: $ph build $*; last lines of $4:)"; tail -5 "$o" | sed 's/^/    /'; } >>"$T/$e-errors.log"
    return "$rc"
  fi
  awk -v d=$((t1 - t0)) 'BEGIN{print d/1000}' >>"$f"
  # step headers: "Step 3/10 : ..." (classic builder), "[1/2] STEP 3/5: ..." (podman)
  if [ "$e" = podman ]; then hdr=$(awk '$2 ~ /^\[[0-9]+\/[0-9]+\]$/ && $3 == "STEP" {print $1}' "$o")
  else hdr=$(awk '$2 == "Step" && $3 ~ /^[0-9]+\/[0-9]+$/ {print $1}' "$o"); fi
  mapfile -t hdr <<<"$hdr"
  if [ ${#hdr[@]} = $NSTEPS ]; then
    hdr+=($(((t1 - t0) / 1000)))
    echo "${hdr[0]}" >>"$T/$e-$ph-step0.ms"
    for ((k = 1; k <= NSTEPS; k++)); do echo $((hdr[k] - hdr[k - 1])) >>"$T/$e-$ph-step$k.ms"; done
  else
    echo "  ($ph build $4: ${#hdr[@]} step headers, expected $NSTEPS)" >>"$T/$e-errors.log"
  fi
  return 0
}

prune() { # ENGINE: untimed, drop the images earlier cold rounds left dangling
  local CLI; cli_of "$1"
  timeout 300 "${CLI[@]}" image prune -f >/dev/null 2>>"$T/$1-errors.log"
}

# 1. cold builds, interleaved with a rotating order
cold_phase() {
  local e i j n=${#ACTIVE[@]}
  log "cold: $WARMUP warm-up + $ROUNDS timed 'build --no-cache' per engine, interleaved"
  for e in "${ACTIVE[@]}"; do
    : >"$T/$e-cold.ms"; R[$e.cold_fail]=0
    for ((i = 0; i < WARMUP; i++)); do timed_build "$e" warm /dev/null "$e-warmup-$i.out" --no-cache -t bench:cold; prune "$e"; done
  done
  for ((i = 0; i < ROUNDS; i++)); do
    for ((j = 0; j < n; j++)); do
      e=${ACTIVE[$(((i + j) % n))]}
      timed_build "$e" cold "$T/$e-cold.ms" "$e-cold-$i.out" --no-cache -t bench:cold || R[$e.cold_fail]=$((R[$e.cold_fail] + 1))
      prune "$e"
    done
    log "cold round $((i + 1))/$ROUNDS: $(for e in "${ACTIVE[@]}"; do printf '%s %s ms  ' "$e" "$(tail -1 "$T/$e-cold.ms")"; done)"
  done
}

# 2. fully cached builds, after one warm build per engine
cached_phase() {
  local e i j n=${#ACTIVE[@]} h
  log "cached: 1 warm build + $ROUNDS timed cached builds per engine, interleaved"
  for e in "${ACTIVE[@]}"; do
    : >"$T/$e-cached.ms"; R[$e.cached_fail]=0; R[$e.hits_min]=""; R[$e.hits_max]=""
    timed_build "$e" warm /dev/null "$e-cached-warm.out" -t bench:cached || R[$e.cached_fail]=$((R[$e.cached_fail] + 1))
  done
  for ((i = 0; i < ROUNDS; i++)); do
    for ((j = 0; j < n; j++)); do
      e=${ACTIVE[$(((i + j) % n))]}
      if timed_build "$e" cached "$T/$e-cached.ms" "$e-cached-$i.out" -t bench:cached; then
        h=$(cache_hits "$e" "$T/out/$e-cached-$i.out")
        [ -z "${R[$e.hits_min]}" ] || [ "$h" -lt "${R[$e.hits_min]}" ] && R[$e.hits_min]=$h
        [ -z "${R[$e.hits_max]}" ] || [ "$h" -gt "${R[$e.hits_max]}" ] && R[$e.hits_max]=$h
      else
        R[$e.cached_fail]=$((R[$e.cached_fail] + 1))
      fi
    done
  done
  for e in "${ACTIVE[@]}"; do
    if [ "${R[$e.hits_min]}" = "${R[$e.hits_max]}" ]; then R[$e.hits]="${R[$e.hits_min]:-0}/$CACHEABLE"
    else R[$e.hits]="${R[$e.hits_min]}-${R[$e.hits_max]}/$CACHEABLE"; fi
  done
}

# 3. the images run: the CMD prints the listing of /app, which must show out.bin at its full size
check_images() {
  local e tag CLI extra out sum
  for e in "${ACTIVE[@]}"; do
    cli_of "$e"; extra=()
    [ "$e" = podman ] && extra=("${POD_RUN[@]}")
    R[$e.runs]=yes
    for tag in bench:cold bench:cached; do
      out=$(timeout 60 "${CLI[@]}" run --rm --network none "${extra[@]}" "$tag" 2>>"$T/$e-errors.log")
      if ! grep -Eq "[[:space:]]$OUT_BYTES[[:space:]].*out\.bin\$" <<<"$out" || ! grep -q 'out\.sum$' <<<"$out"; then
        R[$e.runs]=no; { echo "  ($tag: the listing was:)"; sed 's/^/    /' <<<"$out"; } >>"$T/$e-errors.log"
      fi
    done
    sum=$(timeout 60 "${CLI[@]}" run --rm --network none "${extra[@]}" bench:cached sha256sum /app/out.bin 2>>"$T/$e-errors.log")
    R[$e.sum]=${sum:0:12}
  done
}

ACTIVE=(sampan)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN{exit !(l > 0.5*n)}' &&
  log "WARNING: load average $LOAD_START on $(nproc) CPUs before the start: other work on this machine will skew the figures"
START_S=$(date +%s)
# ---------- Sampan (also the source of the busybox image) ----------
log "scratch dir $T; rounds=$ROUNDS; context $NFILES x $FILE_KB KiB, RUN output $((OUT_BYTES / 1000000)) MB; engines: $ENGINES"
bin/sampan engine --root "$T/root" --exec-root "$T/run" --host "unix://$SAMPAN_SOCK" >"$T/sampan.log" 2>&1 &
SAMPAN_PID=$!
wait_ping "$SAMPAN_SOCK" 30 || { tail -20 "$T/sampan.log" >&2; die "sampan engine did not answer _ping"; }
bin/sampan image seed --host "unix://$SAMPAN_SOCK" >/dev/null || die "sampan image seed failed"
docker -H "unix://$SAMPAN_SOCK" save busybox:latest -o "$T/bb.tar" || die "docker save against sampan failed"

# ---------- dockerd ----------
if [[ " $ENGINES " == *" dockerd "* ]]; then
  dockerd --data-root "$T/dockerd" --exec-root "$T/dockerd-run" --pidfile "$T/dockerd.pid" -H "unix://$DOCKERD_SOCK" \
    --iptables=false --bridge=none >"$T/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  wait_ping "$DOCKERD_SOCK" 60 || { tail -20 "$T/dockerd.log" >&2; die "dockerd did not answer _ping"; }
  docker -H "unix://$DOCKERD_SOCK" load -i "$T/bb.tar" >/dev/null || die "docker load into dockerd failed"
  R[dockerd.driver]=$(docker -H "unix://$DOCKERD_SOCK" info --format '{{.Driver}}' 2>/dev/null)
  ACTIVE+=(dockerd)
fi

# ---------- podman ----------
if [[ " $ENGINES " == *" podman "* ]]; then
  "${POD[@]}" load -i "$T/bb.tar" >/dev/null 2>"$T/podman-load.log" || { cat "$T/podman-load.log" >&2; die "podman load failed"; }
  R[podman.driver]=$("${POD[@]}" info --format '{{.Store.GraphDriverName}}' 2>/dev/null)
  ACTIVE+=(podman)
fi

for e in "${ACTIVE[@]}"; do : >"$T/$e-errors.log"; rm -f "$T/$e"-*-step*.ms; done
cold_phase
cached_phase
check_images
for e in "${ACTIVE[@]}"; do
  read -r R[$e.cold_med] R[$e.cold_p90] < <(stats "$T/$e-cold.ms")
  read -r R[$e.cached_med] R[$e.cached_p90] < <(stats "$T/$e-cached.ms")
  for ph in cold cached; do
    for ((k = 0; k <= NSTEPS; k++)); do
      if [ -s "$T/$e-$ph-step$k.ms" ]; then read -r R[$e.$ph.s$k] _ < <(stats "$T/$e-$ph-step$k.ms"); R[$e.$ph.s$k]=${R[$e.$ph.s$k]%.*}
      else R[$e.$ph.s$k]="-"; fi
    done
  done
  log "$e: cold median ${R[$e.cold_med]} ms p90 ${R[$e.cold_p90]} ms (failed ${R[$e.cold_fail]});" \
      "cached median ${R[$e.cached_med]} ms p90 ${R[$e.cached_p90]} ms (failed ${R[$e.cached_fail]}, from cache ${R[$e.hits]})"
  if [ -s "$T/$e-errors.log" ]; then log "$e: errors (first 15 lines):"; head -15 "$T/$e-errors.log" | sed 's/^/    /' >&2; fi
done
R[sampan.driver]=overlay
R[sampan.store_mib]=$(du -sm "$T/root" 2>/dev/null | cut -f1)
[ -n "$DOCKERD_PID" ] && R[dockerd.store_mib]=$(du -sm "$T/dockerd" 2>/dev/null | cut -f1)
[ -d "$T/podroot" ] && R[podman.store_mib]=$(du -sm "$T/podroot" 2>/dev/null | cut -f1)
ELAPSED=$(($(date +%s) - START_S))

has() { [[ " $ENGINES " == *" $1 "* ]]; }
table() {
  local cols=(sampan) e
  has dockerd && cols+=(dockerd)
  has podman && cols+=(podman)
  printf '| metric |'; for e in "${cols[@]}"; do printf ' %s |' "$e"; done
  has dockerd && printf ' Sampan/dockerd |'; has podman && printf ' Sampan/podman |'; echo
  printf '|---|'; for e in "${cols[@]}"; do printf -- '---:|'; done; has dockerd && printf -- '---:|'; has podman && printf -- '---:|'; echo
  row() { # label key [noratio]
    local lab=$1 k=$2 rd rp
    printf '| %s |' "$lab"; for e in "${cols[@]}"; do printf ' %s |' "$(g "$e.$k")"; done
    if [ -n "${3:-}" ]; then rd=""; rp=""; else rd=$(ratio "$(g sampan.$k)" "$(g dockerd.$k)"); rp=$(ratio "$(g sampan.$k)" "$(g podman.$k)"); fi
    has dockerd && printf ' %s |' "$rd"
    has podman && printf ' %s |' "$rp"
    echo
  }
  row "cold build (\`--no-cache\`): median (ms)" cold_med
  row "cold build: p90 (ms)" cold_p90
  row "cold build: failed" cold_fail noratio
  row "cached build: median (ms)" cached_med
  row "cached build: p90 (ms)" cached_p90
  row "cached build: failed" cached_fail noratio
  row "cached build: steps from the cache" hits noratio
  row "both images run and list /app/out.bin" runs noratio
  row "sha256 of /app/out.bin" sum noratio
  row "store on disk at the end (MiB, du)" store_mib
}
step_table() {
  local cols=(sampan) e k ph
  has dockerd && cols+=(dockerd)
  has podman && cols+=(podman)
  printf '| step |'; for ph in cold cached; do for e in "${cols[@]}"; do printf ' %s %s |' "$e" "$ph"; done; done; echo
  printf '|---|'; for ph in cold cached; do for e in "${cols[@]}"; do printf -- '---:|'; done; done; echo
  for ((k = 0; k <= NSTEPS; k++)); do
    if [ $k = 0 ]; then printf '| (start, context upload) |'
    else printf '| %d: `%s` |' $k "$(sed 's/|/\\|/g' <<<"${STEP_TEXT[$((k - 1))]:0:60}")"; fi
    for ph in cold cached; do for e in "${cols[@]}"; do printf ' %s |' "$(g "$e.$ph.s$k")"; done; done; echo
  done
}
{
  echo
  echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "Versions: $(docker --version | cut -d, -f1 | sed 's/Docker version/docker CLI/'); $(dockerd --version 2>/dev/null | cut -d, -f1);" \
       "$(containerd --version 2>/dev/null | awk '{print "containerd "$3}'); $(podman --version 2>/dev/null) (buildah inside); $(runc --version | head -1); $(conmon --version 2>/dev/null | head -1); node $(node --version)"
  echo "Storage: sampan ${R[sampan.driver]}, dockerd ${R[dockerd.driver]:-}, podman ${R[podman.driver]:-}; scratch dir on $(df -T "$T" | awk 'NR==2{print $2}')"
  echo "Load average (1/5/15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; the run took ${ELAPSED} s"
  echo "Rounds: $WARMUP warm-up + $ROUNDS timed cold builds and 1 warm + $ROUNDS timed cached builds per engine, interleaved round-robin;" \
       "context $NFILES x $FILE_KB KiB, RUN output $OUT_BYTES bytes; $([ "$SYNC" = 1 ] && echo "sync before every build" || echo "no sync between builds")"
  echo
  table
  echo
  echo "Time per step (median ms over the rounds; from one step's first output line to the next one's):"
  echo
  step_table
} | tee "$T/table.md"
[ -n "$OUT" ] && cp "$T/table.md" "$OUT"

stop_pid "$SAMPAN_PID" 20; SAMPAN_PID=""
if [ -n "$DOCKERD_PID" ]; then
  stop_pid "$DOCKERD_PID" 30; DOCKERD_PID=""
  for p in $(pids_of containerd); do stop_pid "$p" 10; done
fi

if has dockerd; then
  cold_ok=$(awk -v s="$(g sampan.cold_med)" -v d="$(g dockerd.cold_med)" 'BEGIN{print (s!="-" && d!="-" && s <= 1.0*d) ? "PASS" : "MISS"}')
  cached_ok=$(awk -v s="$(g sampan.cached_med)" -v d="$(g dockerd.cached_med)" 'BEGIN{print (s!="-" && d!="-" && s < 0.5*d) ? "PASS" : "MISS"}')
  [ "$(g sampan.hits)" = "$CACHEABLE/$CACHEABLE" ] || cached_ok="MISS (not every step came from the cache)"
  lim=$(awk -v d="$(g dockerd.cached_med)" 'BEGIN{printf "%.1f", 0.5*d}')
  echo
  echo "VERDICT: cold build $cold_ok (Sampan median $(g sampan.cold_med) ms vs target <= 1.0 x dockerd $(g dockerd.cold_med) ms," \
       "ratio $(ratio "$(g sampan.cold_med)" "$(g dockerd.cold_med)"));" \
       "cached build $cached_ok (Sampan median $(g sampan.cached_med) ms vs target < 0.5 x dockerd $(g dockerd.cached_med) ms = $lim ms," \
       "ratio $(ratio "$(g sampan.cached_med)" "$(g dockerd.cached_med)"))"
  fails=$(( $(g sampan.cold_fail) + $(g sampan.cached_fail) ))
  [ "$fails" -gt 0 ] && echo "NOTE: Sampan had $fails failed builds (see the errors above)"
  [ "$(g sampan.runs)" = yes ] || echo "NOTE: a Sampan-built image did not run as expected (see the errors above)"
  if [ "$STRICT" = 1 ] && { [ "$cold_ok" != PASS ] || [ "$cached_ok" != PASS ]; }; then exit 1; fi
fi
exit 0
