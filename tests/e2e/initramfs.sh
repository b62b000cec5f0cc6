#!/usr/bin/env bash
# Builds the e2e guest's initramfs: busybox-static and its applets, the
# virtio modules from the Debian kernel, the static vmpower-guest, the
# hostile payloads and tests/e2e/init as /init.
#
# Usage: GUEST_BIN=... KMODS=.../lib/modules/VER/kernel PAYLOADS=DIR initramfs.sh OUT.cpio.gz
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
cp "$here/init" "$stage/init"
chmod 0755 "$stage/init" "$stage/bin/vmpower-guest"
# PID 1 needs a console before devtmpfs is mounted.
mknod -m 0600 "$stage/dev/console" c 5 1
mknod -m 0666 "$stage/dev/null" c 1 3
(cd "$stage" && find . | sort | /bin/busybox cpio -o -H newc -R 0:0 2>/dev/null | gzip -1) >"$out"
