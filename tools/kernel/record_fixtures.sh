#!/bin/sh
#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
#
# Guest job (busybox sh inside the test initramfs, no python needed): build
# MD RAID1 over two nvmet-tcp namespaces on 127.0.0.1 the way os-brick does,
# walk it through faults and heals, and after every step copy /proc/mdstat,
# the md and nvme sysfs trees and the mdadm / nvme-cli outputs into
# $OUT/<nn-state>/, laid out as a root (proc/, sys/, dev/md, run/mdadm, cmd/) so that
# read_host_state(root=<dir>) can read it back.
# Run from the host with tools/kernel/record-fixtures.

# Written to tmpfs (a file written over 9p costs ~0.1 s under TCG) and
# handed over as one tar file at the end.
OUT=/tmp/fixtures
RESULT=${RESULT:-/work/fixtures.tar}
IMG=/run/img
CFG=/sys/kernel/config/nvmet
NQN=nqn.2026-01.org.openstack:resilience-vol
SIZE_MB=${SIZE_MB:-32}
mkdir -p "$OUT" "$IMG"

log() { read -r up _ < /proc/uptime; echo "RS-RECORD $up $*"; }

# copy_file SRC DEST: shell builtins only (a fork costs ~50 ms under TCG)
copy_file() {
    { while IFS= read -r line || [ -n "$line" ]; do
          printf '%s\n' "$line"
      done < "$1"; } > "$2" 2>/dev/null || rm -f "$2"
}

# copy_tree SRC DEST DEPTH: regular readable files and symlinks of a sysfs
# directory (no following of links), DEPTH levels deep.
copy_tree() {
    [ -d "$1" ] || return 0
    mkdir -p "$2"
    for entry in "$1"/* "$1"/.[!.]*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        name=${entry##*/}
        case "$name" in
            power|subsystem|bdi|trace|queue|integrity|mq|hwmon*|\
            slaves|holders|firmware_node|driver|uevent|bus|ng*) continue ;;
        esac
        if [ -L "$entry" ]; then
            ln -s "$(readlink "$entry")" "$2/$name"
        elif [ -d "$entry" ]; then
            [ "$3" -gt 1 ] && copy_tree "$entry" "$2/$name" $(($3 - 1))
        elif [ -r "$entry" ]; then
            copy_file "$entry" "$2/$name"
        fi
    done
}

# copy_extras SRC DEST: the power/, subsystem and uevent entries that
# copy_tree leaves out
copy_extras() {
    [ -L "$1/subsystem" ] && ln -s "$(readlink "$1/subsystem")" \
        "$2/subsystem"
    [ -f "$1/uevent" ] && copy_file "$1/uevent" "$2/uevent"
    [ -d "$1/power" ] && copy_tree "$1/power" "$2/power" 1
    return 0
}

# copy_links SRC DEST: the symlinks of a sysfs directory, as they are
copy_links() {
    [ -d "$1" ] || return 0
    mkdir -p "$2"
    for entry in "$1"/*; do
        [ -L "$entry" ] && ln -s "$(readlink "$entry")" "$2/${entry##*/}"
    done
}

# snapshot NAME: the state as a root tree laid out like the real one
# (/sys/block and /sys/class entries are links into /sys/devices), so
# relative links such as md's dev-*/block or a namespace's device resolve
# inside the copy.
snapshot() {
    dest="$OUT/$1"
    log "snapshot $1"
    rm -rf "$dest"
    virt=sys/devices/virtual
    mkdir -p "$dest/proc" "$dest/cmd" "$dest/dev/md" "$dest/run/mdadm"
    # mdstat and md sysfs first and back to back, so they agree
    copy_file /proc/mdstat "$dest/proc/mdstat"
    for md in /$virt/block/md*; do
        [ -d "$md/md" ] || continue
        copy_tree "$md/md" "$dest/$virt/block/${md##*/}/md" 3
        copy_file "$md/size" "$dest/$virt/block/${md##*/}/size"
    done
    log "snapshot $1: md done"
    copy_tree /$virt/nvme-fabrics/ctl "$dest/$virt/nvme-fabrics/ctl" 3
    # the ctl device's own entries sit next to the controllers: keep them,
    # a reader listing the directory must cope with them
    copy_extras /$virt/nvme-fabrics/ctl "$dest/$virt/nvme-fabrics/ctl"
    copy_tree /$virt/nvme-subsystem "$dest/$virt/nvme-subsystem" 3
    copy_links /sys/block "$dest/sys/block"
    for class in nvme nvme-subsystem nvme-fabrics; do
        copy_links "/sys/class/$class" "$dest/sys/class/$class"
    done
    copy_links /dev/md "$dest/dev/md"
    [ -f /run/mdadm/map ] && copy_file /run/mdadm/map "$dest/run/mdadm/map"
    for md in /dev/md[0-9]*; do
        [ -b "$md" ] || continue
        # mdadm --detail blocks while a leg's I/O is queued (reconnecting
        # controller): bound it
        timeout 5 mdadm --detail --export "$md" \
            > "$dest/cmd/mdadm-detail-export" 2>&1 || \
            echo "RS-TIMEOUT rc=$?" >> "$dest/cmd/mdadm-detail-export"
        timeout 5 mdadm --detail "$md" > "$dest/cmd/mdadm-detail" 2>&1 || \
            echo "RS-TIMEOUT rc=$?" >> "$dest/cmd/mdadm-detail"
    done
    timeout 5 nvme list-subsys > "$dest/cmd/nvme-list-subsys" 2>&1
    timeout 5 nvme list-subsys -o json > "$dest/cmd/nvme-list-subsys.json" 2>&1
    timeout 5 nvme list -o json > "$dest/cmd/nvme-list.json" 2>&1
    log "snapshot $1: done"
}

# bounded_snapshot NAME: a snapshot that may block on a hung device is
# abandoned after 40 s (and says so in its directory)
bounded_snapshot() {
    snapshot "$1" &
    pid=$!
    if ! wait_for 40 eval '! kill -0 $pid 2>/dev/null'; then
        log "snapshot $1 blocked"
        echo "snapshot blocked after 40 s" > "$OUT/$1/BLOCKED"
    fi
}

# export_replica N PORT: file-backed namespace (buffered_io: tmpfs has no
# O_DIRECT) in subsystem $NQN-rN, listening on 127.0.0.1:PORT
export_replica() {
    sub=$CFG/subsystems/$NQN-r$1
    truncate -s "${SIZE_MB}M" "$IMG/r$1.img"
    mkdir "$sub"
    echo 1 > "$sub/attr_allow_any_host"
    mkdir "$sub/namespaces/1"
    echo "$IMG/r$1.img" > "$sub/namespaces/1/device_path"
    echo 1 > "$sub/namespaces/1/buffered_io"
    echo 1 > "$sub/namespaces/1/enable"
    port=$CFG/ports/$1
    mkdir "$port"
    echo tcp > "$port/addr_trtype"
    echo ipv4 > "$port/addr_adrfam"
    echo 127.0.0.1 > "$port/addr_traddr"
    echo "$2" > "$port/addr_trsvcid"
    ln -s "$sub" "$port/subsystems/$NQN-r$1"
}

# dev_of N: kernel name of the namespace of replica N (multipath head)
dev_of() {
    for d in /sys/class/nvme-subsystem/nvme-subsys*; do
        if [ "$(cat "$d/subsysnqn")" = "$NQN-r$1" ]; then
            for ns in "$d"/nvme*n*; do
                [ -d "$ns" ] && { echo "${ns##*/}"; return 0; }
            done
        fi
    done
    return 1
}

# wait_for SECONDS COMMAND...: poll every 0.2 s until COMMAND succeeds
wait_for() {
    limit=$(($1 * 5)); shift
    while [ "$limit" -gt 0 ]; do
        "$@" && return 0
        sleep 0.2
        limit=$((limit - 1))
    done
    log "timeout waiting for: $*"
    return 1
}

md_is() { [ "$(cat /sys/block/md127/md/$1)" = "$2" ]; }
ctl_gone() { ! dev_of "$1" > /dev/null; }
ctl_state_is() {
    for c in /sys/class/nvme-fabrics/ctl/nvme*; do
        [ "$(cat "$c/subsysnqn")" = "$NQN-r$1" ] && \
            [ "$(cat "$c/state")" = "$2" ] && return 0
    done
    return 1
}

connect() {  # connect N PORT EXTRA-ARGS...
    n=$1 port=$2; shift 2
    nvme connect -a 127.0.0.1 -s "$port" -t tcp -n "$NQN-r$n" -Q 128 "$@"
    wait_for 10 dev_of "$n"
}

export_replica 1 4420
export_replica 2 4421
# the first leg as os-brick connects it, the second with a finite loss
# timeout so the controller-loss steps end by themselves
connect 1 4420 -l -1
connect 2 4421 --ctrl-loss-tmo=3 --reconnect-delay=1
A=$(dev_of 1); B=$(dev_of 2)
mdadm -C /dev/md/vol1 -R -N vol1 --level 1 --raid-devices=2 \
    --bitmap=internal --homehost=any --failfast --assume-clean \
    "/dev/$A" "/dev/$B"
wait_for 10 test -e /dev/md/vol1
bounded_snapshot 01-clean

mdadm /dev/md127 --fail "/dev/$B"
bounded_snapshot 02-leg-failed
mdadm /dev/md127 --remove "/dev/$B"
bounded_snapshot 03-leg-removed
mdadm --zero-superblock "/dev/$B"
# throttle the rebuild so the snapshot sees it in progress
echo 1000 > /proc/sys/dev/raid/speed_limit_max
mdadm /dev/md127 --add "/dev/$B"
wait_for 10 md_is sync_action recover
bounded_snapshot 04-recovering
echo 200000 > /proc/sys/dev/raid/speed_limit_max
wait_for 60 md_is sync_action idle
bounded_snapshot 05-recovered

# controller loss on leg B: drop the port's link to its subsystem, then
# write so md notices (md only fails a leg on a failed I/O)
rm "$CFG/ports/2/subsystems/$NQN-r2"
dd if=/dev/urandom of=/dev/md127 bs=4k count=4 oflag=direct 2>&1 &
wait_for 10 ctl_state_is 2 connecting
bounded_snapshot 06-ctrl-connecting
wait_for 30 ctl_gone 2
wait_for 30 md_is degraded 1
wait
bounded_snapshot 07-ctrl-lost

# the port comes back: reconnect, remove the detached leg, --re-add
ln -s "$CFG/subsystems/$NQN-r2" "$CFG/ports/2/subsystems/$NQN-r2"
connect 2 4421 --ctrl-loss-tmo=3 --reconnect-delay=1
B2=$(dev_of 2)
mdadm /dev/md127 --remove failed
mdadm /dev/md127 --remove detached
bounded_snapshot 08-reconnected
echo 1000 > /proc/sys/dev/raid/speed_limit_max
mdadm /dev/md127 --re-add "/dev/$B2"
bounded_snapshot 09-readded
echo 200000 > /proc/sys/dev/raid/speed_limit_max
wait_for 60 md_is sync_action idle
bounded_snapshot 10-readd-synced

# leg A was connected like os-brick does (ctrl_loss_tmo -1: reconnect for
# ever).  Without fast_io_fail_tmo, I/O to the lost namespace is requeued
# for ever, md never fails the leg and the array hangs; so set it first,
# as the agent does for the controllers of its legs.
ctl_attr() {  # ctl_attr N ATTR VALUE: write a sysfs attribute of leg N
    for c in /sys/class/nvme-fabrics/ctl/nvme*; do
        if [ "$(cat "$c/subsysnqn")" = "$NQN-r$1" ]; then
            echo "$3" > "$c/$2" && log "wrote $2=$3 to ${c##*/}" && return 0
        fi
    done
    log "could not write $2 of leg $1"
}
ctl_attr 1 fast_io_fail_tmo 2
rm "$CFG/ports/1/subsystems/$NQN-r1"
dd if=/dev/urandom of=/dev/md127 bs=4k count=4 oflag=direct 2>&1 &
wait_for 15 ctl_state_is 1 connecting
bounded_snapshot 11-ctrl-reconnecting
wait_for 30 md_is degraded 1
wait
bounded_snapshot 12-fast-io-failed
# the port comes back: the controller reconnects by itself (same device
# name); remove the faulty leg and --re-add it (bitmap resync)
ln -s "$CFG/subsystems/$NQN-r1" "$CFG/ports/1/subsystems/$NQN-r1"
wait_for 30 ctl_state_is 1 live
bounded_snapshot 13-ctrl-back
mdadm /dev/md127 --remove failed
echo 1000 > /proc/sys/dev/raid/speed_limit_max
mdadm /dev/md127 --re-add "/dev/$A"
bounded_snapshot 14-readded-same-name
echo 200000 > /proc/sys/dev/raid/speed_limit_max
wait_for 60 md_is sync_action idle
bounded_snapshot 15-readd-synced
dmesg > "$OUT/dmesg.txt"
tar -C "${OUT%/*}" -cf "$RESULT" "${OUT##*/}"
log done
