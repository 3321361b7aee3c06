"""The Lua script of the Redis rate limit that books an admission (or peeks).

Each limit has two keys: its schedule's end (a number of server microseconds, the format every
version of the limiter reads) and a free list, ``"<epoch> <start> <end> <start> <end> ..."``:
the stretches given back before that end, sorted and disjoint. The epoch names one life of
the schedule (it is new whenever the schedule starts again: expired, reset as corrupt, lost
with a restarted server), so a stretch booked in an earlier life is never given back into
a later one, where other admissions may hold it. With several limits each also has a
window log, ``"<time> <units> <time> <units> ..."`` sorted by time: the admissions of the
last period, so that a limit catching up time it lost to another never holds more than its
budget in a window of its period (the rules of :mod:`opero.limits.rate`, step for step).
All times are on the server's clock, in microseconds. Giving an admission back and
correcting a schedule by what an attempt used: :mod:`opero.backends.redis.rate_returns`.
"""

from __future__ import annotations

__all__ = ["RESERVE"]

# KEYS: the n schedule keys, their n free lists, their n window logs. ARGV: per limit how far
# this attempt moves its schedule (its cost times the interval per unit, in microseconds);
# per limit a floor: microseconds from now before which this caller must not be admitted
# under that limit (its own schedule from a time the server was away); per limit its units,
# its period (microseconds) and its budget (units per period); then "1" to peek (book
# nothing). The attempt is admitted at the earliest time >= now where every limit has room
# (a given-back stretch or its schedule's end; with several limits, a stretch may lie behind
# the admission by the time that limit lost to the others, and every window of its period
# around the admission must have room for its units); all in one atomic script. Returns
# {wait_us, corrupt, at, and per limit: start, end, epoch of what a cancelled wait gives
# back} ({wait_us, corrupt, at} for a peek). A state that is not a number, or lies more than
# 24 hours ahead, is corrupt: reset.
RESERVE = """
local n = #KEYS / 3
local catch = n > 1
local peek = ARGV[5 * n + 1] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local horizon = now + 86400000000
local corrupt = 0
local tats, gaps, epochs, lens, lows = {}, {}, {}, {}, {}
local units, periods, budgets, logs = {}, {}, {}, {}
for i = 1, n do
  lens[i] = tonumber(ARGV[i])
  lows[i] = now + tonumber(ARGV[n + i])
  units[i] = tonumber(ARGV[2 * n + i])
  periods[i] = tonumber(ARGV[3 * n + i])
  budgets[i] = tonumber(ARGV[4 * n + i])
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
  local log = {}
  local written = catch and redis.call('GET', KEYS[2 * n + i])
  if written then
    local vals = {}
    for word in string.gmatch(written, '%S+') do
      local v = tonumber(word)
      if v == nil or v ~= v or v > horizon then
        corrupt = 1
        vals = {}
        break
      end
      vals[#vals + 1] = v
    end
    if #vals % 2 == 1 then
      corrupt = 1
      vals = {}
    end
    for k = 1, #vals, 2 do  -- only what a window holding now or later can hold
      if vals[k] + periods[i] > now then
        log[#log + 1] = vals[k]
        log[#log + 1] = vals[k + 1]
      end
    end
  end
  logs[i] = log
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

-- how far back limit i's stretch may lie: by the time its schedule ended behind its
-- latest admission (lost to the other limits), a period at most
local function floor_of(i)
  local log, tat = logs[i], tats[i]
  if not catch or #log == 0 or tat == nil then return now end
  local behind = log[#log - 1] - tat
  if behind > 0 then return now - math.min(behind, periods[i]) end
  return now
end

-- the most units a window [s, s + period) holding t holds: just after its start passes
-- t - period or e - period for an admission e ahead of t, it holds what lies in (b, b + period]
local function load(i, t)
  local log, p = logs[i], periods[i]
  local starts = {t - p}
  for k = 1, #log, 2 do
    if log[k] > t and log[k] < t + p then starts[#starts + 1] = log[k] - p end
  end
  local most = 0
  for _, b in ipairs(starts) do
    local sum = 0
    for k = 1, #log, 2 do
      if log[k] > b and log[k] <= b + p then sum = sum + log[k + 1] end
    end
    if sum > most then most = sum end
  end
  return most
end

-- the earliest time >= start at which every window of limit i's period around it has room
-- for its units (a whole budget at most: alone in its windows)
local function window(i, start)
  local log, p = logs[i], periods[i]
  if units[i] == 0 or #log == 0 then return start end
  local free = budgets[i] - math.min(units[i], budgets[i]) + 1e-9
  if log[#log - 1] <= start then  -- nothing booked after: only the window ending at start
    local sum, first = 0, nil
    for k = 1, #log, 2 do
      if log[k] > start - p then
        sum = sum + log[k + 1]
        if first == nil then first = k end
      end
    end
    if first == nil then return start end
    for k = first, #log, 2 do
      if sum <= free then return start end
      sum = sum - log[k + 1]
      start = log[k] + p
    end
    return start
  end
  if load(i, start) <= free then return start end
  for k = 1, #log, 2 do
    local c = log[k] + p
    if c > start and load(i, c) <= free then return c end
  end
  return log[#log - 1] + p + 1
end

local own, lags = {}, {}
for i = 1, n do
  own[i] = floor_of(i)
  lags[i] = catch and periods[i] or 0
end
local at = now
local moved = true
while moved do
  moved = false
  for i = 1, n do
    local r = room(i, math.max(own[i], at - lags[i]), lens[i])
    if r > at then
      at = r
      moved = true
    end
    if catch then
      local w = window(i, at)
      if w > at then  -- waiting for its own window: its own time
        at = w
        own[i] = w
        moved = true
      end
    end
  end
end

local out = {string.format('%.0f', at - now), corrupt, string.format('%.0f', at)}
if peek then return out end
for i = 1, n do
  local len, tat, g = lens[i], tats[i], gaps[i]
  local x = room(i, math.max(own[i], at - lags[i]), len)
  local start = x
  if tat == nil or x >= tat then
    if tat then start = tat end
    tat = x + len
  else
    for k = 1, #g, 2 do
      if g[k] <= x and x < g[k + 1] then
        local pieces = {}
        if x > g[k] then
          pieces[#pieces + 1] = g[k]
          pieces[#pieces + 1] = x
        end
        if x + len < g[k + 1] then
          pieces[#pieces + 1] = x + len
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
  if catch then
    local words, placed = {}, false
    local log = logs[i]
    for k = 1, #log, 2 do
      if not placed and log[k] > at then
        words[#words + 1] = string.format('%.0f', at)
        words[#words + 1] = string.format('%.17g', units[i])
        placed = true
      end
      words[#words + 1] = string.format('%.0f', log[k])
      words[#words + 1] = string.format('%.17g', log[k + 1])
    end
    if not placed then
      words[#words + 1] = string.format('%.0f', at)
      words[#words + 1] = string.format('%.17g', units[i])
    end
    local last = math.max(tat, log[#log - 1] or at, at)
    ttl = math.ceil((last - now + periods[i]) / 1000) + 1000
    redis.call('SET', KEYS[2 * n + i], table.concat(words, ' '), 'PX', ttl)
  end
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', ttl)
  local words = {epochs[i]}
  for _, v in ipairs(g) do words[#words + 1] = string.format('%.0f', v) end
  redis.call('SET', KEYS[n + i], table.concat(words, ' '), 'PX', ttl)
  out[#out + 1] = string.format('%.0f', start)
  out[#out + 1] = string.format('%.0f', x + len)
  out[#out + 1] = epochs[i]
end
return out
"""
