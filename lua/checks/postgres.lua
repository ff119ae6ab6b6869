-- builtin:postgres — connect to PostgreSQL and time a query. Needs allow = ["pg"].
--
-- config:
--   dsn               connection string (required), e.g. "host=db user=monitor dbname=app"
--   query             default "SELECT 1"
--   timeout           as pg.query
--   warn_ms, crit_ms  thresholds on connect + query time (metric "time", seconds)
--   value_column      column of the first row to report as metric "value"
--                     (default: the only column of a one-column result)
--   warn, crit        threshold ranges on "value" (e.g. replication lag)
--   min_rows          CRITICAL when fewer rows come back
--
-- metrics: time, connect_time, query_time (s), rows, value

function check(ctx)
  local c = ctx.config
  if not c.dsn then
    return { status = "UNKNOWN", output = "config.dsn is required" }
  end
  local sql = c.query or "SELECT 1"
  local rows, info = pg.query(c.dsn, sql, { timeout = c.timeout })
  if not rows then
    return { status = "CRITICAL", output = info }
  end
  local function ms(v) if v then return string.format("%g", v / 1000) end end
  local total = info.connect + info.query
  local metrics = {
    time = { value = total, unit = "s", warn = ms(c.warn_ms), crit = ms(c.crit_ms), min = 0 },
    connect_time = { value = info.connect, unit = "s", min = 0 },
    query_time = { value = info.query, unit = "s", min = 0 },
    rows = info.rows,
  }
  local first = rows[1]
  local col = c.value_column
  if first and not col then
    local n = 0
    for k in pairs(first) do n = n + 1; col = k end
    if n ~= 1 then col = nil end
  end
  if first and col and first[col] ~= nil then
    local v = first[col]
    if type(v) == "number" or c.warn or c.crit then
      metrics.value = { value = v, warn = c.warn, crit = c.crit }
    end
  end
  if c.min_rows and info.rows < c.min_rows then
    return { status = "CRITICAL", metrics = metrics,
      output = string.format("%s returned %d rows, want at least %d", sql, info.rows, c.min_rows) }
  end
  return { metrics = metrics,
    output = string.format("%s: %d rows in %.1f ms (connect %.1f ms)", info.command, info.rows, total * 1000, info.connect * 1000) }
end
