#!/bin/sh
# Mimics coturn/coturn's entrypoint: arguments starting with '-' are options
# for turnserver; anything else is run as a command.
set -e
if [ "${1#-}" != "$1" ]; then
  set -- turnserver "$@"
fi
exec "$@"
