#!/usr/bin/env bash
# Installs the real DICOM peers the test suite talks to (and the libraries
# Qt needs offscreen) when they are missing and we are root; otherwise says
# what is missing and lets the suite skip those tests with a reason.
set -u
need=()
command -v storescu  >/dev/null || need+=(dcmtk)
command -v Orthanc   >/dev/null || [ -x /usr/sbin/Orthanc ] || need+=(orthanc)
command -v dciodvfy  >/dev/null || need+=(dicom3tools)
command -v xorriso   >/dev/null || need+=(xorriso)
command -v openssl   >/dev/null || need+=(openssl)   # run-time test CA for the TLS tests
command -v genisoimage >/dev/null || need+=(genisoimage)
command -v Xvfb      >/dev/null || need+=(xvfb)
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || need+=(libegl1)
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || need+=(libgl1)
ldconfig -p 2>/dev/null | grep -q 'libxkbcommon.so.0' || need+=(libxkbcommon0)
ldconfig -p 2>/dev/null | grep -q 'libfontconfig.so.1' || need+=(libfontconfig1)
ldconfig -p 2>/dev/null | grep -q 'libdbus-1.so.3' || need+=(libdbus-1-3)
ldconfig -p 2>/dev/null | grep -q 'libglib-2.0.so.0' || need+=(libglib2.0-0)
# Qt's xcb platform plugin (the GUI under Xvfb or a real X display)
ldconfig -p 2>/dev/null | grep -q 'libxcb-cursor.so.0' || need+=(libxcb-cursor0)
ldconfig -p 2>/dev/null | grep -q 'libxcb-icccm.so.4' || need+=(libxcb-icccm4)
ldconfig -p 2>/dev/null | grep -q 'libxcb-keysyms.so.1' || need+=(libxcb-keysyms1)
ldconfig -p 2>/dev/null | grep -q 'libxcb-image.so.0' || need+=(libxcb-image0)
ldconfig -p 2>/dev/null | grep -q 'libxcb-render-util.so.0' || need+=(libxcb-render-util0)
ldconfig -p 2>/dev/null | grep -q 'libxkbcommon-x11.so.0' || need+=(libxkbcommon-x11-0)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing test peers: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "missing test peers (run as root to install): ${need[*]}" >&2
fi
exit 0
