#!/bin/sh
# The README's "Try it by hand" section, run as written: its shell blocks in
# order, from the top of the tree (the tools as built for this test run).
. "${0%/*}/lib.sh"
for tool in kcat zbarimg; do
  command -v $tool >/dev/null || skip_all "$tool is not installed"
done
awk '/^## Try it by hand/ { on = 1; next } /^## / { on = 0 }
     on && /^```sh$/ { code = 1; next } code && /^```$/ { code = 0; next } code' \
  "$ROOT/README.md" >"$T/byhand.sh"
ok "the section has its shell blocks" [ "$(grep -c . "$T/byhand.sh")" -ge 20 ]
# (Its PATH names the tree's bin/; a SAN run's tools are elsewhere.)
sed -i "s|^export PATH=\$PWD/bin:|export PATH=$QRPOOL_BIN:\$PWD/bin:|" "$T/byhand.sh"
at_exit "pkill -f '$T/'"   # (what a failed step left running)
rc=0; (cd "$ROOT" && TMPDIR=$T timeout 300 bash -eu "$T/byhand.sh") >"$T/out" 2>"$T/err" || rc=$?
is "it runs to its end" "$rc" 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/err" | tail -20
published=$(awk '/^[0-9]+$/ { print; exit }' "$T/out")
ok "the fill published about 350 codes, as it says (${published:-none})" \
  [ "${published:-0}" -ge 300 -a "${published:-0}" -le 400 ]
# What each step says it shows: WHAT|PATTERN in its output.
while IFS='|' read -r what pattern; do
  like "$what" "$(cat "$T/out")" "$pattern"
done <<'SHOWN'
the report shows the poster pool with nothing lost|poster +wechat +[1-9][0-9]* +0 
... and the flyers|flyer +link +[1-9][0-9]* +0 
a poster code read back with its headers|pool=poster,content-type=image/jpeg,sha256=
a flyer code decodes to its URL|QR-Code:https://m.example.com/q/[0-9A-Za-z]{16}
SHOWN
is "nothing on stderr" "$(cat "$T/err")" ""
is "nothing left running" "$(pgrep -f "$T/" | wc -l)" 0
