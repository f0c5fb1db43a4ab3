#!/bin/bash
# Puts the test signatures into an empty database volume, then runs clamd in the foreground.
set -eu
mkdir -p /run/clamav
chown clamav:clamav /run/clamav /var/lib/clamav
if ! ls /var/lib/clamav/*.?db >/dev/null 2>&1 && ! ls /var/lib/clamav/*.cvd >/dev/null 2>&1; then
  install -o clamav -g clamav -m 644 /usr/local/share/clamav-test/* /var/lib/clamav/
fi
exec clamd --foreground=true "$@"
