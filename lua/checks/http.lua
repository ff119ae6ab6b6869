-- builtin:http — HTTP(S) status, body match and latency.
--
-- config:
--   url               URL to fetch (default "http://<target>/")
--   method            default "GET"; body = request body
--   headers           table of request headers
--   expect_status     accepted status codes: a number, a list, or a string
--                     like "200-299,301" (default "200-399")
--   body_match        Go regexp the body must match
--   body_contains     substring the body must contain
--   warn_ms, crit_ms  latency thresholds (metric "time", seconds)
--   timeout, insecure, ca, follow_redirects, max_body: as http.request
--
-- metrics: time (s), size (B), status_code

local function status_ok(code, expect)
  if expect == nil then return code >= 200 and code <= 399 end
  if type(expect) == "number" then return code == expect end
  if type(expect) == "table" then
    for _, e in ipairs(expect) do
      if status_ok(code, e) then return true end
    end
    return false
  end
  for part in string.gmatch(tostring(expect), "[^,%s]+") do
    local lo, hi = string.match(part, "^(%d+)%-(%d+)$")
    if lo then
      if code >= tonumber(lo) and code <= tonumber(hi) then return true end
    elseif tonumber(part) == code then
      return true
    end
  end
  return false
end

local function secs(ms)
  if ms == nil then return nil end
  return string.format("%g", ms / 1000)
end

function check(ctx)
  local c = ctx.config
  local url = c.url or ("http://" .. ctx.target .. "/")
  local resp, err = http.request(c.method or "GET", url, {
    headers = c.headers, body = c.body, timeout = c.timeout, insecure = c.insecure, ca = c.ca,
    follow_redirects = c.follow_redirects, max_body = c.max_body,
  })
  if not resp then
    return { status = "CRITICAL", output = err }
  end
  local metrics = {
    time = { value = resp.elapsed, unit = "s", warn = secs(c.warn_ms), crit = secs(c.crit_ms), min = 0 },
    size = { value = #resp.body, unit = "B", min = 0 },
    status_code = resp.status,
  }
  local summary = string.format("%s %s: HTTP %d, %d bytes in %.0f ms",
    c.method or "GET", url, resp.status, #resp.body, resp.elapsed * 1000)
  if not status_ok(resp.status, c.expect_status) then
    return { status = "CRITICAL", metrics = metrics,
      output = string.format("%s (expected %s)", summary, tostring(c.expect_status or "200-399")) }
  end
  if c.body_match and not re.match(resp.body, c.body_match) then
    return { status = "CRITICAL", metrics = metrics,
      output = string.format("%s; body does not match /%s/", summary, c.body_match) }
  end
  if c.body_contains and not string.find(resp.body, c.body_contains, 1, true) then
    return { status = "CRITICAL", metrics = metrics,
      output = string.format("%s; body does not contain %q", summary, c.body_contains) }
  end
  -- No status: the latency thresholds decide.
  return { output = summary, metrics = metrics }
end
