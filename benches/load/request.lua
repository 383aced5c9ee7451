-- One wrk script for every scenario of benches/load.sh, configured through the environment:
--
--   LOAD_METHOD    GET (default) or POST
--   LOAD_PATH      the request path; "{id}" is replaced by each id of LOAD_IDS in turn
--   LOAD_BODY      the request body (JSON), sent with Content-Type: application/json;
--                  "{id}" is replaced as in the path
--   LOAD_IDS       a file with one id per line (needed when "{id}" appears)
--   LOAD_TOKEN     sent as "Authorization: Bearer <token>" on every request
--   LOAD_DELAY_MS  when set, each connection waits this many milliseconds after a response
--                  before its next request (a paced run: about connections * 1000 / delay
--                  requests per second, less the latency)
--
-- The requests are formatted once per thread (init), so request() costs a table lookup. Every
-- answer outside 2xx is counted per thread (response) and summed at the end (done), which
-- prints one machine-readable line:
--
--   LOAD_RESULT requests=N seconds=S rps=R p50_us=A p99_us=B non2xx=C socket_errors=D
--               connect=.. read=.. write=.. timeout=..   (the socket errors by kind)
--
-- and, when something failed, LOAD_FIRST_BAD with the first bad status and body seen.

local method = os.getenv("LOAD_METHOD") or "GET"
local path = os.getenv("LOAD_PATH") or "/"
local body = os.getenv("LOAD_BODY")
local ids_file = os.getenv("LOAD_IDS")
local token = os.getenv("LOAD_TOKEN")
local delay_ms = tonumber(os.getenv("LOAD_DELAY_MS") or "")

if body == "" then
   body = nil
end

-- Main state: the threads, to collect their counters in done().
local threads = {}

function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

-- Thread state (each thread runs its own copy of this script).
local requests = {}
local position = 0
non2xx = 0
first_bad = nil

local function substitute(template, id)
   if template == nil then
      return nil
   end
   -- Plain find and concatenation: no Lua pattern magic in ids or bodies.
   local out = template
   while true do
      local s, e = out:find("{id}", 1, true)
      if not s then
         return out
      end
      out = out:sub(1, s - 1) .. id .. out:sub(e + 1)
   end
end

function init(args)
   local headers = {}
   if token and token ~= "" then
      headers["Authorization"] = "Bearer " .. token
   end
   if body then
      headers["Content-Type"] = "application/json"
   end
   local needs_ids = path:find("{id}", 1, true) or (body and body:find("{id}", 1, true))
   if needs_ids then
      assert(ids_file, "LOAD_IDS is needed when the path or body contains {id}")
      for id in io.lines(ids_file) do
         if id ~= "" then
            -- wrk.format fills in Host and Content-Length.
            local h = {}
            for k, v in pairs(headers) do
               h[k] = v
            end
            table.insert(requests, wrk.format(method, substitute(path, id), h, substitute(body, id)))
         end
      end
      assert(#requests > 0, "no ids in " .. ids_file)
   else
      requests = { wrk.format(method, path, headers, body) }
   end
   -- Threads start at different places in the rotation.
   local index = thread_index or 0
   position = (index * math.floor(#requests / 2)) % #requests
end

function request()
   position = position % #requests + 1
   return requests[position]
end

if delay_ms then
   function delay()
      return delay_ms
   end
end

function response(status, headers, response_body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_bad == nil then
         first_bad = tostring(status) .. " " .. string.sub(response_body or "", 1, 300)
      end
   end
end

function done(summary, latency, requests)
   local bad = 0
   local sample = nil
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
      sample = sample or thread:get("first_bad")
   end
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local seconds = summary.duration / 1e6
   io.write(string.format(
      "LOAD_RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d"
         .. " connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50), latency:percentile(99), bad, socket_errors,
      e.connect, e.read, e.write, e.timeout))
   if sample then
      io.write("LOAD_FIRST_BAD " .. sample:gsub("\n", " ") .. "\n")
   end
end
