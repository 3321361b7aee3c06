"""The Lua scripts run after a booking of the Redis rate limit: giving an admission back (its
wait was cancelled) and moving a schedule by what a successful attempt really used
(``Limit(actual=)``). Keys and formats: :mod:`opero.backends.redis.rate_scripts`.
"""

from __future__ import annotations

__all__ = ["ADJUST", "RELEASE"]

# Give a booked admission back (its wait was cancelled). KEYS as for RESERVE; ARGV: per limit
# the start, end and epoch that RESERVE returned, then the admission's time and per limit its
# units. A stretch is given back only into the life of the schedule it was booked in, and
# only while it lies ahead and inside the schedule: the last one shortens the schedule
# (taking in a free stretch just before it), any other joins the free list. Its units leave
# each window log.
RELEASE = """
local n = #KEYS / 3
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local at = tonumber(ARGV[3 * n + 1] or '')
for i = 1, n do
  local u = tonumber(ARGV[3 * n + 1 + i] or '')
  local written = n > 1 and at and u and redis.call('GET', KEYS[2 * n + i])
  if written then
    local words, found = {}, false
    for word in string.gmatch(written, '%S+') do words[#words + 1] = word end
    local kept = {}
    for k = 1, #words - 1, 2 do
      if not found and tonumber(words[k]) == at and tonumber(words[k + 1]) == u then
        found = true
      else
        kept[#kept + 1] = words[k]
        kept[#kept + 1] = words[k + 1]
      end
    end
    if found then redis.call('SET', KEYS[2 * n + i], table.concat(kept, ' '), 'KEEPTTL') end
  end
end
for i = 1, n do
  local s, e, epoch = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), ARGV[3 * i]
  local tat = tonumber(redis.call('GET', KEYS[i]) or '')
  local free = redis.call('GET', KEYS[n + i])
  if s and e and e > s and e > now and tat and free and e <= tat then
    local words = {}
    for word in string.gmatch(free, '%S+') do words[#words + 1] = word end
    if words[1] == epoch then
      local g = {}
      for k = 2, #words do g[#g + 1] = tonumber(words[k]) end
      local clash = false
      for k = 1, #g, 2 do
        if g[k] < e and s < g[k + 1] then clash = true end
      end
      if not clash then
        if e == tat then
          tat = s
          while #g > 0 and g[#g] >= tat do
            if g[#g - 1] < tat then tat = g[#g - 1] end
            g[#g] = nil
            g[#g] = nil
          end
        else
          local merged, placed = {}, false
          for k = 1, #g, 2 do
            local gs, ge = g[k], g[k + 1]
            if ge == s then
              s = gs
            elseif gs == e then
              e = ge
            elseif not placed and gs > e then
              merged[#merged + 1] = s
              merged[#merged + 1] = e
              merged[#merged + 1] = gs
              merged[#merged + 1] = ge
              placed = true
            else
              merged[#merged + 1] = gs
              merged[#merged + 1] = ge
            end
          end
          if not placed then
            merged[#merged + 1] = s
            merged[#merged + 1] = e
          end
          g = merged
        end
        local out = {epoch}
        for _, v in ipairs(g) do out[#out + 1] = string.format('%.0f', v) end
        redis.call('SET', KEYS[i], string.format('%.0f', tat), 'KEEPTTL')
        redis.call('SET', KEYS[n + i], table.concat(out, ' '), 'KEEPTTL')
      end
    end
  end
end
return 1
"""

# What a successful attempt really used (``Limit(actual=)``). KEYS as for RESERVE; ARGV: per
# limit the microseconds to move its schedule by (0: none; < 0: earlier, never before now),
# its estimate and what was used. The free list keeps only stretches before the new end; the
# window log puts what was used in place of the estimate of an admission made by now (a
# refund on the earliest such, a debit on the latest: windows to come never count less).
ADJUST = """
local n = #KEYS / 3
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, n do
  local d = tonumber(ARGV[3 * i - 2])
  local estimate, used = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '')
  if d and d ~= 0 and tat then
    local moved = tat + d
    if d < 0 then moved = math.max(moved, math.min(tat, now)) end
    local ttl = redis.call('PTTL', KEYS[i])
    if d > 0 and ttl > 0 then ttl = ttl + math.ceil(d / 1000) end
    if ttl <= 0 then ttl = math.ceil(math.max(moved - now, 0) / 1000) + 1000 end
    redis.call('SET', KEYS[i], string.format('%.0f', moved), 'PX', ttl)
    local free = redis.call('GET', KEYS[n + i])
    if free then
      local words = {}
      for word in string.gmatch(free, '%S+') do words[#words + 1] = word end
      local out = {words[1]}
      for k = 2, #words - 1, 2 do
        local s, e = tonumber(words[k]), tonumber(words[k + 1])
        if s and e and s < moved then
          out[#out + 1] = words[k]
          out[#out + 1] = string.format('%.0f', math.min(e, moved))
        end
      end
      redis.call('SET', KEYS[n + i], table.concat(out, ' '), 'PX', ttl)
    end
  end
  local written = n > 1 and estimate and used and redis.call('GET', KEYS[2 * n + i])
  if written then
    local words = {}
    for word in string.gmatch(written, '%S+') do words[#words + 1] = word end
    local pick = nil
    for k = 1, #words - 1, 2 do
      if tonumber(words[k]) <= now and tonumber(words[k + 1]) == estimate then
        if pick == nil or used > estimate then pick = k end
      end
    end
    if pick then
      words[pick + 1] = string.format('%.17g', used)
      redis.call('SET', KEYS[2 * n + i], table.concat(words, ' '), 'KEEPTTL')
    end
  end
end
return 1
"""
