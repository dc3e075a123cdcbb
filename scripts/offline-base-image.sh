#!/usr/bin/env bash
# Makes a minimal base image without a registry, for building the Dockerfile
# on machines that cannot pull `rust:…` or `debian:…` (CI):
#
#   scripts/offline-base-image.sh TAG BINARY
#
# The image holds a static busybox (sh, cp, mkdir, chown…; the one the
# repository ships for its example), the shared libraries BINARY needs (from
# this machine, by ldd), the CA certificates, and a world-writable /tmp.
# Build with --build-arg RUST_IMAGE=TAG --build-arg RUNTIME_IMAGE=TAG and
# BINARY at prebuilt/dockmaster in the context.
set -euo pipefail
tag="$1"
binary="$2"
repo="$(cd "$(dirname "$0")/.." && pwd)"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,etc/ssl/certs,tmp,usr/local/bin,var/lib}
chmod 1777 "$root/tmp"
cp "$repo/examples/hello/image/busybox" "$root/bin/busybox"
for applet in sh cp mkdir chown cat ls rm env true; do
    ln -s busybox "$root/bin/$applet"
done
# The dynamic loader and every library the binary links, at the same paths.
ldd "$binary" | awk '/=> \// { print $3 } /^\s*\/.*ld-linux/ { print $1 }' | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
if [ -e /lib64/ld-linux-x86-64.so.2 ]; then
    mkdir -p "$root/lib64"
    cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
fi
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi
printf 'root:x:0:0:root:/root:/bin/sh\ndockmaster:x:10001:10001::/var/lib/dockmaster:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ndockmaster:x:10001:\n' >"$root/etc/group"
tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/bin' - "$tag" >/dev/null
echo "$tag"
