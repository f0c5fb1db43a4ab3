#!/bin/bash
# Healthy when clamd answers PING with PONG on its TCP port (what the official image's
# clamdcheck.sh asks too).
set -eu
exec 3<>/dev/tcp/127.0.0.1/3310
printf 'zPING\0' >&3
IFS= read -r -d '' -t 5 reply <&3 || true
[ "$reply" = PONG ] || { echo "clamd did not answer PONG" >&2; exit 1; }
