#!/usr/bin/env bash
# Builds the e2e guest's initramfs: busybox-static and its applets, the
# virtio modules from the Debian kernel, the static vmpower-guest, the
# hostile payloads and tests/e2e/init as /init; with DPDK_GUEST set (for
# scenario 7), that dynamically linked program too, with every shared
# library ldd lists for it (DPDK's, libc, the loader) and libgcc_s.so.1,
# which glibc loads at run time (for unwinding) and ldd does not list.
#
# Usage: GUEST_BIN=... KMODS=.../lib/modules/VER/kernel PAYLOADS=DIR [DPDK_GUEST=...] initramfs.sh OUT.cpio.gz
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,lib/modules,payloads}
cp /bin/busybox "$stage/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$stage/bin/$applet"
done
# Load order matters (no modprobe, no modules.dep): dependencies first.
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
    virtio_console failover net_failover virtio_net; do
    f=$(find "$KMODS" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)
    [ -n "$f" ] || { echo "initramfs: module $m not found under $KMODS" >&2; exit 1; }
    case "$f" in
        *.ko.xz) xz -dc "$f" >"$stage/lib/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" >"$stage/lib/modules/$m.ko" ;;
        *) cp "$f" "$stage/lib/modules/$m.ko" ;;
    esac
done
cp "$GUEST_BIN" "$stage/bin/vmpower-guest"
cp "$PAYLOADS"/* "$stage/payloads/"
if [ -n "${DPDK_GUEST:-}" ]; then
    cp "$DPDK_GUEST" "$stage/bin/dpdk_power_guest"
    # The libraries at the paths the loader looks for them (cp -L: the
    # file, not the symlink); libgcc_s.so.1 lives beside libc.
    libs=$(ldd "$DPDK_GUEST" | awk '/=> \// {print $3} /^\t\// {print $1}')
    libc=$(echo "$libs" | grep '/libc\.so\.6$')
    for lib in $libs "$(dirname "$libc")/libgcc_s.so.1"; do
        mkdir -p "$stage$(dirname "$lib")"
        cp -L "$lib" "$stage$lib"
    done
fi
cp "$here/init" "$stage/init"
chmod 0755 "$stage/init" "$stage/bin/vmpower-guest"
# PID 1 needs a console before devtmpfs is mounted.
mknod -m 0600 "$stage/dev/console" c 5 1
mknod -m 0666 "$stage/dev/null" c 1 3
(cd "$stage" && find . | sort | /bin/busybox cpio -o -H newc -R 0:0 2>/dev/null | gzip -1) >"$out"
