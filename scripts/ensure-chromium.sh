#!/usr/bin/env bash
# The browser test needs Debian's chromium and its chromedriver (never a browser that
# downloads itself). Installs them with apt-get when missing and we may; else says how.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[browser-deps] installing Debian's chromium and chromium-driver ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
  exit 0
fi
echo "error: /usr/bin/chromium and /usr/bin/chromedriver are needed for the browser test;" \
     "install them with: sudo apt-get install chromium chromium-driver" >&2
exit 1
