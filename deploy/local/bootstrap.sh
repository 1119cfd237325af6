#!/usr/bin/env bash
# Installs what is missing on a fresh machine: uv, the Python environment (from uv.lock),
# Java and Maven for the local Kafka broker, PostgreSQL, Chromium, Caddy. A second run does
# nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export UV_PYTHON_DOWNLOADS=never
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v uv >/dev/null && [ ! -x "$HOME/.local/bin/uv" ]; then
  echo "bootstrap: installing uv from PyPI"
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
fi
UV=$(command -v uv || echo "$HOME/.local/bin/uv")

python=$(command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
if [ ! -x .venv/bin/python ] || [ uv.lock -nt .venv/.synced ]; then
  "$UV" sync --frozen --python "$python" --quiet
  touch .venv/.synced
fi

command -v java >/dev/null || { echo "bootstrap: installing Java 17"; apt_install openjdk-17-jre-headless; }
command -v mvn >/dev/null || { echo "bootstrap: installing Maven"; apt_install maven; }
command -v promtool >/dev/null || { echo "bootstrap: installing promtool (Prometheus, alert rule checks)"; apt_install --no-install-recommends prometheus; }
command -v chromium >/dev/null || { echo "bootstrap: installing Chromium (browser tests)"; apt_install chromium; }
command -v caddy >/dev/null || { echo "bootstrap: installing Caddy (the one-origin reverse proxy)"; apt_install caddy; }
bash deploy/local/postgres.sh install
bash deploy/local/kafka.sh fetch
