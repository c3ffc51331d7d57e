#!/bin/sh
# TLS to WeChat is always verified: a certificate no trusted CA signed, or one
# for another host, fails every call (no token, no code, nothing sent), said
# in libcurl's own words; wechat.ca_bundle trusts a private CA; a ca_bundle
# that is missing, not a file, or holds no certificate is a config error (78)
# before any call (a FIFO, which would hold the start up, too). (A TLS front,
# tls-front, before the fake WeChat.)
. "${0%/*}/lib.sh"
. "${0%/*}/fetch.sh"
command -v openssl >/dev/null || skip_all "openssl is missing"

# cert NAME SUBJECT_ALT_NAME: a self-signed certificate $T/NAME.pem, key $T/NAME.key.
cert() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/$1.key" -out "$T/$1.pem" -days 2 \
    -subj "/CN=$1" -addext "subjectAltName=$2" 2>"$T/openssl.err" ||
    { diag "openssl failed:"; sed 's/^/# /' "$T/openssl.err"; return 1; }
}

# front NAME CERT: a TLS front with certificate CERT before the last fake
# started; sets $front, its https:// base.
front() {
  "$PYTHON" "$TESTS_DIR/t/tls-front" "$T/$2.pem" "$T/$2.key" "127.0.0.1:$port" \
    "$T/$1.port" "$T/$1.count" 2>"$T/$1.log" &
  at_exit "kill $! 2>/dev/null"
  tries=0
  until [ -s "$T/$1.port" ] || [ $tries -gt 200 ]; do sleep 0.05; tries=$((tries + 1)); done
  front=https://127.0.0.1:$(cat "$T/$1.port")
}

# handshakes NAME: the handshakes front NAME saw refused, and the requests it passed on.
handshakes() { cat "$T/$1.count" 2>/dev/null || echo "0 0"; }

# calls: the token and code calls the fake answered.
calls() {
  echo "$(stats endpoints stable_token requests) $(stats endpoints getwxacodeunlimit requests)"
}

# tls_config API_BASE [CA_BUNDLE]: the config, the staging DB kept.
tls_config() {
  write_config "api_base = \"$1\"; concurrency = 4; retries = 2; ${2:+ca_bundle = \"$2\";}"
}

# (the runs' own environment is cleared of proxy settings, which would change them)
noproxy="-u no_proxy -u NO_PROXY -u http_proxy -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY"

cert loopback IP:127.0.0.1
cert elsewhere DNS:wechat.example.org
start_fake tls --latency 5
front trusted loopback
trusted=$front
front misnamed elsewhere
misnamed=$front
config_for ''
: >"$T/items"; plan poster 20

# --- a self-signed certificate, no ca_bundle: not trusted -------------------------
tls_config "$trusted"
run env $noproxy qrpool-fetch --for 2s <"$T/items"
is "certificate not trusted: exit 75 at the deadline" "$rc" 75
like "... said in libcurl's words, with where trust comes from" "$(cat "$T/err")" \
  "token endpoint \\(https://127\\.0\\.0\\.1:[0-9]+\\): SSL certificate problem: self-signed certificate \\(TLS is verified: a certificate for api_base's host, signed by a CA of wechat\\.ca_bundle or the system's\\)"
is "... no code fetched, every item still planned" "$(count "state = 'planned'")" 20
is "... nothing reached WeChat (token calls, code calls)" "$(calls)" "0 0"
ok "... the handshakes were refused ($(handshakes trusted))" \
  [ "$(handshakes trusted | cut -d' ' -f1)" -ge 1 -a "$(handshakes trusted | cut -d' ' -f2)" -eq 0 ]
run env $noproxy qrpool-fetch --check
is "--check: 75" "$rc" 75
like "... naming the certificate" "$(cat "$T/err")" "SSL certificate problem: self-signed certificate"

# --- ca_bundle trusts it: every code fetched through TLS ----------------------------
tls_config "$trusted" "$T/loopback.pem"
run env $noproxy qrpool-fetch --check
is "--check with the CA: exit 0" "$rc:$(cat "$T/err")" "0:"
run env $noproxy qrpool-fetch --for 20s <"$T/items"
is "ca_bundle with the CA: exit 0" "$rc:$(cat "$T/err")" "0:"
is "... every code fetched" "$(count "state = 'fetched'")" 20
is "... and each decodes to its request id" "$(decodes_ok)" 1
ok "... through the front ($(handshakes trusted))" [ "$(handshakes trusted | cut -d' ' -f2)" -ge 21 ]

# --- the code calls themselves: a cached token, a certificate not trusted ----------
# (the token of the run before, cached in the staging DB, is still good)
: >"$T/items"; plan poster 5
tls_config "$trusted"
before=$(calls)
run env $noproxy qrpool-fetch --for 2s <"$T/items"
is "code calls to a certificate not trusted: exit 75" "$rc" 75
is "... no code fetched" "$(count "state = 'planned'")" 5
is "... nothing reached WeChat" "$(calls)" "$before"
like "... each item's last error says why" \
  "$(sql "SELECT DISTINCT last_error FROM codes WHERE state = 'planned'")" \
  "^SSL certificate problem: self-signed certificate \\(TLS is verified"

# --- a trusted certificate for another host ----------------------------------------
before=$(calls)
tls_config "$misnamed" "$T/elsewhere.pem"
sql "DELETE FROM wechat_tokens"
run env $noproxy qrpool-fetch --for 2s <"$T/items"
is "certificate for another host: exit 75" "$rc" 75
like "... said" "$(cat "$T/err")" \
  "SSL: no alternative certificate subject name matches target host name '127\\.0\\.0\\.1'"
is "... nothing reached WeChat" "$(calls)" "$before"
is "... no code fetched" "$(count "state = 'planned'")" 5

# --- a ca_bundle that cannot serve: a config error before any call -----------------
mkdir "$T/cadir"; mkfifo "$T/fifo.pem"
for ca in "$T/missing.pem:No such file or directory: no call to WeChat could be verified" \
          "$T/cadir:is not a file: it names one bundle of PEM certificates" \
          "$T/fifo.pem:is not a file" \
          "$T/loopback.key:holds no PEM certificate \\(no '-----BEGIN CERTIFICATE-----' line\\)"; do
  path=${ca%%:*}
  tls_config "$trusted" "$path"
  before=$(calls)
  run env $noproxy qrpool-fetch --for 2s <"$T/items"
  is "ca_bundle ${path#"$T/"}: exit 78" "$rc" 78
  like "... the message names it" "$(cat "$T/err")" \
    "error: $QRPOOL_CONFIG: wechat\\.ca_bundle $path:? ${ca#*:}"
  is "... nothing called, no item printed" "$(calls):$(wc -l <"$T/out")" "$before:0"
  run env $noproxy qrpool-fetch --check
  is "... --check: 78 too" "$rc" 78
done
is "every item still planned" "$(count "state = 'planned'")" 5
