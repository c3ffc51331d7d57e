#!/bin/sh
# make install / uninstall with PREFIX and DESTDIR: the crontab names the
# installed paths, the scripts run from where they are installed, and
# uninstall removes only what install put there.
. "${0%/*}/lib.sh"
root=$T/root
prefix=/opt/qrpool-test
# -o all: the tools are built already (by make check, in $QRPOOL_BIN). No MAKEFLAGS:
# under make -jN check, the inner make would warn about the jobserver.
run env -u MAKEFLAGS -u MFLAGS make -s -C "$ROOT" -o all install DESTDIR="$root" PREFIX="$prefix" BIN="$QRPOOL_BIN"
is "make install: exit 0" "$rc:$(cat "$T/err")" "0:"
data=$root$prefix/share/qrpool
ok "the tools are installed" -- test -x "$root$prefix/bin/qrpool-fetch" -a -x "$root$prefix/bin/qrpool-claim"
ok "the man pages are installed" -- test -f "$root$prefix/share/man/man5/qrpool.cfg.5"
like "the crontab names the installed scripts" "$(cat "$data/cron/qrpool.crontab")" \
  "$prefix/share/qrpool/scripts/nightly-fill"
is "and no other prefix" "$(grep -c /usr/local "$data/cron/qrpool.crontab")" 0
run "$data/scripts/nightly-fill" -h
is "an installed script runs (its -h)" "$rc" 0
# The logrotate rules, as installed, with the log directory and user of this
# test: a job log is rotated, a run after it writes a new one.
command -v logrotate >/dev/null || PATH=$PATH:/usr/sbin
mkdir -p "$T/log"
printf 'old night\n' >"$T/log/audit.log"
sed -e "s|/var/log/qrpool|$T/log|" -e "s|qrpool qrpool|$(id -un) $(id -gn)|" \
  "$data/cron/qrpool.logrotate" >"$T/logrotate.conf"
run logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf"
is "logrotate takes the rules: exit 0" "$rc:$(cat "$T/err")" "0:"
is "... the log rotated, a new empty one made" "$(cat "$T/log/audit.log.1"):$(wc -c <"$T/log/audit.log")" "old night:0"
echo "site notes" >"$data/NOTES.local"
run env -u MAKEFLAGS -u MFLAGS make -s -C "$ROOT" -o all uninstall DESTDIR="$root" PREFIX="$prefix" BIN="$QRPOOL_BIN"
is "make uninstall: exit 0" "$rc:$(cat "$T/err")" "0:"
is "uninstall removes every file install put there" \
  "$(find "$root" -type f | sed "s|^$root||")" "$prefix/share/qrpool/NOTES.local"
