-- builtin:tls — days until a server certificate expires, and whether it is trusted.
--
-- config:
--   host              default: the check's target
--   port              default 443 (or the port in host/target)
--   server_name       SNI and the name verified (default host)
--   warn_days         default 30
--   crit_days         default 7
--   allow_untrusted   report an untrusted chain as OK (default false: CRITICAL)
--   ca, timeout       as tls.connect
--
-- metrics: days_left (d)

function check(ctx)
  local c = ctx.config
  local host = c.host or ctx.target
  local info, err = tls.connect(host, c.port, { server_name = c.server_name, ca = c.ca, timeout = c.timeout })
  if not info then
    return { status = "CRITICAL", output = err }
  end
  local warn, crit = c.warn_days or 30, c.crit_days or 7
  local metrics = {
    days_left = { value = info.days_left, unit = "d", warn = warn .. ":", crit = crit .. ":" },
  }
  local expires = time.format(info.not_after, "2006-01-02 15:04 MST")
  if not info.verified and not c.allow_untrusted then
    return { status = "CRITICAL", metrics = metrics,
      output = string.format("certificate of %s is not trusted: %s (expires %s)", host, info.verify_error, expires) }
  end
  return { metrics = metrics,
    output = string.format("certificate %s expires in %.1f days (%s), %s", info.subject, info.days_left, expires, info.version) }
end
