return { status = "OK", output = "fine", metrics = { value = 42 } }
