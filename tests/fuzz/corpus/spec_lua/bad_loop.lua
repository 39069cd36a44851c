local s = 0
while true do s = s + 1 end
