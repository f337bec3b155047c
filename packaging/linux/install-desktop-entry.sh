#!/usr/bin/env bash
# Install the gearview desktop entry and icon for the current user (or PREFIX).
set -euo pipefail
prefix="${1:-$HOME/.local}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
resources="$here/gearview/resources"
bin="${GEARVIEW_BIN:-$(command -v gearview || true)}"
if [ -z "$bin" ]; then
  echo "gearview is not on PATH; set GEARVIEW_BIN=/path/to/gearview" >&2
  exit 1
fi
install -d "$prefix/share/applications" "$prefix/share/icons/hicolor/scalable/apps"
install -m 0644 "$resources/gearview.svg" "$prefix/share/icons/hicolor/scalable/apps/gearview.svg"
sed "s|^Exec=.*|Exec=$bin|" "$resources/gearview.desktop" > "$prefix/share/applications/gearview.desktop"
chmod 0644 "$prefix/share/applications/gearview.desktop"
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$prefix/share/applications/gearview.desktop"
fi
echo "installed gearview.desktop and icon under $prefix/share"
