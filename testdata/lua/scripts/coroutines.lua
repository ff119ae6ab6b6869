local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
local sum = gen() + gen() + gen()
local co = coroutine.create(function(a) local b = coroutine.yield(a * 2) return b + 1 end)
local _, x = coroutine.resume(co, 5)
local _, y = coroutine.resume(co, 10)
return { status = "OK", metrics = { sum = sum, x = x, y = y } }
