"""The Lua scripts of the Redis rate limit: booking an admission and giving one back.

Each limit has two keys: its schedule's end (a number of server microseconds, the format every
version of the limiter reads) and a free list, ``"<epoch> <start> <end> <start> <end> ..."``:
the stretches given back before that end, sorted and disjoint. The epoch names one life of
the schedule (it is new whenever the schedule starts again: expired, reset as corrupt, lost
with a restarted server), so a stretch booked in an earlier life is never given back into
a later one, where other admissions may hold it. All times are on the server's clock.
"""

from __future__ import annotations

__all__ = ["RELEASE", "RESERVE"]

# KEYS: the n schedule keys, then their n free lists. ARGV: per limit, how far this attempt
# moves its schedule (its cost times the interval per unit, in microseconds), then per limit
# a floor: microseconds from now before which this caller must not be admitted under that
# limit (its own schedule from a time the server was away). The attempt is admitted at the
# earliest time >= now where every limit has room (a given-back stretch or its schedule's
# end); all in one atomic script. Returns {wait_us, corrupt, at, and per limit: start, end,
# epoch of what a cancelled wait gives back}. A state that is not a number, or lies more than
# 24 hours ahead, is corrupt: reset.
RESERVE = """
local n = #KEYS / 2
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local horizon = now + 86400000000
local corrupt = 0
local tats, gaps, epochs, lens, lows = {}, {}, {}, {}, {}
for i = 1, n do
  lens[i] = tonumber(ARGV[i])
  lows[i] = now + tonumber(ARGV[n + i])
  local tat = nil
  local raw = redis.call('GET', KEYS[i])
  if raw then
    tat = tonumber(raw)
    if tat == nil or tat ~= tat or tat > horizon then
      corrupt = 1
      tat = nil
    end
  end
  local epoch, list = nil, {}
  local free = tat and redis.call('GET', KEYS[n + i])
  if free then
    for word in string.gmatch(free, '%S+') do
      local v = tonumber(word)
      if v == nil or v ~= v or v > horizon then
        corrupt = 1
        epoch = nil
        break
      end
      if epoch == nil then epoch = word else list[#list + 1] = v end
    end
    if epoch and (#list % 2 == 1) then
      corrupt = 1
      epoch = nil
    end
  end
  local kept = {}
  if epoch then
    for k = 1, #list, 2 do
      if list[k + 1] > now and list[k + 1] <= tat then
        kept[#kept + 1] = list[k]
        kept[#kept + 1] = list[k + 1]
      end
    end
  else
    epoch = string.format('%.0f', now)
  end
  tats[i], gaps[i], epochs[i] = tat, kept, epoch
end

local function room(i, start, len)
  if start < lows[i] then start = lows[i] end
  local g = gaps[i]
  for k = 1, #g, 2 do
    if g[k + 1] > start then
      local at = g[k] > start and g[k] or start
      if at + len <= g[k + 1] then return at end
    end
  end
  local tat = tats[i]
  if tat and tat > start then return tat end
  return start
end

local at = now
local moved = true
while moved do
  moved = false
  for i = 1, n do
    local r = room(i, at, lens[i])
    if r > at then
      at = r
      moved = true
    end
  end
end

local out = {string.format('%.0f', at - now), corrupt, string.format('%.0f', at)}
for i = 1, n do
  local len, tat, g = lens[i], tats[i], gaps[i]
  local start = at
  if tat == nil or at >= tat then
    if tat then start = tat end
    tat = at + len
  else
    for k = 1, #g, 2 do
      if g[k] <= at and at < g[k + 1] then
        local pieces = {}
        if at > g[k] then
          pieces[#pieces + 1] = g[k]
          pieces[#pieces + 1] = at
        end
        if at + len < g[k + 1] then
          pieces[#pieces + 1] = at + len
          pieces[#pieces + 1] = g[k + 1]
        end
        local rebuilt = {}
        for j = 1, k - 1 do rebuilt[#rebuilt + 1] = g[j] end
        for _, v in ipairs(pieces) do rebuilt[#rebuilt + 1] = v end
        for j = k + 2, #g do rebuilt[#rebuilt + 1] = g[j] end
        g = rebuilt
        break
      end
    end
  end
  local ttl = math.ceil((tat - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', ttl)
  local words = {epochs[i]}
  for _, v in ipairs(g) do words[#words + 1] = string.format('%.0f', v) end
  redis.call('SET', KEYS[n + i], table.concat(words, ' '), 'PX', ttl)
  out[#out + 1] = string.format('%.0f', start)
  out[#out + 1] = string.format('%.0f', at + len)
  out[#out + 1] = epochs[i]
end
return out
"""

# Give a booked admission back (its wait was cancelled). KEYS as for RESERVE; ARGV: per limit
# the start, end and epoch that RESERVE returned. A stretch is given back only into the life
# of the schedule it was booked in, and only while it lies ahead and inside the schedule:
# the last one shortens the schedule (taking in a free stretch just before it), any other
# joins the free list.
RELEASE = """
local n = #KEYS / 2
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
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
