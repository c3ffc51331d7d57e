#!/bin/sh
# TLS to WeChat is always verified: a certificate no trusted CA signed, or one
# for another host, fails every call (no token, no code, nothing sent), said
# in libcurl's own words; wechat.ca_bundle trusts a private CA; a ca_bundle
# that is missing, not a file, or that OpenSSL reads no certificate from is a
# config error (78) before any call (a FIFO, which would hold the start up,
# too); with one set, the system's CAs are not trusted beside it. (A TLS
# front, tls-front, before the fake WeChat.)
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
    "$T/$1.port" "$T/$1.count" >/dev/null 2>"$T/$1.log" &
  at_exit "kill_child $!"
  wait_port_file "$T/$1.port" "tls-front $1" "$T/$1.log" || return 1
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
  "token endpoint \\(https://127\\.0\\.0\\.1:[0-9]+\\): SSL certificate problem: self-signed certificate \\(TLS is verified: a certificate for api_base's host, signed by a CA of wechat\\.ca_bundle, else of the system's\\)"
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
# (OpenSSL reads them for the check as libcurl has it read them for a call.)
mkdir "$T/cadir"; mkfifo "$T/fifo.pem"; : >"$T/empty.pem"
printf -- '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n' >"$T/junk.pem"
read_fail="OpenSSL cannot read a certificate from it"
for ca in "$T/missing.pem:No such file or directory: no call to WeChat could be verified" \
          "$T/cadir:is not a file: it names one bundle of PEM certificates" \
          "$T/fifo.pem:is not a file" \
          "$T/loopback.key:$read_fail \\(no certificate or crl found\\): it must hold PEM certificates" \
          "$T/empty.pem:$read_fail \\(no certificate or crl found\\)" \
          "$T/junk.pem:$read_fail \\(bad base64 decode\\)"; do
  path=${ca%%:*}
  tls_config "$trusted" "$path"
  before=$(calls)
  # (timeout: a FIFO waited on would hold it up for ever)
  run env $noproxy timeout 20 qrpool-fetch --for 2s <"$T/items"
  is "ca_bundle ${path#"$T/"}: exit 78" "$rc" 78
  like "... the message names it" "$(cat "$T/err")" \
    "error: $QRPOOL_CONFIG: wechat\\.ca_bundle $path:? ${ca#*:}"
  is "... nothing called, no item printed" "$(calls):$(wc -l <"$T/out")" "$before:0"
  run env $noproxy timeout 20 qrpool-fetch --check
  is "... --check: 78 too" "$rc" 78
done

# --- bundles OpenSSL reads that a simpler check might not: a byte-order mark
# (a file saved on Windows), the older "X509 CERTIFICATE" label ---------------------
{ printf '\357\273\277'; cat "$T/loopback.pem"; } >"$T/bom.pem"
sed 's/CERTIFICATE-----$/X509 CERTIFICATE-----/' "$T/loopback.pem" >"$T/x509.pem"
for ca in bom x509; do
  tls_config "$trusted" "$T/$ca.pem"
  run env $noproxy qrpool-fetch --check
  is "ca_bundle $ca.pem: taken, --check exits 0" "$rc:$(cat "$T/err")" "0:"
done

# --- with ca_bundle set, the system's CA directory is not trusted beside it ------
# (Debian's libcurl would look there too: strace sees no look at /etc/ssl/certs
# while a certificate the bundle did not sign is checked.)
if command -v strace >/dev/null; then
  tls_config "$misnamed" "$T/loopback.pem"
  # (LeakSanitizer, in the SAN=1 build, cannot run under ptrace: it would end the run with 1)
  run env $noproxy ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -qq -e trace=openat,open,stat,newfstatat,lstat -o "$T/strace" \
    qrpool-fetch --check
  is "a certificate the bundle did not sign: 75" "$rc" 75
  is "... and no CA looked for in the system's directory" \
    "$(grep -c '/etc/ssl/certs/' "$T/strace" || true)" 0
else
  skip_tests 2 "strace is missing"
fi
is "every item still planned" "$(count "state = 'planned'")" 5
