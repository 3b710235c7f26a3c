-- Creates keys named t<thread>-<n> in key ring WRK_RING until WRK_KEYS keys exist in
-- total, then only asks for the health endpoint (wrk runs for a fixed time, not a count).
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  per_thread = math.ceil(tonumber(os.getenv("WRK_KEYS")) / tonumber(os.getenv("WRK_THREADS")))
  -- wrk calls the first thread's request() once to check the script, and never sends that
  -- request: without one more, that thread would make one key fewer.
  if id == 1 then
    per_thread = per_thread + 1
  end
  ring = os.getenv("WRK_RING")
  auth = "Bearer " .. os.getenv("WRK_TOKEN")
end

function request()
  n = n + 1
  if n > per_thread then
    return wrk.format("GET", "/v1/sys/health")
  end
  local body = '{"name":"t' .. id .. '-' .. n .. '"}'
  return wrk.format("POST", "/v1/keyrings/" .. ring .. "/keys",
    {["Authorization"] = auth, ["Content-Type"] = "application/json"}, body)
end
