local v = json.decode(json.encode({ a = { 1, 2, 3 }, b = "x" }))
local m = re.find("version 1.2.3", [[(\d+)\.(\d+)]])
local t = time.parse("2024-01-01T00:00:00Z")
return { status = "OK", output = v.b .. m .. time.format(t), metrics = { n = #v.a } }
