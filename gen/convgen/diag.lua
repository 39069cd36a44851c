-- diag.lua: diagnostics, collected so a user sees every problem at once.
-- Messages read `convgen: <file>: error: <what> (<field>)`.
local M = {}

local format, concat, insert = string.format, table.concat, table.insert

local Diag = {}
Diag.__index = Diag

-- A failure thrown with M.raise carries its collector; anything else is a bug.
local FAILURE = {}

-- Starts collecting diagnostics about `file` (a path or a label like "<spec>").
function M.new(file)
  return setmetatable({ file = file, errors = {}, warnings = {} }, Diag)
end

-- Records an error; `field` names the offending field or option (may be nil).
function Diag:error(message, field)
  insert(self.errors, { message = message, field = field, file = self.file })
end

-- Records a warning: the output is still produced.
function Diag:warn(message, field)
  insert(self.warnings, { message = message, field = field, file = self.file })
end

-- Records an error about another file (a weights file, an input).
function Diag:error_in(file, message, field)
  insert(self.errors, { message = message, field = field, file = file })
end

-- A view of this collector whose fields are prefixed ("config.layers[3]" +
-- "config.filters"): a layer inside a model reports where it sits.
function Diag:scoped(prefix)
  local parent = self
  local function field(f) return f and (prefix .. "." .. f) or prefix end
  local view = { file = self.file, errors = self.errors, warnings = self.warnings }
  view.error = function(_, message, f) parent:error(message, field(f)) end
  view.warn = function(_, message, f) parent:warn(message, field(f)) end
  view.error_in = function(_, file, message, f) parent:error_in(file, message, field(f)) end
  view.ok = function() return parent:ok() end
  view.check = function() return parent:check() end
  view.fail = function(_, message, f) return parent:fail(message, field(f)) end
  return view
end

-- True when no error was recorded.
function Diag:ok()
  return #self.errors == 0
end

-- Throws the collected errors if there are any.
function Diag:check()
  if #self.errors > 0 then error({ [FAILURE] = true, diag = self }, 0) end
end

-- Records one error and throws at once.
function Diag:fail(message, field)
  self:error(message, field)
  self:check()
end

-- Spec text ends up in messages (field names, values, paths); control
-- characters in it would break the one-line format or drive the terminal.
local ESCAPES = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function printable(s)
  return (tostring(s):gsub("[%c\127]", function(c)
    return ESCAPES[c] or format("\\x%02x", c:byte())
  end))
end
M.printable = printable

-- A string quoted for a message: "...", with quotes, backslashes and
-- control characters escaped.
function M.quote(s)
  return '"' .. printable(s:gsub('[\\"]', "\\%0")) .. '"'
end

local function line(kind, d)
  local s = format("convgen: %s: %s: %s", printable(d.file or "<input>"), kind, printable(d.message))
  if d.field then s = s .. " (" .. printable(d.field) .. ")" end
  return s
end

-- All diagnostics as text, warnings first, one per line.
function Diag:format()
  local out = {}
  for _, w in ipairs(self.warnings) do out[#out + 1] = line("warning", w) end
  for _, e in ipairs(self.errors) do out[#out + 1] = line("error", e) end
  return concat(out, "\n")
end

-- The collector carried by a thrown failure, or nil for any other error value.
function M.failure_of(err)
  if type(err) == "table" and err[FAILURE] then return err.diag end
  return nil
end

return M
