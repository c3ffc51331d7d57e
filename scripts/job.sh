# Shared by scripts/nightly-fill, backfill and audit (sourced, bash).
# - one lock per job (flock): a second run exits 75 at once;
# - quiet on success, loud on failure (chronic): the run's stderr is kept in a
#   log file an operator can read, and printed (so cron mails it) only when
#   the run fails;
# - the worst exit status of a pipeline, not only its last stage's.
set -u
set -o pipefail

JOB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Installed tools are on PATH; in a checkout, bin/ (or $QRPOOL_BIN) comes first.
if [ -n "${QRPOOL_BIN:-}" ]; then PATH=$QRPOOL_BIN:$PATH
elif [ -x "$JOB_ROOT/bin/qrpool-plan" ]; then PATH=$JOB_ROOT/bin:$PATH
fi
export PATH

# The more serious of two exit statuses (as the tools rank them).
job_rank() {
  case $1 in
    0) echo 0 ;; 75) echo 1 ;; 65) echo 2 ;; 69) echo 3 ;; 74) echo 4 ;;
    70) echo 5 ;; 78) echo 6 ;; 64) echo 7 ;; *) echo 5 ;;
  esac
}
job_worst() {
  local worst=0 status
  for status in "$@"; do
    [ "$(job_rank "$status")" -gt "$(job_rank "$worst")" ] && worst=$status
  done
  echo "$worst"
}

job_log() { printf '%s %s: %s\n' "$(date +%Y-%m-%dT%H:%M:%S%z)" "$JOB_NAME" "$*" >&2; }

# job_start NAME: takes the lock, sends stderr to a capture file.
job_start() {
  JOB_NAME=$1
  local log_dir=${QRPOOL_LOG_DIR:-/var/log/qrpool}
  local lock_dir=${QRPOOL_LOCK_DIR:-/run/lock}
  [ -d "$lock_dir" ] && [ -w "$lock_dir" ] || lock_dir=${TMPDIR:-/tmp}
  mkdir -p "$log_dir" 2>/dev/null || log_dir=${TMPDIR:-/tmp}
  JOB_LOG=${QRPOOL_LOG:-$log_dir/$JOB_NAME.log}
  JOB_LOCK=$lock_dir/qrpool-$JOB_NAME.lock
  exec 9>>"$JOB_LOCK" || { echo "$JOB_NAME: cannot open lock $JOB_LOCK" >&2; exit 74; }
  if ! flock -n 9; then
    echo "$JOB_NAME: another run holds $JOB_LOCK; not starting" >&2
    exit 75
  fi
  JOB_CAPTURE=$(mktemp "${TMPDIR:-/tmp}/qrpool-$JOB_NAME.XXXXXX")
  exec 8>&2 2>"$JOB_CAPTURE"
  JOB_STARTED=$(date +%s)
  job_log "start (pid $$)"
}

# job_finish STATUS: appends the run to the log; prints it when it failed.
job_finish() {
  local status=$1
  job_log "end: exit $status after $(( $(date +%s) - JOB_STARTED ))s"
  exec 2>&8 8>&-
  cat "$JOB_CAPTURE" >>"$JOB_LOG" 2>/dev/null ||
    echo "$JOB_NAME: cannot append to $JOB_LOG" >&2
  if [ "$status" -ne 0 ]; then
    echo "$JOB_NAME failed (exit $status); log: $JOB_LOG" >&2
    cat "$JOB_CAPTURE" >&2
  fi
  rm -f "$JOB_CAPTURE"
  exit "$status"
}
