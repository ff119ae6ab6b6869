function check(ctx)
  local n = (ctx.previous and ctx.previous.metrics.n or 0) + 1
  return { output = ctx.check .. " on " .. ctx.target, metrics = { n = n, load = { value = 1.5, warn = "2", crit = "4" } } }
end
