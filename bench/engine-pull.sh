#!/usr/bin/env bash
# Pull benchmark: `docker pull` of one image (default 200 MB in 4 gzip layers of random data) from the same
# Distribution registry (Debian's docker-registry, on loopback) through Sampan's engine and through dockerd,
# driven by the same docker CLI. Each round removes the image from both engines first, then pulls it with each
# (in alternating order); the table shows median and best wall time per engine and the ratio Sampan/dockerd.
# Target (issue 3): Sampan's median at most dockerd's.
#
# Usage (as root, from the repo root):  bash bench/engine-pull.sh
# Env: BENCH_ROUNDS (5)  BENCH_LAYERS (4)  BENCH_LAYER_MB (50)  BENCH_STRICT=1 exits 1 when the target is missed
#      BENCH_OUT=FILE also writes the table (markdown) to FILE;  KEEP_LOGS=DIR keeps the logs
# Nothing here needs the network: the image is generated locally and pushed with skopeo.
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/lib.sh"
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-5}
LAYERS=${BENCH_LAYERS:-4}
LAYER_MB=${BENCH_LAYER_MB:-50}
STRICT=${BENCH_STRICT:-0}
OUT=${BENCH_OUT:-}

[ "$(id -u)" = 0 ] || die "run as root"
[ -f dist/src/cli/main.js ] || { bash scripts/setup.sh || die "setup failed"; }
for b in docker-registry skopeo dockerd docker python3; do command -v "$b" >/dev/null || die "$b is missing (bash scripts/setup.sh installs it)"; done

T=$(mktemp -d /tmp/bench-pull.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  grep " $T" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  [ -n "${KEEP_LOGS:-}" ] && { mkdir -p "$KEEP_LOGS"; cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null; }
  rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_sock() { for _ in $(seq 1 150); do curl -fsS --unix-socket "$1" http://x/_ping >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }

# ---------- registry and image ----------
P=$(free_port)
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$T/dist" "$P" > "$T/dist.yml"
docker-registry serve "$T/dist.yml" >>"$T/dist.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$P/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
log "building a $((LAYERS * LAYER_MB)) MB image ($LAYERS layers) as an OCI layout"
python3 - "$T/layout" "$LAYERS" "$LAYER_MB" <<'EOF' || die "could not build the image"
import gzip, hashlib, io, json, os, sys, tarfile
out, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{out}/blobs/sha256")
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
layers, diffs = [], []
for i in range(n):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        data = os.urandom(mb * 1000 * 1000)
        ti = tarfile.TarInfo(f"data/layer{i}.bin"); ti.size = len(data); ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))
        for j in range(200):  # and some small files, as real layers have
            small = os.urandom(2000); ti = tarfile.TarInfo(f"data/small{i}/{j}.bin"); ti.size = len(small)
            t.addfile(ti, io.BytesIO(small))
    raw = buf.getvalue()
    diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(gzip.compress(raw, 1))})
cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]}, "rootfs": {"type": "layers", "diff_ids": diffs}}
c = put(json.dumps(cfg).encode())
man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **c}, "layers": layers}
m = put(json.dumps(man).encode())
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": man["mediaType"], **m, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
EOF
skopeo copy -q --dest-tls-verify=false "oci:$T/layout:1" "docker://127.0.0.1:$P/bench/big:1" >/dev/null 2>>"$T/skopeo.log" || die "skopeo push failed"
IMG="127.0.0.1:$P/bench/big:1"
SIZE=$(du -sm "$T/layout/blobs" | awk '{print $1}')

# ---------- engines ----------
bin/sampan engine --root "$T/sampan" --exec-root "$T/sampan-run" --host "unix://$T/sampan.sock" --cgroup-parent /sampan-bench-pull >>"$T/sampan.log" 2>&1 & PIDS+=($!)
wait_sock "$T/sampan.sock" || die "sampan engine did not start"
dockerd --data-root "$T/dockerd" --exec-root "$T/dockerd-run" --pidfile "$T/dockerd.pid" -H "unix://$T/dockerd.sock" \
  --iptables=false --bridge=none >>"$T/dockerd.log" 2>&1 & PIDS+=($!)
wait_sock "$T/dockerd.sock" || die "dockerd did not start"

pull_once() { # pull_once ENGINE → seconds
  local sock="$T/$1.sock" s e
  DOCKER_HOST="unix://$sock" docker rmi -f "$IMG" >/dev/null 2>&1
  [ "$1" = dockerd ] && DOCKER_HOST="unix://$sock" docker image prune -af >/dev/null 2>&1
  sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null
  s=$(date +%s%N)
  DOCKER_HOST="unix://$sock" docker pull -q "$IMG" >/dev/null 2>>"$T/pull-$1.log" || die "$1: pull failed (see $T/pull-$1.log)"
  e=$(date +%s%N)
  echo $(( (e - s) / 1000000 ))
}
declare -A R=([sampan]="" [dockerd]="")
log "pulling $IMG (${SIZE} MB of blobs), $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="sampan dockerd"; else order="dockerd sampan"; fi
  for eng in $order; do
    ms=$(pull_once "$eng"); R[$eng]+="$ms "
    log "round $r $eng: ${ms} ms"
  done
done
stat() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END{printf "%d %d", a[int((NR+1)/2)], a[1]}'; }
read -r smed sbest <<<"$(stat <<<"${R[sampan]}")"
read -r dmed dbest <<<"$(stat <<<"${R[dockerd]}")"
ratio=$(awk -v a="$smed" -v b="$dmed" 'BEGIN{printf "%.2f", a/b}')
verdict=$([ "$smed" -le "$dmed" ] && echo "met" || echo "missed")
table="| docker pull, ${SIZE} MB image ($LAYERS gzip layers), loopback Distribution | median ms | best ms |
|---|---|---|
| Sampan engine | $smed | $sbest |
| dockerd | $dmed | $dbest |
| ratio Sampan/dockerd | $ratio | |

Target: Sampan median <= dockerd median: **$verdict**"
echo "$table"
[ -n "$OUT" ] && echo "$table" > "$OUT"
[ "$STRICT" = 1 ] && [ "$verdict" = missed ] && exit 1
exit 0
