-- Argo CD health check for palisade.dev TracingPolicy and TracingPolicyNamespaced.
-- The agents write a kstatus-style status: observedGeneration, and the conditions Ready,
-- Reconciling and Degraded, each with its own observedGeneration. A status older than the
-- object's generation says nothing about the current spec, so it counts as Progressing.
-- This file is the original; argocd/generate copies it to TracingPolicyNamespaced/ and into
-- argocd/argocd-cm.yaml (test/argocd/health.test.ts checks the copies are equal).
local hs = {}

local function condition(conditionType)
  if obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local generation = obj.metadata.generation or 0
if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Palisade agents to report on this policy"
  return hs
end
if obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the agents to report generation " .. generation ..
    " (the status is of generation " .. obj.status.observedGeneration .. ")"
  return hs
end

local ready = condition("Ready")
local reconciling = condition("Reconciling")
local function stale(c)
  return c ~= nil and c.observedGeneration ~= nil and c.observedGeneration < generation
end
if stale(ready) or stale(reconciling) then
  hs.status = "Progressing"
  hs.message = "Waiting for the agents to report generation " .. generation .. " in the conditions"
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.message
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. ready.message
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
