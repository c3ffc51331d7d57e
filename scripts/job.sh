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

# job_check_hhmm JOB OPTION VALUE: exits 64 unless VALUE is a time of day, HH:MM.
job_check_hhmm() {
  [[ $3 =~ ^([01][0-9]|2[0-3]):[0-5][0-9]$ ]] || { echo "$1: $2 $3: expected HH:MM" >&2; exit 64; }
}

# job_check_demand_files JOB FILE...: exits 64 for a directory, or a file
# given twice (under two names too), as qrpool-plan refuses them: here before
# the run, which would otherwise start, be logged and feed the leftovers.
job_check_demand_files() {
  local job=$1 i j
  shift
  for ((i = 1; i <= $#; i++)); do
    [ "${!i}" != - ] || continue
    [ ! -d "${!i}" ] || { echo "$job: ${!i} is a directory, not a demand file" >&2; exit 64; }
    for ((j = 1; j < i; j++)); do
      [ "${!j}" != - ] && [ "${!j}" -ef "${!i}" ] || continue
      echo "$job: ${!j} and ${!i} are the same file: give each demand file once" >&2; exit 64
    done
  done
}

# job_minutes HH:MM: the minutes after midnight.
job_minutes() { echo $((10#${1%:*} * 60 + 10#${1#*:})); }

# job_check_deadline JOB HH:MM: exits 64 for a malformed time, and 75 for a
# deadline more than 12 hours away: it has passed for tonight (a rerun in the
# morning with the crontab's -u 06:00, a backfill given a time just gone), and
# fetching until tomorrow's would call WeChat through the day's peaks, with a
# plan of a day's worth of capacity. Sets JOB_CHECKED_AT, the HH:MM it was
# checked at: the plan's window starts there (the clock read once: at 23:59:59.99
# two reads give 23:00, and a window read after the check 06:00-06:00).
job_check_deadline() {
  local job=$1 until_time=$2 now_minutes until_minutes left_minutes
  job_check_hhmm "$job" -u "$until_time"
  JOB_CHECKED_AT=$(date +%H:%M)
  now_minutes=$(job_minutes "$JOB_CHECKED_AT")
  until_minutes=$(job_minutes "$until_time")
  left_minutes=$(( (until_minutes - now_minutes + 1440) % 1440 ))
  if [ "$left_minutes" -eq 0 ] || [ "$left_minutes" -gt 720 ]; then
    # A fill in the day would take the quota the online services need at the
    # peaks, keeping only the night's reserve: the night fill says what to
    # run instead, not "a later -u".
    local next="give -u a later time"
    case $job in
      nightly-fill) next="the next night's fill feeds on what is left first; to catch up in the"
        next="$next day, run backfill with a reserve (README: After a failed night)" ;;
    esac
    # (At the deadline's own minute, the next one is a day away.)
    [ "$left_minutes" -ne 0 ] || left_minutes=1440
    echo "$job: it is $JOB_CHECKED_AT, past the deadline $until_time (the next one is" \
      "$((left_minutes / 60))h$((left_minutes % 60))m away): not starting; $next" >&2
    exit 75
  fi
}

# job_check_night JOB START FROM HH:MM: exits 75 when the clock (as
# job_check_deadline, called first, read it) is not between START (a valid
# HH:MM, not the deadline's; FROM says where it came from: "-s") and the
# deadline HH:MM: a fill started in the evening would fetch at the night's
# rate through the evening's peak, leaving the online services only the
# night's reserve. START empty: 6 hours before the deadline (00:00 for the
# crontab's 06:00).
job_check_night() {
  local job=$1 start=$2 from=$3 until_minutes start_minutes said
  until_minutes=$(job_minutes "$4")
  if [ -z "$start" ]; then
    start_minutes=$(( (until_minutes - 360 + 1440) % 1440 ))
    start=$(printf '%02d:%02d' $((start_minutes / 60)) $((start_minutes % 60)))
    said="the night's start $start (6 hours before the deadline $4; -s sets it)"
  else
    start_minutes=$(job_minutes "$start")
    said="the night's start $start ($from)"
  fi
  if [ $(( ($(job_minutes "$JOB_CHECKED_AT") - start_minutes + 1440) % 1440 )) -ge \
       $(( (until_minutes - start_minutes + 1440) % 1440 )) ]; then
    echo "$job: it is $JOB_CHECKED_AT, before $said: not starting; a fill now would" \
      "take the quota the online services need at the evening's peak, leaving them only the" \
      "night's reserve; to fill before the night, run backfill with a reserve (README: After" \
      "a failed night)" >&2
    exit 75
  fi
}

# job_check_option JOB OPTION VALUE EXPECTED TOOL TOOL-OPTION: a value the
# script passes on to TOOL, refused (64) before the run starts, and named as
# the operator typed it, if TOOL refuses it: its form (TOOL checks its options
# before --version, without a config or a DB), then against the config
# (--dump-config: a --reserve the quota leaves no room for), said in TOOL's
# words. Not logged after leftovers went on. (A config TOOL cannot load is
# left to the run, which logs it.)
job_check_option() {
  local status=0 said
  "$5" "$6" "$3" --version >/dev/null 2>&1 || status=$?
  if [ "$status" -eq 64 ]; then
    echo "$1: $2 '$3': expected $4" >&2; exit 64
  fi
  said=$("$5" "$6" "$3" --dump-config 2>&1 >/dev/null) || status=$?
  if [ "$status" -eq 64 ]; then
    said=$(printf '%s\n' "$said" | grep -m1 ' error: ')
    said=${said#* error: }
    echo "$1: $2 '$3': ${said% (try --help)}" >&2; exit 64
  fi
}

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

# job_stages "NAME..." STATUS...: the worst of a pipeline's statuses (give
# "${PIPESTATUS[@]}"). A stage a signal ended counts as 75 when the signal
# stops (KILL: the OOM killer, an operator; TERM, INT, HUP, PIPE: a stop and
# its broken pipes, which the tools themselves turn into 75): what it did is
# staged, and a rerun finishes the rest. A crash (SEGV, ABRT, BUS...) is a
# bug that a rerun meets again: 70. Both are named in the log, except the
# stop's own signals. (The raw 128+N is in no exit table an alert keys on.)
# The 74s of the stages right before a stage that a signal ended are that
# signal's echo: their stdout lost its reader (a tool exits 74 on a closed
# stdout), so they are not counted, or the OOM killer's 75 would read as a
# disk error. (A stage that ends on its own with a status below 74 reads its
# input to the end: fetch past its deadline, publish after Kafka gave up, and
# fetch, render or publish stopped by a signal they caught, unless it came
# twice; a 74 before it is real.) Likewise the 65 of the stage right after one that a
# signal ended: the line being written when it died was cut off mid-way, and
# reads as a malformed one, or as one of an unknown pool; the rerun has it whole.
job_stages() {
  local names=($1) statuses signalled=() i status worst=0 signal killer= what
  shift
  statuses=("$@")
  for ((i = 0; i < $#; i++)); do
    status=${statuses[i]}
    if [ "$status" -eq 126 ] || [ "$status" -eq 127 ]; then
      # The shell's own: a tool not found, or not executable (bash said which).
      what="not found"
      [ "$status" -eq 126 ] && what="not executable"
      job_log "${names[$i]:-stage $((i + 1))}: exit $status, a tool $what: is qrpool installed," \
        "its directory on the PATH (the crontab's own)? Counted as 78, the setup's"
      statuses[i]=78
    elif [ "$status" -gt 128 ]; then
      signalled[i]=1
      signal=$(kill -l "$status" 2>/dev/null) || signal=$((status - 128))
      case $signal in
        TERM|INT|HUP|PIPE) status=75 ;;
        KILL) job_log "${names[$i]:-stage $((i + 1))} was killed (SIGKILL, exit $status: the" \
                "OOM killer?): what it did is staged; a rerun finishes the rest"
              status=75 ;;
        *) job_log "${names[$i]:-stage $((i + 1))} crashed (SIG$signal, exit $status): a bug," \
             "which a rerun may meet again; what it did is staged"
           status=70 ;;
      esac
      statuses[i]=$status
    fi
  done
  for ((i = $# - 1; i >= 0; i--)); do
    status=${statuses[i]}
    if [ "$status" -eq 65 ] && [ "$i" -gt 0 ] && [ -n "${signalled[i - 1]:-}" ]; then
      job_log "${names[$i]:-stage $((i + 1))} exited 65 after a signal ended" \
        "${names[$i - 1]:-stage $i} (the line it was writing, cut off, reads as a bad one):" \
        "counted as 75"
      status=75
    fi
    if [ "$status" -eq 74 ] && [ -n "$killer" ]; then
      job_log "${names[$i]:-stage $((i + 1))} exited 74 after a signal ended $killer (its" \
        "output lost its reader): not counted"
      continue
    fi
    # Only the 74s right before it echo a killed stage: one that ended on its
    # own in between read its input to the end, so the 74s before it are real.
    killer=
    [ -n "${signalled[i]:-}" ] && killer=${names[$i]:-stage $((i + 1))}
    worst=$(job_worst "$worst" "$status")
  done
  echo "$worst"
}

# job_check_stages TOOL...: each later stage's own view of the config
# (--dump-config), before a fill starts: a setting only publish (or render)
# refuses (a linger.ms past kafka.timeout, a topic setting librdkafka will not
# take) would otherwise be met once fetch had spent the night's quota, the
# codes then left fetched until the config is mended. Logged, and the tool's
# status returned: nothing started.
job_check_stages() {
  local tool status
  for tool in "$@"; do
    status=0
    "$tool" --dump-config >/dev/null || status=$?
    [ "$status" -ne 0 ] || continue
    # (A tool not found, or one that crashed, is said as the run would say it.)
    [ "$status" -ge 126 ] || job_log "$tool refuses the configuration (exit $status, above):" \
      "the fill does not start, or fetch would spend the quota on codes that could not go on"
    status=$(job_stages "$tool" "$status")
    return "${status:-75}"
  done
  # (A stop meanwhile ends only the stages that make work, none of these.)
  [ -z "${JOB_STOPPING:-}" ] || return 75
}

# job_fill_status STATUS...: sets JOB_FILL_STATUS to the exit status of a
# fill's pipeline (pending/plan, fetch, render, publish: their PIPESTATUS), as
# job_stages gives it. Publish ending 75 on its own (Kafka down past
# kafka.timeout: it lets the rest of its input go, staged as fetched) would
# leave every code fetched after it for the next night, after a minute's
# outage at 01:00: those are published once more first, now that fetch is
# done (Kafka back, or 75 again within kafka.timeout). Not while the job is
# being stopped (JOB_STOPPING, set in job_run's pipeline shell). Called in
# that shell, not in a command substitution: a subshell would not have its
# traps, and a stop would kill it with the catch-up running.
job_fill_status() {
  local statuses=("$@") last=$(($# - 1)) again
  if [ "${statuses[last]}" -eq 75 ] && [ -z "${JOB_STOPPING:-}" ]; then
    job_log "qrpool-publish ended 75 (Kafka down past kafka.timeout?): the codes fetched" \
      "since are published once more"
    qrpool-pending --state fetched | qrpool-publish >/dev/null
    again=$(job_stages "qrpool-pending qrpool-publish" "${PIPESTATUS[@]}")
    statuses[last]=${again:-75}
    [ "${statuses[last]}" -ne 0 ] || job_log "... and they are: every code fetched is published"
  fi
  JOB_FILL_STATUS=$(job_stages "qrpool-pending/plan qrpool-fetch qrpool-render qrpool-publish" \
    "${statuses[@]}")
  JOB_FILL_STATUS=${JOB_FILL_STATUS:-75}   # (the substitution's shell ended by a stop)
}

# job_feed COMMAND...: runs COMMAND (the plan; its items are staged in the DB),
# then feeds every code still to go on, as one stream for the pipeline: the
# leftovers of earlier runs first (codes still planned, to fetch or render;
# fetched ones, to publish), then the plan's, in its order (their ids follow
# it); returns the worse of the two statuses. A plan counts the leftovers as
# in flight: a fill that did not feed them on would leave them, and the stock
# short by as many. The plan comes first, not after the leftovers, which wait
# in the pipe until fetch takes them (hours, after a failed night): its
# window then starts now, and a bad demand file is said at once.
job_feed() {
  local pending_status command_status
  "$@" >/dev/null
  command_status=$?
  qrpool-pending --state planned,fetched
  pending_status=$?
  # One ended by a signal beside the other's own failure (pending killed
  # after a bad demand file's 65): the signal's raw 128+N would outrank that
  # failure, and job_stages then count both as the stop's 75. Its own status
  # (75, or 70 for a crash) is taken here instead, and said.
  if [ "$pending_status" -gt 128 ] && [ "$command_status" -ne 0 ] && [ "$command_status" -le 128 ]; then
    pending_status=$(job_stages qrpool-pending "$pending_status")
  elif [ "$command_status" -gt 128 ] && [ "$pending_status" -ne 0 ] && [ "$pending_status" -le 128 ]; then
    command_status=$(job_stages "$1" "$command_status")
  fi
  return "$(job_worst "$pending_status" "$command_status")"
}

# job_help: the script's header comment, whole (what it does, its options, its
# log and exit statuses), for -h and --help.
job_help() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }

job_log() { printf '%s %s: %s\n' "$(date +%Y-%m-%dT%H:%M:%S%z)" "$JOB_NAME" "$*" >&2; }

# job_private_dir NAME: a directory of this user's own in $TMPDIR (mode 700),
# for what cannot go where it should: never a file in $TMPDIR itself, which
# anyone could make first. Prints its path, or fails when another user's is
# in the way.
job_private_dir() {
  local dir=${TMPDIR:-/tmp}/qrpool-$1.$(id -u)
  mkdir -m 700 "$dir" 2>/dev/null
  if [ -L "$dir" ] || [ ! -d "$dir" ] || [ ! -O "$dir" ]; then
    return 1
  fi
  chmod 700 "$dir"   # ours: for us only, whatever made it
  echo "$dir"
}

# job_lock_holder LOCK: " (pid N, user U, since TIME)" for the job holding LOCK,
# as it wrote into the lock file; else the processes that have it open, of
# those this user may look into (" (held by qrpool-fetch pid N, ...)": a
# `flock` run by hand, or the stages of a run whose script was killed with
# SIGKILL, which hold it until their end); else " (pid N, user U: COMMAND)"
# for another user's process holding it (anyone can open a lock in
# /run/lock), as /proc/locks has it; else how to find it. Whatever another
# user wrote there (the line, a process's name) shows with each byte that is
# not printable ASCII as `?`: no terminal escapes in cron's mail.
# (Printed by job_printf, in this shell: a pipeline's or a command
# substitution's processes would inherit the lock's descriptor, and be named
# among its holders.)
job_printf() {
  local LC_ALL=C text
  printf -v text "$@"
  printf '%s' "${text//[^[:print:]]/?}"
}
job_lock_holder() {
  local pid= user= since= args
  read -r pid user since <"$1" 2>/dev/null
  # (The line's user must own the process: another user's run may not
  # pass for the qrpool user's.)
  if [[ $pid =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] && job_has_open "$pid" "$1" &&
     [ "$(stat -c %U "/proc/$pid" 2>/dev/null)" = "$user" ] && job_started_by "$pid" "$since"; then
    job_printf ' (pid %s, user %s, since %s)' "$pid" "$user" "$since"
    return 0
  fi
  job_lock_openers "$1"
  if [ -n "$JOB_OPENERS" ]; then
    job_printf ' (held by %s)' "$JOB_OPENERS"
    return 0
  fi
  # (The process that took it, in util-linux 2.38's lslocks: that of the
  # flock(1) a job ran is gone, and then no path is named.)
  pid=$(lslocks -n -r -o PID,PATH 2>/dev/null | awk -v lock="$(readlink -f "$1")" \
    '$2 == lock { print $1; exit }')
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then
    args=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | cut -c1-80)
    job_printf ' (pid %s, user %s: %s)' "$pid" "$(stat -c %U "/proc/$pid" 2>/dev/null)" "${args% }"
  else
    job_printf ' (by a process this user cannot look into: `fuser -v %s`, as root, names it)' "$1"
  fi
}

# job_lock_openers LOCK: sets JOB_OPENERS to "COMMAND pid N, ..." for the
# processes that have LOCK open (at most 4 named, then how many more), of
# those this user may look into, but for this shell and its own subshell
# (run in this one: a command substitution would be another, itself opening
# it); and, when they are one process group (a job's stages and its pipeline
# shell, whose script is gone, and not this run's own group), how to stop
# them all: the pipeline shell waits out a TERM of its own, for its stages to
# wind down on theirs.
job_lock_openers() {
  local dir fd comm pgid group= groups=0 count=0
  JOB_OPENERS=
  for dir in /proc/[0-9]*; do
    [ "${dir#/proc/}" != "$$" ] && [ "${dir#/proc/}" != "$BASHPID" ] || continue
    for fd in "$dir"/fd/*; do
      [ "$fd" -ef "$1" ] || continue
      count=$((count + 1))
      comm=; read -r comm <"$dir/comm"
      [ "$count" -gt 4 ] || JOB_OPENERS="$JOB_OPENERS${JOB_OPENERS:+, }$comm pid ${dir#/proc/}"
      pgid=$(job_stat_field "${dir#/proc/}" 5)
      [ "$pgid" = "$group" ] || { group=$pgid; groups=$((groups + 1)); }
      break
    done 2>/dev/null
  done
  [ "$count" -le 4 ] || JOB_OPENERS="$JOB_OPENERS and $((count - 4)) more"
  # (Not the group of this run itself: a holder started by the same shell
  # without job control, whose kill would end the caller too.)
  [ "$groups" -ne 1 ] || [ -z "$group" ] || [ "$group" = "$(job_stat_field "$$" 5)" ] ||
    JOB_OPENERS="$JOB_OPENERS: \`kill -- -$group\` stops them"
}

# job_started_by PID SINCE: whether PID started by SINCE (a time as a job
# writes it into its lock file, a second's slack): a pid of an old line may
# since be another process's. Taken as true when it cannot be told.
job_started_by() {
  local started boot ticks since_s
  [ -n "$2" ] || return 0   # (date -d '' is today's midnight)
  since_s=$(date -d "$2" +%s 2>/dev/null) || return 0
  started=$(job_stat_field "$1" 22)   # (clock ticks after boot)
  boot=$(awk '$1 == "btime" { print $2 }' /proc/stat 2>/dev/null)
  ticks=$(getconf CLK_TCK 2>/dev/null)
  [ -n "$started" ] && [ -n "$boot" ] && [ -n "$ticks" ] || return 0
  [ $((boot + started / ticks)) -le $((since_s + 1)) ]
}

# job_stat_field PID N: the Nth field of /proc/PID/stat (5: the process
# group, 22: the start), read after the command, which may hold blanks and
# parentheses; "" when it cannot be read.
job_stat_field() {
  local stat fields
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
  read -r -a fields <<<"${stat##*) }"
  printf '%s' "${fields[$2 - 3]:-}"
}

# job_has_open PID FILE: whether PID has FILE open, as a job holding its lock
# does: the pid written in a lock file may since belong to another process,
# while someone else's `flock` holds it. Another user's process cannot be
# looked into: then taken at its word.
job_has_open() {
  local fd
  [ -r "/proc/$1/fd" ] || return 0
  for fd in /proc/"$1"/fd/*; do
    [ "$fd" -ef "$2" ] && return 0
  done
  return 1
}

job_lock_refused() {
  echo "$JOB_NAME: $JOB_LOCK is not a lock file of its own (a link to another file, a FIFO," \
    "or one put in its place as it was opened): remove it (and see who made it)" >&2
  exit 74
}

# job_lock_path NAME: where the lock NAME is, when its directory can be used.
job_lock_path() { printf '%s/qrpool-%s.lock' "${QRPOOL_LOCK_DIR:-/run/lock}" "$1"; }

# job_lock_file NAME: where this user's runs take the lock NAME: a lock that
# exists is used as it is; else the directory must let us make it. Failing
# both, a directory of this user's own (fails when that cannot be had).
job_lock_file() {
  local lock_dir=${QRPOOL_LOCK_DIR:-/run/lock} private
  if [ -r "$(job_lock_path "$1")" ] || { [ -d "$lock_dir" ] && [ -w "$lock_dir" ]; }; then
    job_lock_path "$1"
  else
    private=$(job_private_dir locks) && echo "$private/qrpool-$1.lock"
  fi
}

# job_start NAME [LOCK]: takes the lock (LOCK, default NAME: jobs that must not
# overlap share one), sends stderr to the log.
job_start() {
  JOB_NAME=$1
  local lock_name=${2:-$1}
  local log_dir=${QRPOOL_LOG_DIR:-/var/log/qrpool}
  local lock_dir=${QRPOOL_LOCK_DIR:-/run/lock} size owner
  if ! JOB_LOCK=$(job_lock_file "$lock_name"); then
    echo "$JOB_NAME: cannot make the lock: $lock_dir is not writable, and" \
      "${TMPDIR:-/tmp}/qrpool-locks.$(id -u) is not a directory of this user's" >&2
    exit 74
  fi
  if [ "$JOB_LOCK" != "$(job_lock_path "$lock_name")" ]; then
    # Said on every run (cron mails it): a run by another user, or with the
    # directory given, takes another lock, and could run beside this one.
    echo "$JOB_NAME: warning: $lock_dir is not a directory this user can write to (is" \
      "QRPOOL_LOCK_DIR right?): locking $JOB_LOCK instead, which other users' runs and" \
      "runs given another QRPOOL_LOCK_DIR do not see" >&2
  fi
  # Never through a symbolic link: in a directory anyone may write to (/run/lock),
  # one could point it at a file of ours, made or truncated here.
  if [ -L "$JOB_LOCK" ]; then
    echo "$JOB_NAME: $JOB_LOCK is a symbolic link, which a lock never is: remove it" \
      "(and see who made it)" >&2
    exit 74
  fi
  # Opened for reading: a lock file made by another user (root running a job
  # by hand) must not lock the qrpool user out. Made readable by all if new.
  [ -e "$JOB_LOCK" ] || (umask 0133 && set -C && : >"$JOB_LOCK") 2>/dev/null
  # The file opened must be the one at that path, and a file of its own: not
  # a FIFO (its open would wait forever), not one a symbolic link put there
  # since the check above points at, nor a hard link to one of ours (the
  # holder's line below is written into it).
  [ -f "$JOB_LOCK" ] || [ ! -e "$JOB_LOCK" ] || job_lock_refused
  if ! exec 9<"$JOB_LOCK"; then
    # (Most likely made by root under a strict umask, running a job or a
    # `flock` by hand: it stays until /run/lock is cleared at boot.)
    owner=$(stat -c "%U's, mode %a" "$JOB_LOCK" 2>/dev/null)
    echo "$JOB_NAME: cannot open lock $JOB_LOCK (it is $owner): make it readable by all" \
      "(chmod 644) or remove it, unless a run holds it" >&2
    exit 74
  fi
  if [ ! -f /dev/fd/9 ] || [ "$(stat -L -c %d:%i:%h /dev/fd/9 2>/dev/null)" != \
       "$(stat -c %d:%i "$JOB_LOCK" 2>/dev/null):1" ]; then
    job_lock_refused
  fi
  if ! flock -n 9; then
    echo "$JOB_NAME: another run holds $JOB_LOCK$(job_lock_holder "$JOB_LOCK"); not starting" >&2
    exit 75
  fi
  # The fills' lock, as the stages' messages name it (qrpool-publish's way to
  # resume by hand under it): the one taken, wherever that had to be.
  [ "$lock_name" != fill ] || export QRPOOL_FILL_LOCK="$JOB_LOCK"
  # Who holds it, for the message of a run that finds it taken (the lock is
  # flock's, on the file; this is only said). A lock of another user's is
  # left as it is. Written through the descriptor checked above, not the
  # path, which anyone may replace in /run/lock meanwhile.
  [ -O /dev/fd/9 ] && printf '%s %s %s\n' "$$" "$(id -un)" "$(date +%Y-%m-%dT%H:%M:%S%z)" \
    2>/dev/null >/dev/fd/9
  # The run's stderr goes to the log as it comes: `tail -f` follows a night,
  # and a run killed (kill -9, a reboot) leaves what it said. A failed run's
  # part of the log is printed at the end, for cron's mail.
  JOB_LOG=${QRPOOL_LOG:-$log_dir/$JOB_NAME.log}
  local made why
  # Made 0640 (and its directory 0750), as logrotate's `create` makes them,
  # whatever cron's umask: a night's log is the operators' to read.
  made=$( (umask 027 && mkdir -p "$(dirname "$JOB_LOG")") 2>&1) &&
    why=$( (umask 027 && : >>"$JOB_LOG") 2>&1 ) || why=${why:-$made}
  if [ -n "$why" ]; then
    # Said as the system said it (the last part of the shell's or mkdir's
    # message), with what to do when that is plain.
    why=${why##*: }
    case $why in
      "Permission denied"|"Not a directory"|"No such file or directory")
        if [ -e "$JOB_LOG" ]; then
          # (Made by another user, root running the job by hand, say.)
          why="$why: it is $(stat -c '%U'"'"'s, mode %a' "$JOB_LOG"); chown $(id -un) it"
        elif [ -d "$(dirname "$JOB_LOG")" ]; then
          why="$why: make its directory writable by $(id -un)"
        else
          why="$why: its directory cannot be made; make it, writable by $(id -un)"
        fi ;;
    esac
    if ! private=$(job_private_dir logs); then
      echo "$JOB_NAME: cannot write the log $JOB_LOG ($why), and" \
        "${TMPDIR:-/tmp}/qrpool-logs.$(id -u) is not a directory of this user's" >&2
      exit 74
    fi
    echo "$JOB_NAME: cannot write the log $JOB_LOG ($why); logging to" \
      "$private/$JOB_NAME.log" >&2
    JOB_LOG=$private/$JOB_NAME.log
  fi
  size=$(stat -c %s "$JOB_LOG" 2>/dev/null) || size=0
  JOB_LOG_FROM=$((size + 1))
  # Read back through a descriptor of its own: the file written, even if
  # logrotate renames it and makes a new one meanwhile.
  exec 8>&2 2>>"$JOB_LOG" 7<"$JOB_LOG" ||
    { echo "$JOB_NAME: cannot write the log $JOB_LOG" >&8; exit 74; }
  JOB_STARTED=$(date +%s)
  job_unended
  job_log "start (pid $$)"
}

# A run of this job whose start has no end after it in the log was ended
# with no chance to log (kill -9 of the script, a power loss, a reboot), and
# nothing was mailed: said as this run starts, in the log and on stderr (for
# cron's mail, even if this run goes well). The lock is ours, so that run is
# not running, unless under another lock: then this one stops, 75.
job_unended() {
  local last= pid message log
  # A log rotated since (logrotate's weekly run, by Debian's timer at
  # midnight): that run's lines are in the one before, kept plain by
  # delaycompress. (-a: a power loss can leave NUL bytes at the end of a log.)
  for log in "$JOB_LOG" "$JOB_LOG.1"; do
    [ -f "$log" ] && last=$(grep -a -E "^[^ ]+ $JOB_NAME: (start \(pid [0-9]+\)|end: )" "$log" |
      tail -n 1)
    [ -z "$last" ] || break
  done
  [[ $last == *": start (pid "* ]] || return 0
  pid=${last##*(pid }
  pid=${pid%)}
  # That run still going, under another lock (QRPOOL_LOCK_DIR set for cron
  # but dropped by sudo for a hand run, or the other way round): the two
  # would fetch the same codes. This one does not start.
  if [ -d "/proc/$pid" ] && job_has_open "$pid" "$log" &&
     job_started_by "$pid" "${last%% *}"; then
    echo "$JOB_NAME: the run that started at ${last%% *} (pid $pid) is still running, under" \
      "another lock than $JOB_LOCK (is QRPOOL_LOCK_DIR set for one and not the other? sudo" \
      "drops it): not starting beside it" >&8
    exit 75
  fi
  message="the run that started at ${last%% *} (pid $pid) has no end in $log: it was"
  message="$message ended with no chance to log (kill -9, a power loss, a reboot)"
  job_log "$message"
  echo "$JOB_NAME: $message" >&8
  # Printed already: not again in this run's part of the log, if it fails.
  JOB_LOG_FROM=$(( $(stat -L -c %s /dev/fd/7 2>/dev/null || echo 0) + 1 ))
}

# job_run FUNCTION: runs the job's pipeline (a function that returns its
# worst status) in the background and waits for it, so that SIGINT, SIGTERM
# or SIGHUP sent to the script reach the pipeline (bash would otherwise die
# at once and leave the tools running, holding the lock, with nothing
# logged): the pipeline is told to stop (see job_signalled), waited for, and
# the run ends through job_finish with at least 75.
job_run() {
  local status=0 tries=0
  JOB_SIGNAL=
  # The pipeline's shell outlives a signal to the whole process group
  # (timeout(1), systemd, a hangup): it waits for its stages, which wind
  # down on the same signal, rather than die and leave them running after
  # the job has ended. (':' not '': an ignored signal would be inherited.)
  # A stop it is told of (SIGUSR1: job_signalled) or gets itself (a signal to
  # the process group) sets JOB_STOPPING there, for job_fill_status. (USR1
  # ignored across the fork: one sent before the trap is set must not kill it.)
  trap '' USR1
  { trap 'JOB_STOPPING=1' INT TERM HUP USR1; "$@"; } <&0 &   # (without <&0, bash gives a background job /dev/null as stdin)
  JOB_CHILD=$!
  trap - USR1
  trap 'job_signalled INT' INT
  trap 'job_signalled TERM' TERM
  trap 'job_signalled HUP' HUP
  wait "$JOB_CHILD" || status=$?
  # A signal cuts the wait short: wait again, for the pipeline's own status
  # (bash keeps it for a child that has already ended).
  while [ -n "$JOB_SIGNAL" ] && [ "$status" -gt 128 ] && [ $tries -lt 100 ]; do
    status=0
    wait "$JOB_CHILD" || status=$?
    tries=$((tries + 1))
  done
  trap - INT TERM HUP
  if [ -n "$JOB_SIGNAL" ]; then
    job_log "stopped by SIG$JOB_SIGNAL"
    # A stage ended by the stop (SIGTERM, or SIGPIPE behind it) is the stop.
    [ "$status" -gt 128 ] && status=75
    status=$(job_worst "$status" 75)
  fi
  job_finish "$status"
}
# The pipeline is stopped from its head: the stages that produce work (pending,
# plan, fetch) get SIGTERM and wind down (fetch finishes the calls in flight);
# render and publish finish what reaches them and end with their input. (A
# stage signalled reads the rest of its input and lets it go, so a SIGTERM to
# every stage would end the night too, but drop the work in flight between.)
# The same signal again, a second or more after the first (a second Ctrl-C, a
# second kill), insists, as it does for each tool: every stage is told to stop
# twice, a second apart (a tool takes that as insisting), so render and publish
# give up what they wait for (deliveries waiting out kafka.timeout while Kafka
# is down), and fetch its calls in flight.
job_signalled() {
  local now=${EPOCHREALTIME//[!0-9]/}   # (µs; the radix is the locale's)
  if [ -n "$JOB_SIGNAL" ]; then
    [ "$1" = "$JOB_SIGNAL" ] && [ $((now - JOB_SIGNAL_AT)) -ge 1000000 ] || return 0
    job_log "SIG$1 again: every stage told to stop now"
    job_stop_stages all
    sleep 1.1
    job_stop_stages all
    return 0
  fi
  JOB_SIGNAL=$1
  JOB_SIGNAL_AT=$now
  job_log "SIG$1: stopping the pipeline"
  kill -USR1 "$JOB_CHILD" 2>/dev/null
  job_stop_stages
}
# job_stop_stages [all]: SIGTERM to the stages that make work (pending, plan,
# fetch; report in the audit), or with "all" to every tool of the pipeline.
job_stop_stages() {
  local pid parent comm
  while read -r pid parent comm; do
    case $comm in
      qrpool-pending|qrpool-plan)
        # Their subshell too (job_feed's, in the fills), or it
        # would go on to its next command: the plan stopped, pending
        # would still feed the leftovers on after the stop.
        [ "$parent" != "$JOB_CHILD" ] && kill -TERM "$parent" 2>/dev/null
        kill -TERM "$pid" 2>/dev/null || true ;;
      qrpool-fetch|qrpool-report) kill -TERM "$pid" 2>/dev/null || true ;;
      qrpool-*) [ "${1:-}" = all ] && kill -TERM "$pid" 2>/dev/null || true ;;
    esac
  done < <(job_descendants "$JOB_CHILD")
}
# job_descendants PID: "PID PARENT NAME" for each process under PID, read
# from /proc (procps's pgrep and ps may not be on a minimal host: the stop
# would then stop nothing, and fetch run on to its deadline).
job_descendants() {
  local stat line pid comm fields i
  local -A parent_of name_of
  local -a queue=("$1")
  for stat in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$stat" || continue
    pid=${line%% *}
    comm=${line#*(}
    comm=${comm%)*}
    # After the name (which may hold spaces and parentheses): state, parent.
    read -r -a fields <<<"${line##*) }"
    parent_of[$pid]=${fields[1]}
    name_of[$pid]=$comm
  done
  for ((i = 0; i < ${#queue[@]}; i++)); do
    for pid in "${!parent_of[@]}"; do
      if [ "${parent_of[$pid]}" = "${queue[i]}" ]; then
        echo "$pid ${queue[i]} ${name_of[$pid]}"
        queue+=("$pid")
      fi
    done
  done
}

# job_finish STATUS: ends the run's part of the log; prints it when it failed.
job_finish() {
  local status=$1 size written=1
  job_log "end: exit $status after $(( $(date +%s) - JOB_STARTED ))s" || written=
  exec 2>&8 8>&-
  # The end line could not be written to the log (a full disk), nor, most
  # likely, what the run said before it. Said here, whatever the status, or
  # cron's mail would hold only "failed (exit 74)" and an empty log, and a
  # full log disk could go unnoticed.
  if [ -z "$written" ]; then
    echo "$JOB_NAME: the log $JOB_LOG could not be written (is its disk full? df -h" \
      "$(dirname "$JOB_LOG")): what this run said is lost; it ended with exit $status" >&2
  fi
  if [ "$status" -ne 0 ]; then
    echo "$JOB_NAME failed (exit $status); log: $JOB_LOG" >&2
    # From where this run began (all of it if the file was cut meanwhile).
    size=$(stat -L -c %s /dev/fd/7 2>/dev/null) || size=0
    [ "$size" -ge "$JOB_LOG_FROM" ] || JOB_LOG_FROM=1
    tail -c +"$JOB_LOG_FROM" /dev/fd/7 >&2
  fi
  exec 7<&-
  exit "$status"
}
