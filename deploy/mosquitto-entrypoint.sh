#!/bin/sh
# Entry point of the secure "mosquitto" compose service (run as root in the container).
# Mosquitto 2 opens its certificate, key, password and ACL files after dropping to the mosquitto
# user, but the mounted files belong to whoever ran `ruledrive credentials init` (mode 0600).
# Copy them into a directory only the mosquitto user can read, then start the broker.
set -eu
SRC=/run/ruledrive-secrets
DST=/mosquitto/secrets
for f in ca.crt server.crt server.key passwd acl; do
  [ -s "$SRC/$f" ] || {
    echo "missing $SRC/$f: run \`ruledrive credentials init deploy/secrets\` first" >&2
    exit 1
  }
done
rm -rf "$DST"
mkdir -m 700 "$DST"
cp "$SRC/ca.crt" "$SRC/server.crt" "$SRC/server.key" "$SRC/passwd" "$SRC/acl" \
  "$SRC/health.password" "$DST/"
chown -R mosquitto:mosquitto "$DST"
chmod 600 "$DST"/*
exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
