#!/usr/bin/env bash
# Re-measures README's "Monitoring" table: how df, stat -f, check_disk,
# node_exporter, `timeout 5 stat` and `hangsafe check` behave with one
# never-answering FUSE mount (contrib/fuse-hang.c). Needs root and
# /dev/fuse; runs everything in a private mount namespace of its own, so
# nothing else on the machine sees the hung mount, and ends by killing the
# FUSE program (which releases every waiter) and unmounting.
#
#   sudo contrib/measure-hung-mount.sh [HANGSAFE] [--scheduler]
#
# HANGSAFE defaults to target/release/hangsafe. --scheduler adds the 60 s
# runs: check_disk -t 5 and hangsafe check started every 5 s, 12 times,
# then the processes still alive (and in D state) counted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hangsafe=$(realpath "${1:-$here/../target/release/hangsafe}")
scheduler=${2:-}
check_disk=/usr/lib/nagios/plugins/check_disk
node_exporter=$(command -v prometheus-node-exporter || command -v node_exporter || true)

if [ -z "${HANGSAFE_MEASURE_INNER:-}" ]; then
  work=$(mktemp -d /tmp/hangsafe-measure.XXXXXX)
  cc -O2 -o "$work/fuse-hang" "$here/fuse-hang.c"
  HANGSAFE_MEASURE_INNER=1 WORK="$work" exec unshare -m --propagation private \
    "$0" "$hangsafe" "$scheduler"
fi

mnt=$WORK/hung
mkdir -p "$mnt"
"$WORK/fuse-hang" "$mnt" &
fuse_pid=$!
sleep 0.5
cleanup() {
  kill "$fuse_pid" 2>/dev/null || true
  wait "$fuse_pid" 2>/dev/null || true
  umount -l "$mnt" 2>/dev/null || true
  [ -n "${ne_pid:-}" ] && kill -KILL "$ne_pid" 2>/dev/null || true
}
trap cleanup EXIT

# Runs "$@" with SIGKILL after $cap seconds; prints wall time, exit status
# (137: killed) and the number of lines it printed.
measure() {
  local name=$1 cap=$2; shift 2
  local t0 t1 rc out
  t0=$(date +%s.%N)
  out=$(timeout -s KILL "$cap" "$@" 2>&1) && rc=0 || rc=$?
  t1=$(date +%s.%N)
  printf '%-34s %6.2fs  exit %-3s  %s lines\n' "$name" "$(echo "$t1 - $t0" | bc)" "$rc" \
    "$(printf '%s' "$out" | grep -c . || true)"
  printf '%s\n' "$out" | head -5 | sed 's/^/    | /'
}

echo "kernel $(uname -r); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "hung mount: $mnt ($(grep -c . /proc/self/mountinfo) mounts in this namespace)"
measure "df" 10 df
measure "stat -f MNT" 10 stat -f "$mnt"
[ -x "$check_disk" ] && measure "check_disk -t 5 -w 10% -c 5%" 15 "$check_disk" -t 5 -w 10% -c 5%
measure "timeout 5 stat MNT" 10 timeout 5 stat "$mnt"
measure "hangsafe check --timeout 2s" 10 "$hangsafe" check --timeout 2s
measure "hangsafe check --format nagios -t 2s" 10 "$hangsafe" check --format nagios -t 2s -w 10% -c 5%

if [ -n "$node_exporter" ]; then
  echo "node_exporter: $("$node_exporter" --version 2>&1 | head -1)"
  # node_exporter reads PROCFS/1/mounts (init's mount table), which lacks
  # this namespace's hung mount: give it a procfs whose 1/mounts is its
  # own, and only the filesystem collector (the others need the real one).
  mkdir -p "$WORK/proc/1"
  ln -sf /proc/self/mounts "$WORK/proc/1/mounts"
  "$node_exporter" --web.listen-address=127.0.0.1:9199 --collector.filesystem.mount-timeout=2s \
    --collector.disable-defaults --collector.filesystem --path.procfs="$WORK/proc" \
    >"$WORK/ne.log" 2>&1 &
  ne_pid=$!
  sleep 1
  measure "node_exporter first scrape" 30 curl -sS -o "$WORK/scrape1" http://127.0.0.1:9199/metrics
  measure "node_exporter second scrape" 30 curl -sS -o "$WORK/scrape2" http://127.0.0.1:9199/metrics
  for f in scrape1 scrape2; do
    [ -s "$WORK/$f" ] && echo "    $f: $(grep -c '^node_filesystem_size_bytes' "$WORK/$f") size series," \
      "device_error for the hung mount: $(grep "node_filesystem_device_error.*mountpoint=\"$mnt\"" "$WORK/$f" || echo none)"
  done
  t0=$(date +%s.%N)
  kill -TERM "$ne_pid"
  for _ in $(seq 50); do kill -0 "$ne_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$ne_pid" 2>/dev/null; then
    echo "node_exporter: still alive 5 s after SIGTERM ($(ps -o stat= -p "$ne_pid"))"
  else
    echo "node_exporter: exited $(echo "$(date +%s.%N) - $t0" | bc)s after SIGTERM"
  fi
  echo "node_exporter log lines at the default level: $(grep -c . "$WORK/ne.log" || true)"
  grep -iv "Parsed flag\|Listening\|TLS is disabled\|Build context\|Starting node\|Enabled collectors\|collector=" \
    "$WORK/ne.log" | head -5 | sed 's/^/    | /' || true
fi

if [ "$scheduler" = "--scheduler" ]; then
  for what in check_disk hangsafe; do
    pids=()
    for _ in $(seq 12); do
      if [ "$what" = check_disk ]; then
        "$check_disk" -t 5 -w 10% -c 5% >/dev/null 2>&1 &
      else
        "$hangsafe" check --timeout 2s >/dev/null 2>&1 &
      fi
      pids+=($!)
      sleep 5
    done
    alive=0; dstate=0
    for p in "${pids[@]}"; do
      st=$(ps -o stat= -p "$p" 2>/dev/null || true)
      [ -n "$st" ] && alive=$((alive + 1))
      case "$st" in D*) dstate=$((dstate + 1)) ;; esac
    done
    echo "$what every 5 s, 12 runs: after 60 s $alive alive, $dstate in D state"
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  done
fi
