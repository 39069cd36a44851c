-- luacheck configuration for the generator (make lint).
std = "lua54"
max_line_length = 130
files["tools/embed.lua"] = { globals = { "arg" } }
