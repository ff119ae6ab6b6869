-- builtin:tcp — a TCP service answers, optionally with the expected banner.
--
-- config:
--   host              default: the check's target
--   port              required
--   send              data to send after connecting (e.g. "QUIT\r\n")
--   expect            substring the reply must contain (e.g. "SSH-")
--   expect_regex      Go regexp the reply must match (instead of expect)
--   tls               connect with TLS (insecure, server_name, ca as tcp.connect)
--   timeout           per operation
--   warn_ms, crit_ms  thresholds on the total time (metric "time", seconds)
--
-- metrics: time (s), connect_time (s)

function check(ctx)
  local c = ctx.config
  local host = c.host or ctx.target
  if not c.port then
    return { status = "UNKNOWN", output = "config.port is required" }
  end
  local t0 = time.monotonic()
  local conn, err = tcp.connect(host, c.port, {
    timeout = c.timeout, tls = c.tls, insecure = c.insecure, server_name = c.server_name, ca = c.ca,
  })
  if not conn then
    return { status = "CRITICAL", output = err }
  end
  local function ms(v) if v then return string.format("%g", v / 1000) end end
  local metrics = { connect_time = { value = conn.connect_time, unit = "s", min = 0 } }
  if c.send then
    local _, serr = conn:send(c.send)
    if serr then
      return { status = "CRITICAL", output = serr, metrics = metrics }
    end
  end
  local banner = ""
  if c.expect or c.expect_regex then
    local data, eerr = conn:expect(c.expect or c.expect_regex, { regex = c.expect_regex ~= nil, timeout = c.timeout })
    if not data then
      metrics.time = { value = time.monotonic() - t0, unit = "s", min = 0 }
      return { status = "CRITICAL", output = eerr, metrics = metrics }
    end
    if not string.find(data, "\n$") then
      -- Show the whole line the match is on.
      local rest = conn:expect("\n", { timeout = 0.5, max = 4096 })
      if rest then data = data .. rest end
    end
    banner = string.match(data, "([^\r\n]*)[\r\n]*$") or data
  end
  conn:close()
  local elapsed = time.monotonic() - t0
  metrics.time = { value = elapsed, unit = "s", warn = ms(c.warn_ms), crit = ms(c.crit_ms), min = 0 }
  local out = string.format("%s port %s open in %.1f ms", host, tostring(c.port), elapsed * 1000)
  if banner ~= "" then out = out .. ": " .. banner end
  return { output = out, metrics = metrics }
end
