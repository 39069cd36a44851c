-- frontend_json.lua: a layer serialized by Keras (keras.layers.serialize, or
-- a layer entry of model.to_json()) -> a layer description for keras.lower.
local json = require("dkjson")

local M = {}

local format, type, pairs = string.format, type, pairs

-- JSON null, kept inside arrays (a batch size of null) and dropped from objects.
local NULL = setmetatable({}, { __tostring = function() return "null" end, __name = "null" })
M.NULL = NULL

-- Drops null-valued object fields, so absent and null read alike.
local function strip_nulls(v)
  if type(v) ~= "table" or v == NULL then return v end
  local is_array = getmetatable(v) and getmetatable(v).__jsontype == "array"
  for k, x in pairs(v) do
    if x == NULL and not is_array then
      v[k] = nil
    else
      v[k] = strip_nulls(x)
    end
  end
  return v
end

-- Parses `text` (the contents of `diag.file`); records errors in diag.
function M.parse(text, diag)
  local ok, obj, pos, err = pcall(json.decode, text, 1, NULL)
  if not ok then
    obj, err = nil, tostring(obj)
  end
  if obj == nil then
    diag:error(format("malformed JSON: %s", err or "no value"), "json")
    return nil
  end
  local rest = text:find("%S", pos)
  if rest then
    local line = select(2, text:sub(1, rest):gsub("\n", "")) + 1
    diag:error(format("malformed JSON: text after the value at line %d", line), "json")
    return nil
  end
  local mt = type(obj) == "table" and getmetatable(obj)
  if type(obj) ~= "table" or obj == NULL or #obj > 0 or (mt and mt.__jsontype == "array") then
    diag:error("expected a JSON object describing one layer", "json")
    return nil
  end
  strip_nulls(obj)
  local config = obj.config
  if type(config) ~= "table" then
    diag:error("missing layer config object", "config")
    return nil
  end
  local desc = { class_name = obj.class_name, config = config }
  if type(obj.build_config) == "table" and obj.build_config.input_shape ~= nil then
    desc.input_shape, desc.input_shape_field = obj.build_config.input_shape, "build_config.input_shape"
  elseif config.batch_input_shape ~= nil then
    -- tf.keras writes the shape of a model's first layer here
    desc.input_shape, desc.input_shape_field = config.batch_input_shape, "config.batch_input_shape"
  end
  return desc
end

return M
