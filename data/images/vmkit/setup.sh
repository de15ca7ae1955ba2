#!/bin/sh
# Runs once while the image is built (both recipes): records what the course reads from the
# image in /vmkit, so that the host never has to run anything from it to learn it.
set -eu
kernel=$(cd /boot && ls vmlinuz-* | sort -V | tail -n 1)
mkdir -p /vmkit
ln -sf "/boot/$kernel" /vmkit/vmlinuz
echo "${kernel#vmlinuz-}" > /vmkit/kernel-version
qemu-system-x86_64 --version | head -n 1 > /vmkit/qemu-version
busybox --list-full > /vmkit/busybox-applets
# System.map is only for debugging the kernel; any generated initramfs is never used.
rm -f /boot/System.map-* /boot/initrd.img-* /vmlinuz* /initrd.img*
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
