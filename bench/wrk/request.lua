-- One fixed request for wrk, described by environment variables (bench/run.py sets them):
-- WRK_METHOD, WRK_BODY, and WRK_HEADERS as "Name: value" lines.
wrk.method = os.getenv("WRK_METHOD") or "GET"
wrk.body = os.getenv("WRK_BODY")
for line in string.gmatch(os.getenv("WRK_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end
