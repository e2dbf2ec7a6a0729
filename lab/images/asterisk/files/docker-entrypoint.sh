#!/bin/sh
# Mimics andrius/asterisk's entrypoint: remap the asterisk user to PUID/PGID,
# fix ownership of the data volumes, then run the command as given.
set -e
PUID="${PUID:-1000}"
PGID="${PGID:-1000}"
if [ "$(id -g asterisk)" != "$PGID" ]; then groupmod -o -g "$PGID" asterisk; fi
if [ "$(id -u asterisk)" != "$PUID" ]; then usermod -o -u "$PUID" asterisk; fi
for d in /var/lib/asterisk /var/spool/asterisk /var/log/asterisk /var/run/asterisk /etc/asterisk; do
  mkdir -p "$d"
  chown -R asterisk:asterisk "$d"
done
exec "$@"
