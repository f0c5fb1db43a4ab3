#!/bin/bash
set -eu
printf '%s:{PLAIN}%s::::::\n' "${IMAP_USER:?}" "${IMAP_PASSWORD:?}" > /etc/dovecot/users
mkdir -p /srv/mail && chown vmail:vmail /srv/mail
exec dovecot -F
