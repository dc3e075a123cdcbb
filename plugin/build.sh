#!/usr/bin/env bash
# Packages the Rundeck plugin: dockmaster-rundeck-<version>-plugin.zip holding
# dockmaster-rundeck-<version>-plugin/{plugin.yaml, contents/dockmaster,
# resources/icon.png}, the layout Rundeck's ScriptPluginProviderLoader wants.
# Rundeck's libext scanner (ScriptPluginScanner) only looks at files whose
# name ends in `-plugin.zip`, and the top folder must be the file's name
# without `.zip`: keep both when renaming.
#
#   plugin/build.sh             # packages target/debug/dockmaster (builds it)
#                               #   → target/dockmaster-rundeck-<version>-plugin.zip
#   plugin/build.sh --release   # packages target/release/dockmaster
#                               #   → target/dockmaster-rundeck-<version>-plugin.zip
#   plugin/build.sh --portable  # the release binary built against glibc 2.17
#                               # (runs on RHEL/CentOS 7+, Ubuntu 14.04+, Debian 8+),
#                               # stripped → target/portable/dockmaster-rundeck-<version>-plugin.zip
#
# The binary must match the Rundeck server's platform (WorkflowStep and
# WorkflowNodeStep run on the server): --portable is the one to ship.
#
# --portable builds with `cargo zigbuild` (zig as the C compiler and linker,
# against zig's glibc 2.17 stubs), using only the installed
# x86_64-unknown-linux-gnu Rust target. It keeps its tools in plugin/.venv
# (ignored by git): a Python venv with the `ziglang` package from PyPI, and
# cargo-zigbuild from crates.io installed there with `cargo install --root`.
# Needs python3 with venv, and network access the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so every machine builds with the same tools; bump deliberately.
CARGO_ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.17.1
RUST_TARGET=x86_64-unknown-linux-gnu
GLIBC_VERSION=2.17

die() { printf 'plugin/build.sh: %s\n' "$*" >&2; exit 1; }

# Makes plugin/.venv hold the pinned zig and cargo-zigbuild; prints nothing.
portable_tools() {
    local tools=plugin/.venv
    if [ ! -x "$tools/bin/python3" ]; then
        python3 -m venv "$tools" || die "python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv)"
    fi
    if [ "$("$tools/bin/python3" -m pip show ziglang 2>/dev/null | sed -n 's/^Version: //p')" != "$ZIGLANG_VERSION" ]; then
        echo "installing ziglang ${ZIGLANG_VERSION} into ${tools} (PyPI)" >&2
        "$tools/bin/python3" -m pip install --quiet --disable-pip-version-check "ziglang==${ZIGLANG_VERSION}" >&2
    fi
    if [ "$("$tools/bin/cargo-zigbuild" --version 2>/dev/null)" != "cargo-zigbuild ${CARGO_ZIGBUILD_VERSION}" ]; then
        echo "installing cargo-zigbuild ${CARGO_ZIGBUILD_VERSION} into ${tools} (crates.io)" >&2
        cargo install --locked --quiet --force --root "$tools" --version "$CARGO_ZIGBUILD_VERSION" cargo-zigbuild >&2
    fi
}

out_dir=target
case "${1:-}" in
    "")
        cargo build --quiet
        binary=target/debug/dockmaster
        ;;
    --release)
        cargo build --release --quiet
        binary=target/release/dockmaster
        ;;
    --portable)
        portable_tools
        # The venv's bin first: cargo-zigbuild, and the python3 that has
        # ziglang (cargo-zigbuild runs `python3 -m ziglang` when no `zig` is
        # on PATH). Stripping is set for this build only (the profile's strip
        # setting through cargo's environment), not in Cargo.toml.
        PATH="$PWD/plugin/.venv/bin:$PATH" CARGO_PROFILE_RELEASE_STRIP=symbols \
            cargo zigbuild --release --quiet --target "${RUST_TARGET}.${GLIBC_VERSION}" >&2
        binary="target/${RUST_TARGET}/release/dockmaster"
        version_line="$("$binary" --version)" || die "the portable binary does not run: $binary --version failed"
        echo "built ${binary} (${version_line}, $(stat -c %s "$binary") bytes)" >&2
        out_dir=target/portable
        ;;
    *)
        die "unknown argument '$1' (usage: plugin/build.sh [--release | --portable])"
        ;;
esac

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)"
name="dockmaster-rundeck-${version}-plugin"
mkdir -p "$out_dir"
out="${out_dir}/${name}.zip"
python3 - "$name" "$out" "$binary" "$version" <<'PY'
import sys, zipfile, datetime
name, out, binary, version = sys.argv[1:]
yaml = open("plugin/plugin.yaml").read()
yaml = yaml.replace("@VERSION@", version).replace("@DATE@", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
def add(z, path, data, mode):
    info = zipfile.ZipInfo(f"{name}/{path}", date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)
with zipfile.ZipFile(out, "w") as z:
    for d in ("", "contents/", "resources/"):
        info = zipfile.ZipInfo(f"{name}/{d}", date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr = (0o040755 << 16) | 0x10
        z.writestr(info, b"")
    add(z, "plugin.yaml", yaml, 0o644)
    add(z, "contents/dockmaster", open(binary, "rb").read(), 0o755)
    add(z, "resources/icon.png", open("plugin/resources/icon.png", "rb").read(), 0o644)
print(out)
PY
