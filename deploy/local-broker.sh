#!/usr/bin/env bash
# Make sure a Mosquitto broker answers on 127.0.0.1:${PORT:-1883} (anonymous, loopback only).
# Installs mosquitto with apt-get when it is missing; leaves an already-running broker alone.
# Used by .ci/run and `make broker` / `make test` / `make demo`.
set -euo pipefail

PORT="${RULEDRIVE_BROKER_PORT:-1883}"
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

if listening; then
  echo "broker: something already listens on 127.0.0.1:$PORT; using it"
  exit 0
fi

MOSQ="$(command -v mosquitto || true)"
[ -z "$MOSQ" ] && [ -x /usr/sbin/mosquitto ] && MOSQ=/usr/sbin/mosquitto
if [ -z "$MOSQ" ]; then
  echo "broker: installing mosquitto (apt-get install mosquitto)"
  $SUDO apt-get update && $SUDO apt-get install -y mosquitto
  MOSQ="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
fi

# The settings every local broker shares (bus/broker.py reads the same file): listener first,
# then the shared settings, then where this one keeps its pid and log.
SHARED_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bus/mosquitto-local.conf"
CONF_DIR="${TMPDIR:-/tmp}/ruledrive-broker-$PORT"
mkdir -p "$CONF_DIR"
{
  echo "listener $PORT 127.0.0.1"
  cat "$SHARED_CONF"
  echo "pid_file $CONF_DIR/mosquitto.pid"
  echo "log_dest file $CONF_DIR/mosquitto.log"
} >"$CONF_DIR/mosquitto.conf"
# Debian's package runs as user mosquitto when started as root; it only needs the pid/log dir.
chmod 0777 "$CONF_DIR"
"$MOSQ" -d -c "$CONF_DIR/mosquitto.conf"
for _ in $(seq 50); do
  if listening; then echo "broker: mosquitto started on 127.0.0.1:$PORT ($CONF_DIR)"; exit 0; fi
  sleep 0.1
done
echo "broker: mosquitto did not come up on 127.0.0.1:$PORT; see $CONF_DIR/mosquitto.log" >&2
exit 1
