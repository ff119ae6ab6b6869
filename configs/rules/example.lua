-- Example alert rules (see sinks/alerter/README.md). Loaded by an alerter
-- sink with rules = ["rules/*.lua"]; reloaded on SIGHUP (a broken file keeps
-- the previous rules and is reported with file:line).

-- Load average above 4 on average over the last 5 samples, for 2 minutes.
rule {
  name = "load_high",
  check = "load",
  metric = "load1",
  samples = 5,
  condition = function(w) return w:avg() > 4 end,
  ["for"] = "2m",
  clear_for = "1m",
  severity = "warning",
  summary = "load on {{target}} is {{value}}",
}

-- A check that stopped reporting (dead agent or stuck check).
rule {
  name = "no_data",
  check = "*",
  metric = "load1",
  absent = "5m",
  severity = "critical",
}
