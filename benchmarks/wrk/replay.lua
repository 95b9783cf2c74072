-- Replays prepared requests, each once: wrk -t1 ... -s replay.lua URL -- FILE
--
-- FILE holds one request a line: "PATH<TAB>AUTHORIZATION" (the second field empty for an
-- unsigned request). Each request is sent once, in order; a run ends at -d or once every
-- prepared request has been answered, whichever comes first. A signed webhook's jti may be
-- used once, so a request is never repeated: a connection that asks for one more after the
-- last was sent gets the start of a request that never ends (no blank line after the
-- headers), which the server waits on without doing any work while the other connections'
-- last answers come in; the thread stops at the last answer. wrk's own Requests/sec divides
-- by -d even when the thread stopped sooner, so the script also times the run itself (first
-- request sent to last answer read, CLOCK_MONOTONIC through LuaJIT's ffi). done() prints
-- one JSON line: "wrk-result {...}".

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } replay_timespec;
int clock_gettime(int clock_id, replay_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local now_buffer = ffi.new("replay_timespec")

local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, now_buffer)
   return tonumber(now_buffer.tv_sec) * 1000000 + tonumber(now_buffer.tv_nsec) / 1000
end

local prepared = {}
local next_request = 1
-- Globals, so that done() can read them with thread:get().
prepared_count = 0
sent = 0
first_sent_us = 0
last_answered_us = 0
answered = 0
ok = 0

function init(args)
   for line in io.lines(args[1]) do
      local path, authorization = line:match("^([^\t]*)\t?(.*)$")
      local headers = {}
      if authorization ~= "" then
         headers["Authorization"] = authorization
      end
      prepared[#prepared + 1] = wrk.format("GET", path, headers)
   end
   prepared_count = #prepared
end

-- wrk calls request() once right after init() to check what it returns, and sends nothing
-- of it: that call gets the first request without using it up. (So: -t1 only.)
local checked = false

function request()
   if not checked then
      checked = true
      return prepared[1] or "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
   end
   local index = next_request
   if index > #prepared then
      return "GET /replay-exhausted HTTP/1.1\r\nHost: 127.0.0.1\r\n"
   end
   next_request = index + 1
   if sent == 0 then
      first_sent_us = now_us()
   end
   sent = sent + 1
   return prepared[index]
end

function response(status, headers, body)
   answered = answered + 1
   last_answered_us = now_us()
   if status >= 200 and status < 300 then
      ok = ok + 1
   end
   if answered >= #prepared then
      wrk.thread:stop()
   end
end

local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

function done(summary, latency, requests)
   local thread = threads[1]
   local errors = summary.errors
   io.write(string.format(
      'wrk-result {"prepared": %d, "sent": %d, "answered": %d, "ok": %d, "elapsed_us": %d, "requests": %d, "duration_us": %d, '
         .. '"p50_us": %d, "p99_us": %d, "max_us": %d, "connect_errors": %d, "read_errors": %d, '
         .. '"write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
      thread:get("prepared_count"), thread:get("sent"), thread:get("answered"), thread:get("ok"),
      thread:get("last_answered_us") - thread:get("first_sent_us"),
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
