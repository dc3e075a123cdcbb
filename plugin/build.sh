#!/usr/bin/env bash
# Packages the Rundeck plugin: target/dockmaster-rundeck-plugin-<version>.zip
# holding dockmaster-rundeck-plugin-<version>/{plugin.yaml, contents/dockmaster,
# resources/icon.png}, the layout Rundeck's ScriptPluginProviderLoader wants.
#
#   plugin/build.sh            # packages target/debug/dockmaster (builds it)
#   plugin/build.sh --release  # packages target/release/dockmaster
#
# The binary must match the Rundeck server's platform (WorkflowStep and
# WorkflowNodeStep run on the server).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
if [ "${1:-}" = "--release" ]; then profile=release; cargo build --release --quiet; else cargo build --quiet; fi
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)"
name="dockmaster-rundeck-plugin-${version}"
out="target/${name}.zip"
python3 - "$name" "$out" "target/${profile}/dockmaster" "$version" <<'PY'
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
