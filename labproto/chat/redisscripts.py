"""The Lua scripts that keep a labchat room spread over several nodes in one Redis.

Each runs atomically in Redis: that is what makes a name unique across
nodes (no node can check a name and then take it while another node does
the same), and what gives the room one order, since each script publishes
everything it decided as one message on the room's channel, and Redis
hands the messages of a channel to every subscriber in the order it
published them.

What the room holds, for a room R (the keys' names are in backplane.RoomKeys):

- ``labchat:R:names``, a hash: a name's key (lower case) to ``NODE<TAB>Name``,
  the node the user is logged in on and the name as they typed it;
- ``labchat:R:nodes``, a sorted set: each live node, scored with the time
  (Redis's clock, in ms) after which it counts as lost unless it beats again;
- ``labchat:R:node:NODE``, a set: the keys of the names NODE holds, so that
  a lost node's names are found without reading every name;
- ``labchat:R:lines:dbN``, the channel (channels know no databases, so N,
  the database's number, keeps rooms of different databases apart): one
  message per script run, made of records ending with CRLF. A record is
  either a line for every user of every node, as it goes on the wire, or
  starts with byte 1 (which no line of the room can hold) and is meant for
  one node:

  - ``\\x01J NODE SERIAL Name COUNT NAMES``: NODE's login SERIAL succeeded;
    COUNT users are online, NAMES lists them (comma-separated) if at most 20;
    other nodes tell their users ``* Name joined``;
  - ``\\x01R NODE SERIAL Name``: NODE's /nick SERIAL succeeded (the line that
    tells everyone follows);
  - ``\\x01T NODE KEY LINE``: NODE is to give LINE to its user KEY alone (/msg);
  - ``\\x01N NODE SERIAL NAMES``: the answer to NODE's /who SERIAL, which comes
    this way, not as the script's answer, so that it reaches the user after
    every line the user sent before it.
  - ``\\x01F NODE SERIAL``: NODE's mark SERIAL: whatever NODE sent before it
    has come back (a /quit waits for it, so that a user reads their own last
    lines before ``Bye``);
  - ``\\x01O NODE LINE``: LINE for the users of every node but NODE, which
    told its own already (the leaves it saw while cut off from Redis; the
    node hands a script this record in place of the line).

  The fields are separated by TAB, which no name can hold; LINE comes last.

Every script takes KEYS = names, nodes, the node's own set, and ARGV[1] =
the channel, ARGV[2] = the node, then arguments of its own.
"""

from __future__ import annotations

_PRELUDE = """
local names, nodes, owned = KEYS[1], KEYS[2], KEYS[3]
local channel, node = ARGV[1], ARGV[2]
local out = {}

local function holder(key)
  local value = redis.call('HGET', names, key)
  if not value then return nil, nil end
  local tab = string.find(value, '\\t', 1, true)
  return string.sub(value, 1, tab - 1), string.sub(value, tab + 1)
end

local function name_of(value)
  return string.sub(value, string.find(value, '\\t', 1, true) + 1)
end

local function names_listed()
  local listed = {}
  for _, value in ipairs(redis.call('HVALS', names)) do listed[#listed + 1] = name_of(value) end
  return table.concat(listed, ',')
end

local function claim(key, name)
  if redis.call('HSETNX', names, key, node .. '\\t' .. name) == 1 then
    redis.call('SADD', owned, key)
    return true
  end
  return false
end

local function release(key, line)
  if holder(key) == node then
    redis.call('HDEL', names, key)
    redis.call('SREM', owned, key)
    out[#out + 1] = line
  end
end

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function publish()
  if #out > 0 then redis.call('PUBLISH', channel, table.concat(out)) end
end
"""

# ARGV[3..]: operations one after another, each a code and its arguments:
#   L LINE                                  a line for everyone
#   C SERIAL KEY NAME                       log a user in as NAME
#   X KEY LINE                              a user leaves; LINE tells everyone
#   R SERIAL OLDKEY NEWKEY NAME LINE        /nick; LINE tells everyone
#   W KEY LINE SENTPREFIX SENTSUFFIX FROM   /msg: LINE to KEY, and to the
#                                           sender FROM, SENTPREFIX Name SENTSUFFIX
#   N SERIAL                                /who: the names of every user
#   F SERIAL                                a mark: everything before it is back
# Returns one number for each C, R, W, N and F: 1 done, 0 refused (name taken, or
# no such user), 2 not now (C and R, while the node is not registered).
FLUSH = (
    _PRELUDE
    + """
local answers = {}
-- A node given up for lost takes no names until it has registered again:
-- no heartbeat would free them if it died.
local registered = redis.call('ZSCORE', nodes, node)
local i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'L' then
    out[#out + 1] = ARGV[i + 1]
    i = i + 2
  elseif op == 'C' then
    local serial, key, name = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if not registered then
      answers[#answers + 1] = 2
    elseif claim(key, name) then
      local count = redis.call('HLEN', names)
      local listed = ''
      if count <= 20 then listed = names_listed() end
      out[#out + 1] = '\\1J' .. node .. '\\t' .. serial .. '\\t' .. name .. '\\t' .. count
        .. '\\t' .. listed .. '\\r\\n'
      answers[#answers + 1] = 1
    else
      answers[#answers + 1] = 0
    end
    i = i + 4
  elseif op == 'X' then
    release(ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif op == 'R' then
    local serial, old, new = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local name, line = ARGV[i + 4], ARGV[i + 5]
    local renamed = false
    if not registered then
      renamed = nil
    elseif old == new and holder(new) == node then
      redis.call('HSET', names, new, node .. '\\t' .. name)
      renamed = true
    elseif claim(new, name) then
      -- The old name may be another node's by now, if this one was given up for lost.
      if old ~= new then
        if holder(old) == node then redis.call('HDEL', names, old) end
        redis.call('SREM', owned, old)
      end
      renamed = true
    end
    if renamed == nil then
      answers[#answers + 1] = 2
    elseif renamed then
      out[#out + 1] = '\\1R' .. node .. '\\t' .. serial .. '\\t' .. name .. '\\r\\n'
      out[#out + 1] = line
      answers[#answers + 1] = 1
    else
      answers[#answers + 1] = 0
    end
    i = i + 6
  elseif op == 'W' then
    local key, line, from = ARGV[i + 1], ARGV[i + 2], ARGV[i + 5]
    local prefix, suffix = ARGV[i + 3], ARGV[i + 4]
    local owner, name = holder(key)
    if owner then
      out[#out + 1] = '\\1T' .. owner .. '\\t' .. key .. '\\t' .. line
      out[#out + 1] = '\\1T' .. node .. '\\t' .. from .. '\\t' .. prefix .. name .. suffix
      answers[#answers + 1] = 1
    else
      answers[#answers + 1] = 0
    end
    i = i + 6
  elseif op == 'F' then
    out[#out + 1] = '\\1F' .. node .. '\\t' .. ARGV[i + 1] .. '\\r\\n'
    answers[#answers + 1] = 1
    i = i + 2
  elseif op == 'N' then
    out[#out + 1] = '\\1N' .. node .. '\\t' .. ARGV[i + 1] .. '\\t' .. names_listed() .. '\\r\\n'
    answers[#answers + 1] = 1
    i = i + 2
  else
    return redis.error_reply('unknown operation ' .. tostring(op))
  end
end
publish()
return answers
"""
)

# ARGV[3] the time in ms a node may go without beating before it counts as
# lost; ARGV[4], ARGV[5] what goes before and after a lost user's name in
# the line that says they left. Gives up every other node whose time has
# run out, freeing its names and telling the room, then beats for this
# node. Returns 1, or 0 if this node was itself given up for lost (its
# users must log in again: see REJOIN).
HEARTBEAT = (
    _PRELUDE
    + """
local ttl, before, after = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local now = now_ms()
for _, lost in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now)) do
  if lost ~= node then
    local set = string.sub(owned, 1, #owned - #node) .. lost
    for _, key in ipairs(redis.call('SMEMBERS', set)) do
      local owner, name = holder(key)
      if owner == lost then
        redis.call('HDEL', names, key)
        -- Not for the lost node's own users, if it was merely stalled: none left.
        out[#out + 1] = '\\1O' .. lost .. '\\t' .. before .. name .. after
      end
    end
    redis.call('DEL', set)
    redis.call('ZREM', nodes, lost)
  end
end
publish()
if redis.call('ZSCORE', nodes, node) then
  redis.call('ZADD', nodes, now + ttl, node)
  return 1
end
return 0
"""
)

# ARGV[3] the node's time to live in ms, as for HEARTBEAT; ARGV[4], ARGV[5]
# what goes before and after a name in the line that says it joined;
# ARGV[6], ARGV[7] the same for the line that says it left, when the node
# no longer knows why; ARGV[8] how many users follow, ARGV[9] how many
# pending names; then KEY NAME for each user of the node; then the KEY of
# each name a login or /nick of the node has asked for and not yet had
# back (kept if the node holds it, never taken); then KEY LINE for each
# user who left while the node was cut off from Redis.
# Registers the node, and its users' names again: each number returned is
# 1 (the name was still the node's), 2 (it was free again: the other nodes
# are told the user joined) or 0 (another node's user has it now). Any other
# name the node still holds is freed, and the room told.
REJOIN = (
    _PRELUDE
    + """
local ttl = tonumber(ARGV[3])
local joined_before, joined_after = ARGV[4], ARGV[5]
local left_before, left_after = ARGV[6], ARGV[7]
local count, pending = tonumber(ARGV[8]), tonumber(ARGV[9])
local kept, answers = {}, {}
for i = 10, 9 + 2 * count, 2 do
  local key, name = ARGV[i], ARGV[i + 1]
  local owner = holder(key)
  if owner == node then
    answers[#answers + 1] = 1
    kept[key] = true
  elseif owner == nil and claim(key, name) then
    -- Not for this node's own users: they never saw the user leave.
    out[#out + 1] = '\\1O' .. node .. '\\t' .. joined_before .. name .. joined_after
    answers[#answers + 1] = 2
    kept[key] = true
  else
    answers[#answers + 1] = 0
  end
end
for i = 10 + 2 * count, 9 + 2 * count + pending do
  if holder(ARGV[i]) == node then kept[ARGV[i]] = true end
end
for i = 10 + 2 * count + pending, #ARGV, 2 do
  if not kept[ARGV[i]] then release(ARGV[i], ARGV[i + 1]) end
end
for _, key in ipairs(redis.call('SMEMBERS', owned)) do
  if not kept[key] then
    local owner, name = holder(key)
    if owner == node then
      redis.call('HDEL', names, key)
      out[#out + 1] = left_before .. name .. left_after
    end
    redis.call('SREM', owned, key)
  end
end
redis.call('ZADD', nodes, now_ms() + ttl, node)
publish()
return answers
"""
)

# ARGV[3], ARGV[4] what goes before and after a name in the line that says
# it left. The node stops: any name it still holds is freed, and the room
# told; the node is no longer a member.
GOODBYE = (
    _PRELUDE
    + """
for _, key in ipairs(redis.call('SMEMBERS', owned)) do
  local owner, name = holder(key)
  if owner == node then
    redis.call('HDEL', names, key)
    out[#out + 1] = ARGV[3] .. name .. ARGV[4]
  end
end
redis.call('DEL', owned)
redis.call('ZREM', nodes, node)
publish()
return 1
"""
)
