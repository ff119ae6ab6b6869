local s = string.format("%5.2f|%-3s|%q", 3.14159, "a", "x\n")
local t = {}
for w in string.gmatch("one two three", "%a+") do t[#t + 1] = w:upper() end
local g = string.gsub("hello world", "(o)", "[%1]")
return { status = "OK", output = s .. table.concat(t, ",") .. g }
