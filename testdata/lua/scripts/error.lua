local function deep(n) if n == 0 then error("bottom reached") end return deep(n - 1) + 1 end
deep(10)
