#!/bin/sh
# The whole demo as a test: what `make demo` shows a newcomer must work.
. "${0%/*}/lib.sh"
command -v kcat >/dev/null || skip_all "kcat is not installed"
TMPDIR=$T
export TMPDIR
run "$ROOT/scripts/demo"
is "scripts/demo exits 0" "$rc" 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err" | tail -20
like "the nightly fill published every planned code" "$(cat "$T/out")" "listing-poster +0 +0 +[1-9][0-9]* +0 +[1-9]"
like "the online service consumed codes" "$(cat "$T/out")" "consumed 300 codes"
like "claimed codes resolve to their parameters" "$(cat "$T/out")" '"listing_id":"L-1002"'
like "the report ends with a plugin line" "$(cat "$T/out")" "QRPOOL OK - 3 pools"
like "WeChat never saw a minute over the quota" "$(cat "$T/out")" "45009 answers: 0; minutes over the quota: 0"
is "nothing was left running" "$(pgrep -f "$T/" | wc -l)" 0
