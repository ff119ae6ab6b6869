-- builtin:dns — a DNS answer, optionally from a chosen server.
--
-- config:
--   name              name to look up (default: the check's target)
--   type              A (default), AAAA, CNAME, MX, TXT, NS, PTR, SRV
--   server            "host" or "host:port"; default: the system resolver
--   expect            answer (string) or list of answers that must all be present
--                     (for MX the host name)
--   warn_ms, crit_ms  latency thresholds (metric "time", seconds)
--   timeout, tcp      as dns.lookup
--
-- metrics: time (s), answers

local function text(a)
  if type(a) == "table" then return a.host or a.target or "" end
  return a
end

function check(ctx)
  local c = ctx.config
  local name = c.name or ctx.target
  local typ = c.type or "A"
  local t0 = time.monotonic()
  local answers, err, info = dns.lookup(name, typ, { server = c.server, timeout = c.timeout, tcp = c.tcp })
  local elapsed = time.monotonic() - t0
  local function ms(v) if v then return string.format("%g", v / 1000) end end
  local metrics = { time = { value = elapsed, unit = "s", warn = ms(c.warn_ms), crit = ms(c.crit_ms), min = 0 } }
  if not answers then
    return { status = "CRITICAL", output = err, metrics = metrics }
  end
  metrics.answers = #answers
  local got, seen = {}, {}
  for _, a in ipairs(answers) do
    got[#got + 1] = text(a)
    seen[string.lower(text(a))] = true
  end
  local summary = string.format("%s %s: %s (%.1f ms)", name, typ,
    #got > 0 and table.concat(got, ", ") or "no answer", elapsed * 1000)
  local expect = c.expect
  if type(expect) == "string" then expect = { expect } end
  if expect then
    for _, want in ipairs(expect) do
      if not seen[string.lower(want)] then
        return { status = "CRITICAL", metrics = metrics, output = summary .. "; missing " .. want }
      end
    end
  elseif #got == 0 then
    return { status = "CRITICAL", metrics = metrics, output = summary }
  end
  return { output = summary, metrics = metrics }
end
