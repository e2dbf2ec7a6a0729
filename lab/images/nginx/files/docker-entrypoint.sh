#!/bin/sh
# Mimics nginx:alpine's entrypoint: run the command (nginx -g 'daemon off;').
set -e
exec "$@"
