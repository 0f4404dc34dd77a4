#!/bin/sh
# /init of a sealroot test bed initramfs (busybox ash as PID 1).
#
# 1. mounts proc, sys, devtmpfs, securityfs, /run and /tmp;
# 2. loads the modules listed in /etc/bed/modules (paths below
#    /lib/modules/$(uname -r), in order);
# 3. mounts what /etc/bed/mounts lists ("DEVICE DIR FSTYPE OPTIONS");
# 4. runs /etc/bed/scenario.sh in a subshell with /lib/bed.sh loaded;
# 5. unmounts, reports `@@bed done`, powers off (QEMU runs with -no-reboot).
# With `bed.shell=1` on the kernel command line it opens a shell on the
# console before powering off (for interactive debugging).

export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp

. /lib/bed.sh

# Firmware (OVMF) may have written to every serial port without a final
# newline: start the channel on a fresh line.
echo >>"$BED_CHANNEL"
bed__emit "start - release=$(uname -r) ms=$(bed__ms)"
bed_log "init: kernel $(uname -r), up $(bed__ms) ms"

bed__finish() {
	bed__emit "done - $1 ms=$(bed__ms)"
	bed_log "done: $1"
	if grep -qw 'bed.shell=1' /proc/cmdline; then
		bed_log "bed.shell=1: interactive shell; exit it to power off"
		setsid cttyhack sh -l
	fi
	sync
	poweroff -f
}

release=$(uname -r)
if [ -s /etc/bed/modules ]; then
	while read -r module; do
		name=${module##*/}
		name=${name%%.ko*}
		bed_run "bed:insmod:$name" insmod "/lib/modules/$release/$module" ||
			bed__finish "setup_failed=bed:insmod:$name"
	done </etc/bed/modules
fi

mounted=
if [ -s /etc/bed/mounts ]; then
	while read -r device dir fstype options; do
		mkdir -p "$dir"
		bed_run "bed:mount:$dir" mount -t "$fstype" -o "$options" "$device" "$dir" ||
			bed__finish "setup_failed=bed:mount:$dir"
		mounted="$dir $mounted"
	done </etc/bed/mounts
fi

(cd / && . /etc/bed/scenario.sh)
rc=$?

# Unmount cleanly so the host can read the disks back (debugfs does not
# replay an ext4 journal) and a second boot finds a clean filesystem.
cd /
for dir in $mounted; do
	umount "$dir" 2>/dev/null || bed_run "bed:umount:$dir" mount -o remount,ro "$dir"
done

bed__finish "rc=$rc"
