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
# BINDIR and DATADIR of their own: the crontab names them, not PREFIX's.
run env -u MAKEFLAGS -u MFLAGS make -s -C "$ROOT" -o all install DESTDIR="$T/root2" PREFIX="$prefix" \
  BINDIR=/opt/qrpool-bin DATADIR=/opt/qrpool-data BIN="$QRPOOL_BIN"
is "make install with BINDIR and DATADIR: exit 0" "$rc:$(cat "$T/err")" "0:"
like "... the crontab's PATH has BINDIR" "$(cat "$T/root2/opt/qrpool-data/cron/qrpool.crontab")" \
  "PATH=/opt/qrpool-bin:/usr/bin:/bin"
like "... and names the scripts in DATADIR" "$(cat "$T/root2/opt/qrpool-data/cron/qrpool.crontab")" \
  " /opt/qrpool-data/scripts/nightly-fill -u 06:00"
ok "... where they are" -- test -x "$T/root2/opt/qrpool-data/scripts/nightly-fill" -a \
  -x "$T/root2/opt/qrpool-bin/qrpool-fetch"
like "... as the logrotate notes do" "$(cat "$T/root2/opt/qrpool-data/cron/qrpool.logrotate")" \
  "cp /opt/qrpool-data/cron/qrpool.logrotate"
# A BINDIR under /usr/local with another PREFIX: named as given, not rewritten.
run env -u MAKEFLAGS -u MFLAGS make -s -C "$ROOT" -o all install DESTDIR="$T/root3" PREFIX="$prefix" \
  BINDIR=/usr/local/bin BIN="$QRPOOL_BIN"
like "... a BINDIR of /usr/local/bin with PREFIX $prefix: the crontab's PATH has it" \
  "$(cat "$T/root3$prefix/share/qrpool/cron/qrpool.crontab")" "PATH=/usr/local/bin:/usr/bin:/bin"
echo "site notes" >"$data/NOTES.local"
run env -u MAKEFLAGS -u MFLAGS make -s -C "$ROOT" -o all uninstall DESTDIR="$root" PREFIX="$prefix" BIN="$QRPOOL_BIN"
is "make uninstall: exit 0" "$rc:$(cat "$T/err")" "0:"
is "uninstall removes every file install put there" \
  "$(find "$root" -type f | sed "s|^$root||")" "$prefix/share/qrpool/NOTES.local"

# scripts/install-deps as a user who may not install (not root, a sudo that
# asks for a password): 77, said as such, not as apt failing (69). The
# package tools are stand-ins on PATH: nothing is installed.
mkdir "$T/stub"
printf '#!/bin/sh\necho "install ok not-installed"\n' >"$T/stub/dpkg-query"
printf '#!/bin/sh\n[ "$1" = -u ] && echo 1000 && exit 0\nexec /usr/bin/id "$@"\n' >"$T/stub/id"
printf '#!/bin/sh\necho "apt-get $*" >>"%s/apt.log"; exit 100\n' "$T" >"$T/stub/apt-get"
printf '#!/bin/sh\necho "sudo: a password is required" >&2; exit 1\n' >"$T/stub/sudo"
chmod 755 "$T/stub/"*
run env PATH="$T/stub:$PATH" "$ROOT/scripts/install-deps" --build
is "install-deps, not root, sudo asking for a password: exit 77" "$rc" 77
like "... saying so" "$(cat "$T/err")" "install-deps: need root, or sudo without a password, to install: pkg-config"
ok "... apt not run" -- test ! -e "$T/apt.log"
printf '#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n' >"$T/stub/sudo"
run env PATH="$T/stub:$PATH" "$ROOT/scripts/install-deps" --build
is "... a sudo that lets it, and apt failing: 69" "$rc:$(head -1 "$T/apt.log")" "69:apt-get update -qq"
like "... said as apt's failure" "$(cat "$T/err")" "install-deps: apt-get update failed"
