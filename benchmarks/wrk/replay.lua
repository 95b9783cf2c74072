-- Replays prepared requests, each once: wrk -t1 ... -s replay.lua URL -- FILE
--
-- FILE holds one request a line: "PATH<TAB>AUTHORIZATION" (the second field empty for an
-- unsigned request). Each request is sent once, in order; when every one has been sent the
-- thread stops, so a run ends at -d or when the prepared requests run out, whichever comes
-- first (wrk's requests/s is then over the shorter time). A signed webhook's jti may be used
-- once, so a request is never repeated: a connection that asks for one more after the end
-- gets GET /replay-exhausted (a 404 on both apps, stored nowhere), unanswered as the thread
-- stops. wrk's own Requests/sec divides by -d even when the thread stopped sooner, so the
-- script also times the run itself (first request sent to last response read, CLOCK_MONOTONIC
-- through LuaJIT's ffi). done() prints one JSON line: "wrk-result {...}".

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

function request()
   local index = next_request
   if index > #prepared then
      wrk.thread:stop()
      return wrk.format("GET", "/replay-exhausted")
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
