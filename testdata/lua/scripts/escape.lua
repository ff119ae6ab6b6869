local ok1, e1 = pcall(function() return os.execute("id") end)
local ok2, e2 = pcall(function() return io.open("/etc/passwd") end)
local ok3, e3 = pcall(function() return string.rep("x", 2^40) end)
local ok4, e4 = pcall(load, "\27Lua")
local mt = getmetatable("")
return { status = "OK", output = tostring(ok1) .. tostring(ok2) .. tostring(ok3) .. tostring(mt) }
