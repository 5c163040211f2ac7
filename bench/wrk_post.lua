-- wrk script for bench/wrk.py: POSTs one fixed body (the file named by TIFFIN_WRK_BODY), or a
-- sequence of them (TIFFIN_WRK_BODIES), with
-- the headers in TIFFIN_WRK_HEADERS ("Name: value" lines), and ends with one JSON line that
-- bench/wrk.py reads instead of wrk's human-readable summary.
local body = assert(io.open(os.getenv("TIFFIN_WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = body:read("*a")
body:close()
for line in (os.getenv("TIFFIN_WRK_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end

-- TIFFIN_WRK_BODIES: many bodies ("<length>\n<bytes>" each), sent in turn, cycling
local seq = os.getenv("TIFFIN_WRK_BODIES") or ""
if seq ~= "" then
  local f = assert(io.open(seq, "rb"))
  local data = f:read("*a")
  f:close()
  local bodies, at = {}, 1
  while at <= #data do
    local nl = data:find("\n", at, true)
    local n = tonumber(data:sub(at, nl - 1))
    bodies[#bodies + 1] = data:sub(nl + 1, nl + n)
    at = nl + n + 1
  end
  local i = 0
  request = function()
    i = i % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[i])
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"responses": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
