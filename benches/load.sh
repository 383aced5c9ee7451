#!/usr/bin/env bash
# Load harness: the release server under wrk, next to the storage's own numbers, in one run.
#
#   bash benches/load.sh [--backend sqlite|postgres|both] [--duration SECS]
#                        [--sessions-for-list N] [--quick] [--sqlite-analyze]
#
# For each backend it starts `agent-sessions serve` (release build) on a free port on a FRESH
# database (SQLite: a file in a temporary directory; PostgreSQL: a new schema in the database
# of $LOAD_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test), with a random
# bootstrap API key sent on every request (authentication is part of what is measured) and the
# rate limits off. It seeds through the API (agents, 64 sessions, a few hundred messages), then
# inserts --sessions-for-list sessions over 1,000 agents straight into the database for the
# list scenario, and runs wrk (2 threads; 32 connections for reads and creates, 16 for
# message writes) against:
#
#   GET /livez | GET session | POST session | POST message | GET messages | GET sessions (list)
#
# then GET session and POST message again paced at half the rate just measured (wrk has no
# rate option: each connection pauses between requests, see request.lua). With the server
# stopped, it measures the storage alone: SQLite commits and point reads
# (examples/storage_baseline.rs), or pgbench running the statements of GET session and of
# POST message (benches/load/pg_*.sql). It prints one Markdown table per backend.
#
# Needs: cargo, curl, wrk (installed with apt-get when missing), and for PostgreSQL psql and
# pgbench. Everything it creates (temporary directory, schema, server) goes at exit, also on
# failure or Ctrl-C. Exits non-zero when any request got an answer outside 2xx.
set -euo pipefail

usage() {
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

backend=both
duration=10
list_sessions=1000000
sqlite_analyze=""   # --sqlite-analyze: ANALYZE after the SQLite seed (the service never does)
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend="${2:?}"; shift 2 ;;
    --duration) duration="${2:?}"; shift 2 ;;
    --sessions-for-list) list_sessions="${2:?}"; shift 2 ;;
    --quick) duration=3; list_sessions=100000; shift ;;
    --sqlite-analyze) sqlite_analyze=--analyze; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
case "$backend" in sqlite|postgres|both) ;; *) echo "--backend: sqlite, postgres or both" >&2; exit 2 ;; esac
[[ "$duration" =~ ^[1-9][0-9]*$ ]] || { echo "--duration: a whole number of seconds" >&2; exit 2; }
[[ "$list_sessions" =~ ^[1-9][0-9]*$ ]] || { echo "--sessions-for-list: a positive number" >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
load_dir="$root/benches/load"
pg_url="${LOAD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

# Scenario sizes.
readonly SESSIONS=64          # sessions read and written by the GET/POST scenarios
readonly HISTORY=300          # messages in the session whose history is paged
readonly LIST_AGENTS=1000     # agents the bulk-seeded sessions are spread over
readonly READ_CONNS=32
readonly WRITE_CONNS=16       # message writes: 16 connections over the 64 sessions
readonly PACED_DELAY_MS=20    # pause per connection in the half-rate runs (see paced())
# pgbench connections: as many as the server's pool, so that the baseline runs as many
# transactions at once as the server can (more clients only queue on the same row locks:
# measured 450 tx/s with 10 clients, 290 with 16, for the POST-message transaction).
readonly PG_CLIENTS="${AGENT_SESSIONS_POOL_SIZE:-10}"

say() { printf '# [%3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { echo "load.sh: $*" >&2; exit 1; }

# --- clean-up: the server, the schema, the temporary directory -------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/agent-sessions-load.XXXXXX")"
server_pid=""
pg_schema=""
# SIGTERM lets the server drain; after 10 s it is killed.
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
drop_schema() {
  if [ -n "$pg_schema" ]; then
    psql "$pg_url" -qAt -c "DROP SCHEMA IF EXISTS $pg_schema CASCADE" >/dev/null 2>&1 \
      || say "could not drop schema $pg_schema"
    pg_schema=""
  fi
}
cleanup() {
  local status=$?
  if [ "$status" != 0 ] && [ -n "$server_pid" ] && [ -s "$work/server.log" ]; then
    echo "load.sh: exit status $status; the server's log ends with:" >&2
    tail -n 20 "$work/server.log" >&2
  fi
  stop_server
  drop_schema
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools and build --------------------------------------------------------------------------
command -v curl >/dev/null || die "curl is needed"
if ! command -v wrk >/dev/null; then
  say "installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
pg_available=false
if [ "$backend" != sqlite ]; then
  if command -v psql >/dev/null && command -v pgbench >/dev/null \
    && psql "$pg_url" -qAt -c 'SELECT 1' >/dev/null 2>&1; then
    pg_available=true
  elif [ "$backend" = postgres ]; then
    die "PostgreSQL is not reachable at $pg_url (or psql/pgbench are missing)"
  else
    say "PostgreSQL is not reachable at $pg_url (or psql/pgbench are missing): SQLite only"
  fi
fi

say "building (release): the server and examples/storage_baseline.rs"
(cd "$root" && cargo build --release --bin agent-sessions --example storage_baseline)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
server_bin="$target_dir/release/agent-sessions"
baseline_bin="$target_dir/release/examples/storage_baseline"

started_at=$SECONDS

# --- helpers ----------------------------------------------------------------------------------
uuid() { cat /proc/sys/kernel/random/uuid; }
random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
api_key="$(random_hex 24)"

# A port nothing listens on (bash's /dev/tcp connects only when something does).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# start_server DATABASE_URL: the release server with the key, limits off; waits for /livez.
base=""
start_server() {
  local port
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  DATABASE_URL="$1" AGENT_SESSIONS_BIND="127.0.0.1:$port" AGENT_SESSIONS_API_KEY="$api_key" \
    AGENT_SESSIONS_RATE_LIMIT_SESSION_PER_MINUTE=0 \
    AGENT_SESSIONS_RATE_LIMIT_USER_PER_HOUR=0 \
    AGENT_SESSIONS_RATE_LIMIT_AGENT_PER_HOUR=0 \
    RUST_LOG=warn "$server_bin" serve >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/livez")" = 200 ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/server.log" >&2
  die "the server did not answer /livez"
}

# check_server WHEN: fails, with the server's exit status and log, if it is no longer running.
check_server() {
  kill -0 "$server_pid" 2>/dev/null && return 0
  local status=0
  wait "$server_pid" || status=$?
  server_pid=""
  tail -n 20 "$work/server.log" >&2
  if [ "$status" -gt 128 ]; then
    die "the server exited during $1: killed by signal $((status - 128))"
  elif [ "$status" = 0 ]; then
    # What it does on SIGTERM or SIGINT (it drains, then exits 0).
    die "the server exited during $1 with status 0: it was stopped (SIGTERM or SIGINT)"
  fi
  die "the server exited during $1 with status $status"
}

# api METHOD PATH [JSON]: one authenticated request; prints the body, fails unless 2xx.
api() {
  local out="$work/api.out" status data=()
  [ $# -ge 3 ] && data=(--data "$3")
  status="$(curl -sS -o "$out" -w '%{http_code}' -X "$1" "$base$2" \
    -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' "${data[@]}")"
  case "$status" in
    2??) cat "$out" ;;
    *) die "$1 $2 answered $status: $(head -c 500 "$out")" ;;
  esac
}

# api_batch METHOD < "PATH<TAB>JSON" lines: the requests through one curl (one connection),
# in order; prints one response body per line, fails unless every answer is 2xx.
api_batch() {
  local config="$work/batch.curl" out="$work/batch.out" path body first=true
  while IFS=$'\t' read -r path body; do
    $first || echo next   # starts the next request
    first=false
    body="${body//\\/\\\\}"   # escaped for curl's config syntax: \ and "
    printf 'url = "%s%s"\nrequest = "%s"\nheader = "Authorization: Bearer %s"\n' \
      "$base" "$path" "$1" "$api_key"
    printf 'header = "Content-Type: application/json"\ndata = "%s"\n' "${body//\"/\\\"}"
    printf 'write-out = "\\n%%{http_code}\\n"\n'
  done >"$config"
  curl -sS -K "$config" >"$out"
  # The output alternates: a body (one line of JSON), then its status.
  if awk 'NR % 2 == 0 && $0 !~ /^2[0-9][0-9]$/ { bad = 1 } END { exit bad ? 0 : 1 }' "$out"; then
    die "$1 requests failed: $(paste - - <"$out" | grep -v $'\t2[0-9][0-9]$' | head -n 3)"
  fi
  awk 'NR % 2 == 1' "$out"
}

# seed_http: the agents, the sessions the scenarios use, and a history to page through.
seed_http() {
  agent="$(uuid)"          # the measured agent: it owns the 64 sessions and is listed
  create_agent="$(uuid)"   # the create scenario's sessions go to another agent
  api PUT "/api/agents/$agent" '{"name":"load"}' >/dev/null
  api PUT "/api/agents/$create_agent" '{"name":"load-create"}' >/dev/null
  for _ in $(seq 1 "$SESSIONS"); do
    printf '/api/messaging/sessions\t{"agentId":"%s","userId":"%s"}\n' "$agent" "$(uuid)"
  done | api_batch POST | grep -o '"sessionId":"[0-9a-f-]\{36\}"' | cut -d'"' -f4 >"$work/sessions.txt"
  [ "$(grep -c . "$work/sessions.txt")" = "$SESSIONS" ] || die "could not read the created sessions' ids"
  for _ in $(seq 1 256); do uuid; done >"$work/users.txt"   # the create scenario's users
  # A message in every session (pg_post_message.sql reads the last one), then the history.
  history_session="$(head -n 1 "$work/sessions.txt")"
  {
    while read -r sid; do
      printf '/api/messaging/sessions/%s/messages\t{"content":"hello"}\n' "$sid"
    done <"$work/sessions.txt"
    for i in $(seq 2 "$HISTORY"); do
      printf '/api/messaging/sessions/%s/messages\t{"content":"message %s"}\n' "$history_session" "$i"
    done
  } | api_batch POST >/dev/null
}

# Results, by key "<backend>:<scenario>": requests per second, p50 and p99 in µs, connections.
declare -A RPS P50 P99 CONNS TARGET
failures=()

# wrk_run KEY CONNECTIONS METHOD PATH [BODY] [DELAY_MS]: one wrk run of request.lua; "{id}" in
# the path or body takes each line of $ids in turn.
ids=""
run_seconds=""   # when set, the length of the next wrk runs instead of --duration
wrk_run() {
  local key="$1" conns="$2" log="$work/wrk-${1//[:\/ ]/_}.log" result wrk_status=0
  local seconds="${run_seconds:-$duration}"
  say "wrk $key: $3 $4, $conns connections, ${seconds}s${6:+, paced at ${6} ms}"
  LOAD_METHOD="$3" LOAD_PATH="$4" LOAD_BODY="${5:-}" LOAD_IDS="$ids" LOAD_TOKEN="$api_key" \
    LOAD_DELAY_MS="${6:-}" \
    wrk --latency -t2 -c"$conns" -d"${seconds}s" --timeout 10s -s "$load_dir/request.lua" \
    "$base" >"$log" 2>&1 || wrk_status=$?
  check_server "$key"
  [ "$wrk_status" = 0 ] || { cat "$log" >&2; die "wrk failed"; }
  result="$(grep '^LOAD_RESULT ' "$log")" || { cat "$log" >&2; die "wrk printed no result"; }
  RPS[$key]="$(field rps "$result")"
  P50[$key]="$(field p50_us "$result")"
  P99[$key]="$(field p99_us "$result")"
  CONNS[$key]="$conns"
  local bad errors
  bad="$(field non2xx "$result")"
  errors="$(field socket_errors "$result")"
  say "  $(printf '%.0f' "${RPS[$key]}") req/s, p50 $(ms "${P50[$key]}"), p99 $(ms "${P99[$key]}"), non-2xx $bad, socket errors $errors"
  if [ "$bad" != 0 ] || [ "$errors" != 0 ]; then
    local kinds first_bad
    kinds="$(for k in connect read write timeout; do printf '%s %s, ' "$(field "$k" "$result")" "$k"; done)"
    first_bad="$(grep '^LOAD_FIRST_BAD ' "$log" | cut -c16- | head -c 300 || true)"
    failures+=("$key: $bad non-2xx, $errors socket errors (${kinds%, }). $first_bad")
    say "  the server's log ends with:"
    tail -n 5 "$work/server.log" | cut -c1-300 >&2
  fi
  settle
}

# settle: waits until the server has finished what wrk left behind. wrk stops by closing its
# connections, but the requests the server had accepted still run (a slow scenario can leave
# seconds of work queued for the database pool); the next run must not start behind them.
# Done when one GET session answers within 50 ms, then half a second's pause.
settle() {
  local sid t
  sid="$(head -n 1 "$work/sessions.txt")"
  for _ in $(seq 1 300); do
    check_server "the wait after a run"
    t="$(curl -s -o /dev/null -m 60 -w '%{http_code} %{time_total}' \
      -H "Authorization: Bearer $api_key" "$base/api/messaging/sessions/$sid" || true)"
    if awk -v s="${t% *}" -v t="${t#* }" 'BEGIN { exit !(s == 200 && t < 0.05) }'; then
      sleep 0.5
      return 0
    fi
    sleep 0.5
  done
  die "the server did not become idle after a run"
}

# field NAME "k=v k=v ...": the value of one field of a result line.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# ms MICROSECONDS: "1.23 ms", or "12.3 µs" below 0.1 ms; "avg:MICROSECONDS" gives "avg 1.23 ms",
# and nothing "—".
ms() {
  case "$1" in
    "") echo "—" ;;
    avg:*) echo "avg $(ms "${1#avg:}")" ;;
    *) awk -v us="$1" 'BEGIN { if (us < 100) printf "%.1f µs", us; else printf "%.2f ms", us / 1000 }' ;;
  esac
}

# paced KEY SATURATED_KEY METHOD PATH BODY: GET session / POST message at half the measured
# rate. wrk has no rate option (Debian has no wrk2): each connection waits PACED_DELAY_MS after
# every response, so C connections send C * 1000 / (PACED_DELAY_MS + latency) requests per
# second. C is first chosen from the pause alone, then corrected by a 2-second calibration run
# (the latency adds to each pause; at most 1.5 times more connections, so that one noisy
# calibration cannot push the run to saturation); the rate achieved is reported next to
# p50/p99. Like any closed loop, a server that slows down also slows the senders
# (coordinated omission).
paced() {
  local key="$1" saturated="$2" method="$3" path="$4" body="$5" target conns
  target="$(awk -v r="${RPS[$saturated]}" 'BEGIN { printf "%.0f", r / 2 }')"
  TARGET[$key]="$target"
  conns="$(awk -v t="$target" -v d="$PACED_DELAY_MS" 'BEGIN { c = int(t * d / 1000 + 0.5); print (c < 2 ? 2 : c) }')"
  say "half rate for $saturated: target $target req/s; calibrating $conns connections"
  run_seconds=2
  wrk_run "$key:calibration" "$conns" "$method" "$path" "$body" "$PACED_DELAY_MS"
  run_seconds=""
  conns="$(awk -v c="$conns" -v t="$target" -v a="${RPS[$key:calibration]}" \
    'BEGIN { n = (a > 0) ? int(c * t / a + 0.5) : c; if (n > 1.5 * c) n = int(1.5 * c + 0.5)
             print (n < 2 ? 2 : n) }')"
  wrk_run "$key" "$conns" "$method" "$path" "$body" "$PACED_DELAY_MS"
}

# scenarios BACKEND: every wrk run against the running, seeded server.
scenarios() {
  local b="$1" sessions="$work/sessions.txt"
  ids=""
  wrk_run "$b:livez" "$READ_CONNS" GET /livez
  ids="$sessions"
  wrk_run "$b:get_session" "$READ_CONNS" GET '/api/messaging/sessions/{id}'
  ids="$work/users.txt"
  wrk_run "$b:create" "$READ_CONNS" POST /api/messaging/sessions \
    "{\"agentId\":\"$create_agent\",\"userId\":\"{id}\"}"
  ids="$sessions"
  wrk_run "$b:post_message" "$WRITE_CONNS" POST '/api/messaging/sessions/{id}/messages' \
    '{"content":"hello"}'
  ids=""
  wrk_run "$b:get_messages" "$READ_CONNS" GET \
    "/api/messaging/sessions/$history_session/messages?limit=50"
  wrk_run "$b:list" "$READ_CONNS" GET \
    "/api/messaging/sessions?agentId=$agent&status=active&limit=50"
  ids="$sessions"
  paced "$b:get_session_half" "$b:get_session" GET '/api/messaging/sessions/{id}' ''
  paced "$b:post_message_half" "$b:post_message" POST '/api/messaging/sessions/{id}/messages' \
    '{"content":"hello"}'
}

# baseline_line KEY "BASELINE name=... rate=... p50_us=... p99_us=... threads=...": record it.
baseline_line() {
  local key="$1" line
  line="$(grep '^BASELINE ' <<<"$2")" || die "no baseline result for $key"
  RPS[$key]="$(field rate "$line")"
  P50[$key]="$(field p50_us "$line")"
  P99[$key]="$(field p99_us "$line")"
  CONNS[$key]="$(field threads "$line")"
}

# pgbench_run KEY TEMPLATE: pgbench on the seeded schema with one script per session (the
# template with __SESSION_ID__ / __AGENT_ID__ filled in: pgbench variables cannot hold a list
# to rotate over), prepared statements, every transaction's latency logged for p50/p99.
pgbench_run() {
  local key="$1" template="$2" scripts=() sid n=0 out tps p50 p99
  while read -r sid; do
    n=$((n + 1))
    sed -e "s/__SESSION_ID__/$sid/g" -e "s/__AGENT_ID__/$agent/g" "$template" >"$work/pgb-$n.sql"
    scripts+=(-f "$work/pgb-$n.sql")
  done <"$work/sessions.txt"
  rm -f "$work"/pgblog.*
  say "pgbench $key: $(basename "$template"), $PG_CLIENTS connections, ${duration}s"
  out="$(cd "$work" && PGOPTIONS="-csearch_path=$pg_schema" pgbench -n -M prepared \
    -c "$PG_CLIENTS" -j 2 -T "$duration" -l --log-prefix=pgblog "${scripts[@]}" "$pg_url" 2>&1)" \
    || { echo "$out" >&2; die "pgbench failed"; }
  tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -n 1)"
  [ -n "$tps" ] || { echo "$out" >&2; die "pgbench printed no tps"; }
  if grep -q '^number of failed transactions: [1-9]' <<<"$out"; then
    failures+=("$key: $(grep '^number of failed transactions' <<<"$out")")
  fi
  # Log lines: client_id transaction_no latency_us script_no epoch epoch_us. pgbench reads its
  # clock lazily, so transactions shorter than its loop's turn are logged with latency 0 (a
  # third of the fast primary-key reads here): then its percentiles mean nothing and only its
  # own average is shown.
  read -r p50 p99 zeros < <(cat "$work"/pgblog.* | awk '{ print $3 }' | sort -n | awk '
    { v[NR] = $1; if ($1 == 0) z++ }
    END { i50 = int(NR * 0.50); i99 = int(NR * 0.99); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
          print v[i50], v[i99], z + 0 }')
  if [ "$zeros" -gt 0 ]; then
    p50="avg:$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' <<<"$out" | head -n 1 | awk '{ print $1 * 1000 }')"
    p99=""
  fi
  RPS[$key]="$tps"
  P50[$key]="$p50"
  P99[$key]="$p99"
  CONNS[$key]="$PG_CLIENTS"
  say "  $(printf '%.0f' "$tps") tx/s, p50 $(ms "$p50"), p99 $(ms "$p99")"
}

# --- one backend ------------------------------------------------------------------------------
run_sqlite() {
  local db="$work/sqlite/db.sqlite" out
  say "== SQLite: fresh database $db"
  mkdir -p "$work/sqlite"
  start_server "$db"
  seed_http
  say "seeding $list_sessions sessions over $LIST_AGENTS agents (storage_baseline seed)"
  local t0=$SECONDS
  "$baseline_bin" seed --path "$db" --agent "$agent" --sessions "$list_sessions" \
    --agents "$LIST_AGENTS" $sqlite_analyze >&2
  SEED_SECONDS[sqlite]=$((SECONDS - t0))
  scenarios sqlite
  stop_server
  say "storage baselines (server stopped)"
  out="$("$baseline_bin" sqlite-commits --path "$work/commits.sqlite" --threads 1 --seconds "$duration")"
  baseline_line sqlite:commits "$out"
  out="$("$baseline_bin" sqlite-reads --path "$db" --ids "$work/sessions.txt" \
    --threads "$(nproc)" --seconds "$duration")"
  baseline_line sqlite:reads "$out"
}

run_postgres() {
  pg_schema="load_$(random_hex 6)"
  say "== PostgreSQL: fresh schema $pg_schema"
  psql "$pg_url" -qAt -c "CREATE SCHEMA $pg_schema" >/dev/null
  start_server "$pg_url?options=-csearch_path%3D$pg_schema"
  seed_http
  say "seeding $list_sessions sessions over $LIST_AGENTS agents (pg_seed.sql)"
  local t0=$SECONDS now step count
  now="$(date +%s%3N)"
  step=$(( 79200000 / list_sessions )); [ "$step" -ge 1 ] || step=1   # 22 h over the sessions
  PGOPTIONS="-csearch_path=$pg_schema" psql "$pg_url" -q -v agent="$agent" -v n="$list_sessions" \
    -v agents="$LIST_AGENTS" -v now="$now" -v step="$step" -f "$load_dir/pg_seed.sql" >&2
  count="$(PGOPTIONS="-csearch_path=$pg_schema" psql "$pg_url" -qAt -c 'SELECT count(*) FROM sessions')"
  [ "$count" -ge "$list_sessions" ] || die "the seed stored $count sessions"
  SEED_SECONDS[postgres]=$((SECONDS - t0))
  scenarios postgres
  stop_server
  say "storage baselines (server stopped)"
  pgbench_run postgres:pg_get "$load_dir/pg_get_session.sql"
  pgbench_run postgres:pg_post "$load_dir/pg_post_message.sql"
  drop_schema
}

declare -A SEED_SECONDS
ran=()
if [ "$backend" != postgres ]; then run_sqlite; ran+=(sqlite); fi
if [ "$backend" != sqlite ] && $pg_available; then run_postgres; ran+=(postgres); fi

# --- report -----------------------------------------------------------------------------------
# ratio A B: A / B as "0.42×".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "—" }'; }
rate() { awk -v r="$1" 'BEGIN { printf "%.0f", r }'; }
# thousands N: "1,000,000".
thousands() { sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta' <<<"$1"; }
check() { awk -v v="$1" -v limit="$2" -v op="$3" 'BEGIN {
  ok = (op == "<") ? (v < limit) : (v >= limit); print (ok ? "✓" : "✗ (missed)") }'; }

# row LABEL KEY [BASELINE_LABEL BASELINE_RATE RATIO]
row() {
  local k="$2"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "${CONNS[$k]}" "$(rate "${RPS[$k]}")" \
    "$(ms "${P50[$k]}")" "$(ms "${P99[$k]}")" "${3:-—}" "${4:-—}" "${5:-—}"
}

git_rev="$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(cd "$root" && git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  git_rev="$git_rev (with uncommitted changes)"
fi
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
mem="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
fs="$(df -PT "$work" | awk 'NR == 2 { print $2 }')"

echo
echo "### Load benchmark ($(date -u +%Y-%m-%d), git $git_rev)"
echo
echo "Machine: $(nproc) CPUs ($cpu), $mem RAM; files on $fs. $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2);" \
  "wrk and the server share the machine. ${duration}s per run, wrk -t2; every request carries an API key."
for b in "${ran[@]}"; do
  echo
  if [ "$b" = sqlite ]; then
    echo "#### SQLite (WAL, synchronous=FULL${sqlite_analyze:+; ANALYZE run after the seed})"
  else
    echo "#### PostgreSQL ($(psql "$pg_url" -qAt -c 'SHOW server_version' | cut -d' ' -f1), same machine)"
  fi
  echo
  echo "| scenario | conns | req/s | p50 | p99 | baseline | baseline req/s | ratio |"
  echo "| --- | --: | --: | --: | --: | --- | --: | --: |"
  row "GET /livez (no database)" "$b:livez"
  if [ "$b" = sqlite ]; then
    row "GET session" "$b:get_session" "GET /livez" "$(rate "${RPS[$b:livez]}")" \
      "$(ratio "${RPS[$b:get_session]}" "${RPS[$b:livez]}")"
  else
    row "GET session" "$b:get_session" "pgbench: the same SELECT by id" "$(rate "${RPS[$b:pg_get]}")" \
      "$(ratio "${RPS[$b:get_session]}" "${RPS[$b:pg_get]}")"
  fi
  row "POST session (create)" "$b:create"
  if [ "$b" = sqlite ]; then
    row "POST message (64 sessions)" "$b:post_message" "SQLite commits, 1 writer" \
      "$(rate "${RPS[$b:commits]}")" "$(ratio "${RPS[$b:post_message]}" "${RPS[$b:commits]}")"
  else
    row "POST message (64 sessions)" "$b:post_message" "pgbench: the same transaction" \
      "$(rate "${RPS[$b:pg_post]}")" "$(ratio "${RPS[$b:post_message]}" "${RPS[$b:pg_post]}")"
  fi
  row "GET messages (limit 50)" "$b:get_messages"
  row "GET sessions list (agent, active, limit 50; $(thousands "$list_sessions") stored)" "$b:list" \
    "target ≥ 2000 req/s" 2000 "$(ratio "${RPS[$b:list]}" 2000) $(check "${RPS[$b:list]}" 2000 '>=')"
  row "GET session at half rate (target $(thousands "${TARGET[$b:get_session_half]}")/s)" "$b:get_session_half" "target p99 < 5 ms" — \
    "$(check "${P99[$b:get_session_half]}" 5000 '<')"
  row "POST message at half rate (target $(thousands "${TARGET[$b:post_message_half]}")/s)" "$b:post_message_half" "target p99 < 50 ms" — \
    "$(check "${P99[$b:post_message_half]}" 50000 '<')"
  if [ "$b" = sqlite ]; then
    row "storage: SQLite point read by id (threads)" "$b:reads"
    row "storage: SQLite INSERT commit (threads)" "$b:commits"
  else
    row "storage: pgbench SELECT by id (clients)" "$b:pg_get"
    row "storage: pgbench POST-message transaction (clients)" "$b:pg_post"
  fi
  echo
  echo "Seeding the list's sessions took ${SEED_SECONDS[$b]} s. Half-rate rows: req/s is the rate achieved" \
    "(target: half the saturating rate, $PACED_DELAY_MS ms pause per connection)."
done
echo
echo "Total time $((SECONDS - started_at)) s (after the build)."

if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "FAILED REQUESTS:"
  printf -- '- %s\n' "${failures[@]}"
  exit 1
fi
