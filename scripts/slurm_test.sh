#!/usr/bin/env bash
# Integration test of `rewind slurm` on a real Slurm cluster of one node:
# this machine. Needs root (apt-get, the daemons) and Debian/Ubuntu.
#
#   scripts/slurm_test.sh
#
# 1. installs slurm-wlm and munge with apt-get if sbatch is missing;
# 2. starts munged, slurmctld and slurmd on a throw-away config and state
#    under a temporary folder (stopped again on exit, whatever happens);
# 3. builds rewind (cargo build --release --locked; PROFILE=dev: cargo build);
# 4. array: `rewind slurm tests/slurm/sweep.toml --shards 4 --submit`, waits
#    for the array and its merge job;
# 5. local: the same sweep with `rewind run --jobs 1`; summary.csv must equal
#    the Slurm one apart from the timing columns;
# 6. faults: submits again into a new results folder, cancels one array task
#    (scancel) and requeues another (scontrol requeue, as a preemption
#    would) while each trains a run that has a checkpoint, submits the same
#    command once more, and checks that the final summary.csv again equals
#    the local one (nothing lost, no row twice) and that the interrupted
#    runs resumed from their checkpoints.
#
# Exits non-zero on any mismatch or timeout, printing the daemons' and the
# jobs' logs. Prints each phase's time and the total. KEEP=1 keeps the
# temporary folder; WAIT_S (default 600) bounds every wait; CTLD_PORT and
# SLURMD_PORT (16817, 16818) move the daemons' ports.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CONFIG=tests/slurm/sweep.toml
SHARDS=4
WAIT_S=${WAIT_S:-600}
T0=$(date +%s.%N)
PHASES=()

say() { echo "[slurm_test $(date +%T)] $*"; }
die() {
    echo "[slurm_test] FAILED: $*" >&2
    exit 1
}
# phase NAME START: records how long NAME took since START
phase() {
    local dt
    dt=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$2" "$(date +%s.%N)")
    PHASES+=("$1 ${dt}s")
    say "phase $1: ${dt}s"
}

[ "$(id -u)" = 0 ] || die "needs root: it installs packages and runs the Slurm daemons"
command -v python3 >/dev/null || die "needs python3 (to compare the summaries)"

# ---- 1. packages ------------------------------------------------------------
t=$(date +%s.%N)
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null ||
    ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # the package lists may be missing or stale on a fresh machine
    apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null; }
fi
phase install "$t"

# ---- 2. a one-node cluster ----------------------------------------------------
WORK=$(mktemp -d /tmp/rewind-slurm.XXXXXX)
# munged requires every folder above its socket to be searchable by all
chmod 755 "$WORK"
mkdir -p "$WORK"/{munge,etc,state,spool,log,run}
HOST=$(hostname -s)
NCPU=$(nproc)
export SLURM_CONF=$WORK/etc/slurm.conf
# ports away from a real installation's 6817/6818
CTLD_PORT=${CTLD_PORT:-16817}
SLURMD_PORT=${SLURMD_PORT:-16818}

dump_logs() {
    echo "==== logs (kept in $WORK) ====" >&2
    for f in "$WORK"/log/*.log "$WORK"/munge/munged.log; do
        [ -f "$f" ] && { echo "---- $f (last 40 lines)" >&2; tail -n 40 "$f" >&2; }
    done
    for f in "$WORK"/*/slurm_smoke/slurm/logs/*; do
        [ -s "$f" ] && { echo "---- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }
    done
    command -v squeue >/dev/null && squeue >&2 || true
}

cleanup() {
    local rc=$?
    set +e
    if [ $rc -ne 0 ]; then
        dump_logs
        KEEP=1
    fi
    # end the jobs first (slurmstepd outlives slurmd), then the daemons we started
    if [ -f "$WORK/run/slurmctld.pid" ]; then
        scancel --quiet --user=root 2>/dev/null
        for _ in $(seq 1 20); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    for pidfile in "$WORK/run/slurmd.pid" "$WORK/run/slurmctld.pid" "$WORK/munge/munged.pid"; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "[slurm_test] kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT

t=$(date +%s.%N)
# munge authenticates every Slurm message: a fresh key and socket of our own,
# so nothing depends on (or disturbs) a system munged
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$WORK/munge/munge.key"
munged --key-file="$WORK/munge/munge.key" --socket="$WORK/munge/munge.socket" \
    --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
    --seed-file="$WORK/munge/munged.seed"

# Why these settings, in a container without systemd or cgroup delegation:
# - proctrack/linuxproc and task/none track job processes through /proc and
#   bind nothing, so no cgroup.conf and no cgroup file system are needed;
# - jobacct_gather/none and accounting_storage/none: no slurmdbd; finished
#   jobs stay visible to squeue/scontrol for MinJobAge seconds instead;
# - SlurmUser=root: the daemons run as this (root) user, no slurm account;
# - ReturnToService=2: the node comes back by itself after slurmd restarts;
# - cred_expire=10: a requeued job may start again only once its old job
#   credential has expired, 120 s by default (slurm.conf(5), AuthInfo);
# - NodeAddr/SlurmctldHost on 127.0.0.1: works whatever the host name
#   resolves to; RealMemory modest so that the node registers on any box.
cat >"$SLURM_CONF" <<EOF
ClusterName=rewindtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$WORK/munge/munge.socket,cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=3600
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -f "$SLURM_CONF"
# -N: the node name, whatever else the host calls itself
slurmd -f "$SLURM_CONF" -N "$HOST"

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds
wait_for() {
    local what=$1 limit=$2 start
    shift 2
    start=$(date +%s)
    until "$@"; do
        [ $(($(date +%s) - start)) -ge "$limit" ] && die "timed out after ${limit}s waiting for $what"
        sleep 0.5
    done
}
# poll WHAT SECONDS COMMAND...: like wait_for, then prints the command's output
poll() {
    local what=$1 limit=$2 start out
    shift 2
    start=$(date +%s)
    until out=$("$@"); do
        [ $(($(date +%s) - start)) -ge "$limit" ] && die "timed out after ${limit}s waiting for $what"
        sleep 0.2
    done
    echo "$out"
}
node_idle() { [ "$(sinfo -h -N -n "$HOST" -o %t 2>/dev/null)" = idle ]; }
wait_for "node $HOST to be idle (sinfo)" 60 node_idle
phase cluster "$t"

# ---- 3. build ---------------------------------------------------------------
t=$(date +%s.%N)
# PROFILE=dev reuses the binary `cargo test` builds (CI has it already; the
# runs are slower, the release build is minutes on a cold cache)
case ${PROFILE:-release} in
release) cargo build --release --locked && BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/rewind ;;
dev) cargo build --locked && BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/rewind ;;
*) die "PROFILE=${PROFILE}: use release (the default) or dev" ;;
esac
[ -x "$BIN" ] || die "no binary at $BIN"
phase build "$t"

# ---- helpers ----------------------------------------------------------------
# submit RESULTS: `rewind slurm ... --submit`; prints "ARRAY MERGE" (job ids)
submit() {
    "$BIN" slurm "$CONFIG" --shards "$SHARDS" --cpus-per-task 1 --results "$1" --submit >&2
    python3 - "$1/slurm_smoke/slurm/submit.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print(j["array_job_id"], j["merge_job_id"])
EOF
}
jobs_gone() { [ -z "$(squeue -h -j "$1" 2>/dev/null)" ]; }
# wait_jobs IDS: until none of the jobs (comma-separated) is pending or running
wait_jobs() { wait_for "jobs $1 to end" "$WAIT_S" jobs_gone "$1"; }
# job_states ID: every task's state, one per line
job_states() { scontrol -o show job "$1" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
all_completed() {
    local bad
    bad=$(job_states "$1" | grep -vc '^COMPLETED$' || true)
    [ "$bad" = 0 ] || die "job $1 did not complete: $(job_states "$1" | sort | uniq -c | tr '\n' ' ')"
}
# all_finished RESULTS: prints `rewind status`, fails unless all 6 runs finished
all_finished() {
    local out
    out=$("$BIN" status "$CONFIG" --results "$1")
    echo "$out"
    grep -q '^6 finished$' <<<"$out" || die "not every run in $1 finished"
}
# compare A B: summary.csv files equal apart from wall-clock columns, one row per run
compare() {
    python3 - "$1" "$2" 6 <<'EOF'
import csv, sys
timing = {"wall_s", "ms_per_step", "tokens_per_s"}
def load(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    keep = [i for i, h in enumerate(header)
            if h not in timing and not h.startswith("seconds_per_problem:")]
    ids = [r[0] for r in body]
    if len(ids) != len(set(ids)):
        sys.exit(f"{path}: a run appears twice: {sorted(ids)}")
    return [header[i] for i in keep], [[r[i] for i in keep] for r in body]
(ha, a), (hb, b) = load(sys.argv[1]), load(sys.argv[2])
want = int(sys.argv[3])
if ha != hb:
    sys.exit(f"headers differ:\n{ha}\n{hb}")
if len(a) != want or len(b) != want:
    sys.exit(f"expected {want} rows, got {len(a)} ({sys.argv[1]}) and {len(b)} ({sys.argv[2]})")
bad = [(x, y) for x, y in zip(a, b) if x != y]
for x, y in bad:
    print("differs:", [(h, p, q) for h, p, q in zip(ha, x, y) if p != q], file=sys.stderr)
if bad:
    sys.exit(f"{len(bad)} row(s) differ between {sys.argv[1]} and {sys.argv[2]}")
print(f"summaries agree: {want} runs, {len(ha)} columns compared (timing columns left out)")
EOF
}

# ---- 4. the sweep as a job array --------------------------------------------
t=$(date +%s.%N)
read -r ARRAY MERGE < <(submit "$WORK/slurm")
[ -n "$MERGE" ] || die "rewind slurm --submit gave no job ids"
say "array job $ARRAY, merge job $MERGE"
wait_jobs "$ARRAY,$MERGE"
all_completed "$ARRAY"
all_completed "$MERGE"
all_finished "$WORK/slurm"
phase array "$t"

# ---- 5. the same sweep, locally ---------------------------------------------
t=$(date +%s.%N)
# one thread per run, as each array task has (SLURM_CPUS_PER_TASK=1)
"$BIN" run "$CONFIG" --jobs 1 --threads 1 --quiet --results "$WORK/local" >/dev/null
compare "$WORK/local/slurm_smoke/summary.csv" "$WORK/slurm/slurm_smoke/summary.csv" ||
    die "Slurm and local summaries differ"
phase local "$t"

# ---- 6. faults: a cancelled task, a requeued task, a resubmission ------------
t=$(date +%s.%N)
FAULT=$WORK/fault
read -r ARRAY1 MERGE1 < <(submit "$FAULT")
[ -n "$MERGE1" ] || die "rewind slurm --submit gave no job ids"
say "array job $ARRAY1, merge job $MERGE1"
# shard_dirs I: the run folders of array task I
shard_dirs() {
    "$BIN" run "$CONFIG" --dry-run --shard "$1/$SHARDS" --results "$FAULT" |
        awk '{ for (i = 1; i <= NF; i++) if ($i ~ /\/slurm_smoke\//) print $i }'
}
# state DIR: the run's state in `rewind status`
state() { "$BIN" status "$CONFIG" --results "$FAULT" | grep -F "$1" | awk '{print $2}'; }
# midway TASK: prints the run folder task TASK trains that has a checkpoint
# and no summary yet (fails if there is none right now)
midway() {
    local d
    for d in $(shard_dirs "$1"); do
        if [ -f "$d/checkpoint.safetensors" ] && [ ! -f "$d/summary.json" ] &&
            [ "$(state "$d")" = running ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}
task_state() { scontrol -o show job "${ARRAY1}_$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
# the first two tasks start at once (2 cores, 1 core each): cancel task 0,
# requeue task 1, each while it trains a run past its first checkpoint
CANCELLED=$(poll "task 0 to train past a checkpoint" "$WAIT_S" midway 0)
scancel "${ARRAY1}_0"
say "cancelled task ${ARRAY1}_0 while it trained $(basename "$CANCELLED")"
REQUEUED=$(poll "task 1 to train past a checkpoint" "$WAIT_S" midway 1)
scontrol requeue "${ARRAY1}_1"
say "requeued task ${ARRAY1}_1 while it trained $(basename "$REQUEUED")"
cancelled_ended() { [ "$(task_state 0)" = CANCELLED ]; }
wait_for "task ${ARRAY1}_0 to be cancelled" 60 cancelled_ended
# a run left between its checkpoints must resume from one; in the instant
# between looking and cancelling it may also have finished (then nothing to check)
RESUME=()
for d in "$CANCELLED" "$REQUEUED"; do
    case $(state "$d") in
    partial | running) RESUME+=("$d") ;;
    finished) say "note: $(basename "$d") finished before its task was stopped" ;;
    *) die "$(basename "$d") is $(state "$d") after its task was stopped" ;;
    esac
done
"$BIN" status "$CONFIG" --results "$FAULT"
# the same command again, as a user would after a failure: finished runs are
# skipped, runs still trained by the first array's tasks are waited for
read -r ARRAY2 MERGE2 < <(submit "$FAULT")
[ -n "$MERGE2" ] || die "the resubmission gave no job ids"
say "resubmitted: array job $ARRAY2, merge job $MERGE2"
wait_jobs "$ARRAY1,$MERGE1,$ARRAY2,$MERGE2"
all_completed "$ARRAY2"
all_completed "$MERGE2"
all_completed "$MERGE1"
[ "$(task_state 0)" = CANCELLED ] || die "task ${ARRAY1}_0 is $(task_state 0), not CANCELLED"
[ "$(task_state 1)" = COMPLETED ] || die "requeued task ${ARRAY1}_1 is $(task_state 1), not COMPLETED"
scontrol -o show job "${ARRAY1}_1" | grep -q 'Restarts=1 ' || die "task ${ARRAY1}_1 was not run again after its requeue"
all_finished "$FAULT"
LOGS=$FAULT/slurm_smoke/slurm/logs
for d in "${RESUME[@]}"; do
    # whichever task took it up (the requeued one, or the resubmitted array's)
    grep -qF "resuming $d from global step " "$LOGS"/*.err ||
        die "no task resumed $d from its checkpoint (logs in $LOGS)"
    say "resumed from its checkpoint: $(basename "$d")"
done
# one folder per run, nothing else beside them but the shared stages and slurm/
n=$(find "$FAULT/slurm_smoke" -mindepth 1 -maxdepth 1 -type d -name '*seed=*' | wc -l)
[ "$n" = 6 ] || die "expected 6 run folders, found $n"
compare "$WORK/local/slurm_smoke/summary.csv" "$FAULT/slurm_smoke/summary.csv" ||
    die "summary after cancel + requeue + resubmit differs from the local one"
phase faults "$t"

phase total "$T0"
echo "slurm_test passed: ${PHASES[*]}"
