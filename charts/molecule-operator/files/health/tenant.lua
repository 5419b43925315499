-- Argo CD health check for moleculesai.app/Tenant (molecule-operator).
--
-- Written for argocd-cm custom checks, which run without the `string` and `math` libraries:
-- only tables, comparisons, `..` and ipairs are used. Tested under gopher-lua (Argo CD's engine)
-- by tests/health against captured statuses.
--
-- In this order:
--   Progressing  no status yet
--   Suspended    Paused=True (annotation moleculesai.app/paused: "true")
--   Degraded     being deleted and Stalled=True (a delete blocked past its deadline)
--   Progressing  being deleted
--   Progressing  status.observedGeneration missing or behind metadata.generation
--   Degraded     Stalled=True (needs a spec change or an operator action); message: the Stalled
--                condition's message
--   Degraded     phase Failed
--   Suspended    stopped by spec (phase Stopped and spec.state Stopped)
--   Healthy      Ready=True
--   Progressing  anything else (message: Ready's, else Reconciling's)
local hs = { status = "Progressing", message = "" }

local function condition(status, wanted)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

-- "Reason: message", or whichever of the two is set.
local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local reason = c.reason
  local message = c.message
  if reason == nil or reason == "" then
    if message == nil or message == "" then
      return fallback
    end
    return message
  end
  if message == nil or message == "" then
    return reason
  end
  return reason .. ": " .. message
end

-- The condition's message alone (its reason when it has none).
local function message_of(c, fallback)
  if c == nil then
    return fallback
  end
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local meta = obj.metadata or {}
local spec = obj.spec or {}
local status = obj.status
if status == nil then
  hs.message = "Waiting for the operator to report a status"
  return hs
end

local ready = condition(status, "Ready")
local stalled = condition(status, "Stalled")
local paused = condition(status, "Paused")

if is_true(paused) then
  hs.status = "Suspended"
  hs.message = describe(paused, "Paused: the operator makes no cloud call for this Tenant")
  return hs
end
if meta.deletionTimestamp ~= nil then
  if is_true(stalled) then
    hs.status = "Degraded"
    hs.message = message_of(stalled, "Stalled while being deleted")
    return hs
  end
  hs.message = "Being deleted: " .. describe(ready, "waiting for the operator")
  return hs
end
if status.observedGeneration == nil or (meta.generation ~= nil and status.observedGeneration < meta.generation) then
  hs.message = "Waiting for the operator to observe generation " .. (meta.generation or "?")
  return hs
end
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = message_of(stalled, "Stalled")
  return hs
end
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(ready, "phase Failed")
  return hs
end
if status.phase == "Stopped" and spec.state == "Stopped" then
  hs.status = "Suspended"
  hs.message = describe(ready, "Stopped by spec.state")
  return hs
end
if is_true(ready) then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end
-- Ready's reason and message say what is under way; Reconciling's when Ready has none.
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = describe(ready, "Waiting for Ready")
else
  hs.message = describe(condition(status, "Reconciling"), describe(ready, "Waiting for Ready"))
end
return hs
