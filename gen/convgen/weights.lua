-- weights.lua: loads a layer's weights from a directory of .npy files named
-- as Keras names the variables, and checks them against the IR's shapes.
local native = require("convgen.native")

local M = {}

local format, concat = string.format, table.concat

local function show_shape(s)
  local parts = {}
  for i, v in ipairs(s) do parts[i] = tostring(v) end
  return "(" .. concat(parts, ", ") .. (#s == 1 and ",)" or ")")
end
M.show_shape = show_shape

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

-- Returns the weight tensors in ir.weights order; errors go to diag.
function M.load(ir, dir, diag)
  local out = {}
  for i, w in ipairs(ir.weights) do
    local tensor, path, last_err
    for _, name in ipairs(w.names) do
      path = dir .. "/" .. name .. ".npy"
      local t, err = native.read_npy(path)
      if t then
        tensor = t
        break
      end
      if not err:match("^cannot open") then
        last_err = err
        break
      end
    end
    if last_err then
      diag:error_in(path, last_err, w.name)
    elseif not tensor then
      local files = {}
      for k, name in ipairs(w.names) do files[k] = name .. ".npy" end
      diag:error_in(dir, format("missing weight file %s for %s %s", concat(files, " or "),
        w.name, show_shape(w.shape)), w.name)
    elseif not same_shape(tensor:shape(), w.shape) then
      diag:error_in(path, format("shape %s does not match the layer: expected %s",
        show_shape(tensor:shape()), show_shape(w.shape)), w.name)
    end
    out[i] = tensor
  end
  return out
end

return M
