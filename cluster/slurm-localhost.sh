#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, from Debian's packages, for tests and trying the SLURM profile.
#
#   cluster/slurm-localhost.sh up        start munged, slurmctld and slurmd (idempotent: a running cluster is kept)
#   cluster/slurm-localhost.sh down      stop what `up` started and remove its state (idempotent)
#   cluster/slurm-localhost.sh status    exit 0 when the node takes jobs, print sinfo
#   cluster/slurm-localhost.sh exec CMD  run CMD where the cluster is reachable (sbatch, squeue, snakemake ...)
#
# Needs root and the packages named in PACKAGES below. Why it is built the way it is:
# - slurmctld and slurmd listen on every address, so they live in a network namespace that has only loopback;
#   nothing outside this machine (or outside the namespace) can reach them. Clients enter the namespace with
#   `nsenter --net=...`, not `ip netns exec`, because the latter remounts /sys and slurmd would lose cgroups.
# - loopback gets a second address (127.0.0.2/8): on some kernels/sandboxes slurm cannot resolve 127.0.0.1 otherwise.
# - the config is written to $STATE_DIR/slurm.conf and also to /etc/slurm/slurm.conf: the Snakemake jobstep
#   plugin strips every SLURM_* variable (SLURM_CONF included) before its nested `srun`, which then reads the
#   compiled-in default path.
# - no accounting database: sacct cannot answer, so Snakemake must poll with squeue
#   (--slurm-status-command squeue), and MinJobAge keeps finished jobs visible to squeue long enough. Every finished
#   job is still recorded, by jobcomp/filetxt, in $STATE_DIR/log/jobcomp.log.
set -euo pipefail

STATE_DIR="${ABACUS_SLURM_DIR:-/run/abacus-slurm}"
NETNS="${ABACUS_SLURM_NETNS:-abacus-slurm}"
NETNS_PATH="/run/netns/$NETNS"
SYSTEM_CONF=/etc/slurm/slurm.conf
MARKER="# written by abacus-repro cluster/slurm-localhost.sh"
NODE=localhost
PACKAGES="munge slurmctld slurmd slurm-client"
WAIT_SECONDS="${ABACUS_SLURM_WAIT:-60}"

die() { echo "slurm-localhost: $*" >&2; exit 1; }
say() { echo "slurm-localhost: $*" >&2; }

in_netns() { SLURM_CONF="$STATE_DIR/slurm.conf" nsenter --net="$NETNS_PATH" -- "$@"; }

require_root() {
    [ "$EUID" = 0 ] || die "must run as root (it starts system daemons and a network namespace)"
}

require_packages() {
    local missing=() packages="$PACKAGES" cmd
    for cmd in munged munge unmunge slurmctld slurmd sbatch srun squeue sinfo scontrol scancel ip nsenter runuser; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        [[ " ${missing[*]} " == *" ip "* ]] && packages+=" iproute2"
        [[ " ${missing[*]} " =~ " "(nsenter|runuser)" " ]] && packages+=" util-linux"
        die "missing commands: ${missing[*]}. Install them with:
    apt-get update && apt-get install -y --no-install-recommends $packages"
    fi
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_works; then
        return
    fi
    [ -s /etc/munge/munge.key ] || {
        say "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
        else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    }
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    touch "$STATE_DIR/started-munged"
    local i
    for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
        munge_works && return
        sleep 0.2
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

start_netns() {
    [ -e "$NETNS_PATH" ] || ip netns add "$NETNS"
    nsenter --net="$NETNS_PATH" -- ip link set lo up
    nsenter --net="$NETNS_PATH" -- ip -4 addr show dev lo | grep -q '127\.0\.0\.2/' \
        || nsenter --net="$NETNS_PATH" -- ip addr add 127.0.0.2/8 dev lo
    # Only loopback: the daemons must not be reachable from anywhere else.
    if nsenter --net="$NETNS_PATH" -- ip -o link show | grep -qv ': lo:'; then
        die "network namespace $NETNS has interfaces other than lo; refusing to start daemons in it"
    fi
}

node_hardware() {
    # slurmd -C reports what slurmd itself will detect; configuring more would drain the node.
    local line cpus mem
    line="$(slurmd -C | head -n1)"
    cpus="$(sed -n 's/.*\bCPUs=\([0-9]*\).*/\1/p' <<<"$line")"
    mem="$(sed -n 's/.*\bRealMemory=\([0-9]*\).*/\1/p' <<<"$line")"
    [ -n "$cpus" ] && [ -n "$mem" ] || die "could not read CPUs/RealMemory from 'slurmd -C': $line"
    # Leave room for the OS and the Snakemake process that drives the jobs.
    echo "$cpus $((mem * 9 / 10))"
}

write_config() {
    local cpus mem
    read -r cpus mem < <(node_hardware)
    mkdir -p "$STATE_DIR"/{ctld,spool,log}
    cat >"$STATE_DIR/slurm.conf" <<CONF
$MARKER
# One-node cluster on loopback (see the script for why each setting is here).
ClusterName=abacus-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroup plugins: they need a writable cgroup hierarchy, which containers and CI sandboxes rarely give.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: sacct cannot answer, squeue can (finished jobs stay listed for MinJobAge seconds).
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE_DIR/log/jobcomp.log
MinJobAge=600
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
    if [ -e "$SYSTEM_CONF" ] && ! grep -qF "$MARKER" "$SYSTEM_CONF"; then
        die "$SYSTEM_CONF exists and was not written by this script; refusing to overwrite a real cluster's config"
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    cp "$STATE_DIR/slurm.conf" "$SYSTEM_CONF"
}

node_state() { in_netns sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

cluster_up() {
    [ -e "$NETNS_PATH" ] && pid_alive "$STATE_DIR/slurmctld.pid" && pid_alive "$STATE_DIR/slurmd.pid" \
        && [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing) ]]
}

wait_for() {
    local what="$1" i
    shift
    for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
        "$@" && return 0
        sleep 0.5
    done
    die "$what did not come up within ${WAIT_SECONDS}s; logs: $STATE_DIR/log/"
}

ctld_answers() { in_netns scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_idle() { [[ "$(node_state)" =~ ^(idle|mixed|allocated) ]]; }

cmd_up() {
    require_root
    require_packages
    if cluster_up; then
        say "already up ($STATE_DIR)"
        return 0
    fi
    # A half-started cluster (a crashed daemon, a killed test) is cleaned away before starting again.
    if [ -e "$NETNS_PATH" ] || [ -d "$STATE_DIR" ]; then
        cmd_down
    fi
    mkdir -p "$STATE_DIR"
    start_netns
    start_munge
    write_config
    in_netns slurmctld -f "$STATE_DIR/slurm.conf"
    wait_for "slurmctld" ctld_answers
    in_netns slurmd -f "$STATE_DIR/slurm.conf" -N "$NODE"
    wait_for "slurmd" node_idle
    say "up: node $NODE, partition local ($(in_netns sinfo -h -N -o '%c CPUs, %m MB')); state in $STATE_DIR"
}

stop_pidfile() {
    local pidfile="$1" pid i
    pid_alive "$pidfile" || return 0
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

cmd_down() {
    require_root
    if [ -e "$NETNS_PATH" ] && [ -s "$STATE_DIR/slurm.conf" ] && pid_alive "$STATE_DIR/slurmctld.pid"; then
        # Jobs first, so no job step outlives the cluster.
        in_netns scancel --full --quiet --partition=local 2>/dev/null || true
        local i
        for ((i = 0; i < 30; i++)); do
            [ -z "$(in_netns squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    stop_pidfile "$STATE_DIR/slurmd.pid"
    stop_pidfile "$STATE_DIR/slurmctld.pid"
    if [ -e "$STATE_DIR/started-munged" ]; then
        stop_pidfile /run/munge/munged.pid
    fi
    if [ -e "$SYSTEM_CONF" ] && grep -qF "$MARKER" "$SYSTEM_CONF"; then
        rm -f "$SYSTEM_CONF"
    fi
    if [ -e "$NETNS_PATH" ]; then
        ip netns del "$NETNS"
    fi
    rm -rf "$STATE_DIR"
    say "down"
}

cmd_status() {
    if cluster_up; then
        in_netns sinfo
        return 0
    fi
    say "not up"
    return 1
}

cmd_exec() {
    [ "$#" -gt 0 ] || die "exec needs a command"
    [ -e "$NETNS_PATH" ] || die "not up: run '$0 up' first"
    # exec: the command replaces this shell (nsenter execs it too), so a signal to this process reaches it.
    SLURM_CONF="$STATE_DIR/slurm.conf" exec nsenter --net="$NETNS_PATH" -- "$@"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    exec) shift; [ "${1:-}" = "--" ] && shift; cmd_exec "$@" ;;
    *) echo "usage: $0 up|down|status|exec [--] CMD..." >&2; exit 2 ;;
esac
