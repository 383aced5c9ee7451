#!/usr/bin/env bash
# End-to-end tests of the web chat page (/chat) in headless Chromium, driven by Playwright
# (playwright-core from npm; the browser is Debian's /usr/bin/chromium, never downloaded).
# Starts a real server on a fresh SQLite file with an API key (so the page must use a
# publishable key), registers two agents, runs the example echo agent for one of them, then
# runs chat.test.mjs. Screenshots land in e2e/screenshots/.
# Needs node/npm and chromium (apt: chromium). Usage: bash e2e/run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
e2e="$root/e2e"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [ -f "$work/server.pid" ]; then
    pid="$(cat "$work/server.pid")"
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

chromium="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] || { echo "no Chromium at $chromium (apt-get install chromium)" >&2; exit 1; }

echo "== e2e: build"
cargo build --locked --quiet --manifest-path "$root/Cargo.toml" --bins --examples
bin="$root/target/debug/agent-sessions"

echo "== e2e: keys and server"
db="$work/e2e.db"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
ADMIN_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
AGENT_ID="$(python3 -c 'import uuid; print(uuid.uuid4())')"
SHORT_AGENT_ID="$(python3 -c 'import uuid; print(uuid.uuid4())')"
export DATABASE_URL="$db"
# Publishable keys (sessions:create only, bound to one agent) for the page; the echo agent's
# own key. Made before the server starts, so that it serves the first as its chat config.
CHAT_KEY="$("$bin" keys create --scope sessions:create --agent "$AGENT_ID" --name web 2>/dev/null)"
SHORT_CHAT_KEY="$("$bin" keys create --scope sessions:create --agent "$SHORT_AGENT_ID" --name web-short 2>/dev/null)"
ECHO_KEY="$("$bin" keys create --scope sessions:read,sessions:write --agent "$AGENT_ID" --name echo 2>/dev/null)"

# The server is started (and restarted, by the test of a dropped stream) by this script, which
# stops the running one first (SIGTERM: streams end, requests drain) and waits until the new
# one is ready.
cat >"$work/server.sh" <<SERVER
#!/usr/bin/env bash
set -euo pipefail
if [ -f "$work/server.pid" ]; then
  kill "\$(cat "$work/server.pid")" 2>/dev/null || true
  while kill -0 "\$(cat "$work/server.pid")" 2>/dev/null; do sleep 0.05; done
fi
DATABASE_URL="$db" AGENT_SESSIONS_BIND="127.0.0.1:$port" RUST_LOG=warn \\
  AGENT_SESSIONS_API_KEY="$ADMIN_KEY" \\
  AGENT_SESSIONS_CHAT_AGENT_ID="$AGENT_ID" AGENT_SESSIONS_CHAT_KEY="$CHAT_KEY" \\
  AGENT_SESSIONS_RATE_LIMIT_SESSION_PER_MINUTE=30 \\
  nohup "$bin" serve >>"$work/server.log" 2>&1 &
echo \$! >"$work/server.pid"
for _ in \$(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "the server did not become ready; its log:" >&2
cat "$work/server.log" >&2
exit 1
SERVER
bash "$work/server.sh"
auth=(-H "Authorization: Bearer $ADMIN_KEY")
curl -fsS -X PUT "${auth[@]}" -H 'Content-Type: application/json' \
  -d '{"name": "Echo"}' "$base/api/agents/$AGENT_ID" >/dev/null
# A short timeout inside a large warning window: near its expiry from the first moment.
curl -fsS -X PUT "${auth[@]}" -H 'Content-Type: application/json' \
  -d '{"name": "Short", "timeoutConfig": {"timeoutMinutes": 5, "warningThresholdMinutes": 10}}' \
  "$base/api/agents/$SHORT_AGENT_ID" >/dev/null

AGENT_SESSIONS_URL="$base" AGENT_ID="$AGENT_ID" AGENT_KEY="$ECHO_KEY" \
  ECHO_CURSOR_FILE="$work/echo.cursor" RUST_LOG=warn \
  "$root/target/debug/examples/echo_agent" >"$work/echo.log" 2>&1 &
pids+=($!)

echo "== e2e: Playwright"
(cd "$e2e" && npm ci --no-audit --no-fund --silent)
mkdir -p "$e2e/screenshots"
status=0
BASE_URL="$base" ADMIN_KEY="$ADMIN_KEY" AGENT_ID="$AGENT_ID" CHAT_KEY="$CHAT_KEY" \
  SHORT_AGENT_ID="$SHORT_AGENT_ID" SHORT_CHAT_KEY="$SHORT_CHAT_KEY" CHROMIUM="$chromium" \
  SCREENSHOTS="$e2e/screenshots" RESTART_SERVER="$work/server.sh" \
  node --test --test-concurrency=1 "$e2e/chat.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log" >&2; tail -n 50 "$work/server.log" >&2
  echo "--- echo agent log" >&2; tail -n 50 "$work/echo.log" >&2
  exit "$status"
fi
echo "== e2e: all checks passed"
