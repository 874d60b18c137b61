// Lua scripts of the event log in the Redis store (layout in redis-events.ts). Every key a script
// touches is passed in KEYS and carries the `{events}` hash tag, so each one is atomic on Cluster too.
// The repository side (XADD to a repository's outbox inside its change) is in redis-scripts.ts.

/** The keys of the relay and append scripts, in KEYS order. */
export const LOG_KEYS = ['log', 'seq', 'relayed'] as const;

/** An endpoint's dead-letter keys, in KEYS order. */
export const DEAD_LETTER_KEYS = ['ids', 'letters'] as const;

const APPEND = `
local K_LOG, K_SEQ = KEYS[1], KEYS[2]
-- Counts up by one per logged record; '%d' keeps a large seq out of Lua's exponent notation.
local function logRecord(maxLen, record, computed)
  local seq = string.format('%d', redis.call('INCR', K_SEQ))
  redis.call('XADD', K_LOG, 'MAXLEN', '~', maxLen, '*', 'seq', seq, 'r', record, 's', computed)
end
`;

/**
 * KEYS: log, seq, relayed. ARGV: repository, max length, then (outbox id, record, computed)… in outbox
 * order. Logs the entries after the last one relayed for the repository and moves that mark: a relay
 * that lost a race, or retries after a crash before its XDEL, logs nothing twice. Returns how many it logged.
 */
const relay = `${APPEND}
local K_RELAYED = KEYS[3]
local function parse(id)
  local ms, n = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(n)
end
local function newer(id, than)
  local a, b = parse(id)
  local c, d = parse(than)
  return a > c or (a == c and b > d)
end
local last = redis.call('HGET', K_RELAYED, ARGV[1])
local moved = 0
for i = 3, #ARGV, 3 do
  if not last or newer(ARGV[i], last) then
    logRecord(ARGV[2], ARGV[i + 1], ARGV[i + 2])
    last = ARGV[i]
    moved = moved + 1
  end
end
if moved > 0 then redis.call('HSET', K_RELAYED, ARGV[1], last) end
return moved
`;

/** KEYS: log, seq. ARGV: max length, records… Logs each record as it is (nothing computed). */
const append = `${APPEND}
for i = 2, #ARGV do logRecord(ARGV[1], ARGV[i], '{}') end
return #ARGV - 1
`;

/** KEYS: log. Returns {newest id, its seq, length}, or nil for an empty log. */
const head = `
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if not newest then return false end
local seq = ''
for i = 1, #newest[2], 2 do if newest[2][i] == 'seq' then seq = newest[2][i + 1] end end
return {newest[1], seq, redis.call('XLEN', KEYS[1])}
`;

/**
 * KEYS: pending. ARGV: repository, the score it was read with. Removes it only while the score is
 * unchanged: a writer that joined since (a fresh score) keeps it in.
 */
const unpend = `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`;

/**
 * KEYS: endpoints. ARGV: name, expected revision, next state JSON. 1 when the stored revision (0 for
 * none, or for a state that does not decode) was the expected one and the state was replaced.
 */
const updateEndpoint = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
local revision = 0
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and type(decoded.revision) == 'number' then revision = decoded.revision end
end
if revision ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`;

/** KEYS: ids, letters. ARGV: id, letter JSON, max. Adds or replaces the letter, then drops the oldest beyond max. */
const putDeadLetter = `
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local excess = redis.call('ZCARD', KEYS[1]) - math.max(0, tonumber(ARGV[3]))
if excess > 0 then
  -- One by one rather than unpack(): a maximum lowered a lot at once may drop more than Lua can unpack.
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do redis.call('HDEL', KEYS[2], id) end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
end
return 1
`;

/** KEYS: ids, letters. ARGV: after ('' = from the first), limit (> 0). The letters' JSON in id order. */
const listDeadLetters = `
local min = ARGV[1] == '' and '-' or '(' .. ARGV[1]
local ids = redis.call('ZRANGEBYLEX', KEYS[1], min, '+', 'LIMIT', 0, ARGV[2])
if #ids == 0 then return {} end
local letters = {}
for _, json in ipairs(redis.call('HMGET', KEYS[2], unpack(ids))) do
  if json then letters[#letters + 1] = json end
end
return letters
`;

/** KEYS: ids, letters. ARGV: id. 1 when it was there. */
const deleteDeadLetter = `
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
`;

export const EVENT_SCRIPTS = {
  berthEventsRelay: { source: relay, keys: LOG_KEYS.length },
  berthEventsAppend: { source: append, keys: 2 },
  berthEventsHead: { source: head, keys: 1 },
  berthEventsUnpend: { source: unpend, keys: 1 },
  berthEventsUpdateEndpoint: { source: updateEndpoint, keys: 1 },
  berthEventsPutDeadLetter: { source: putDeadLetter, keys: DEAD_LETTER_KEYS.length },
  berthEventsListDeadLetters: { source: listDeadLetters, keys: DEAD_LETTER_KEYS.length },
  berthEventsDeleteDeadLetter: { source: deleteDeadLetter, keys: DEAD_LETTER_KEYS.length },
} as const;

export type EventScriptName = keyof typeof EVENT_SCRIPTS;
