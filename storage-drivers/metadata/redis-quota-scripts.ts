// Lua scripts of the quota records in the Redis store (layout in redis-quotas.ts). Every key a script
// touches is a namespace's own, under its `{ns:<name>}` hash tag, so each step is atomic on Cluster too.

/** A namespace's keys, in the KEYS order every namespace script expects. */
export const PER_NAMESPACE_KEYS = ['usage', 'sizes', 'holders', 'reserved'] as const;

const NS_KEYS = `
local K_USAGE, K_SIZES, K_HOLDERS, K_RESERVED = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function used()
  local u = redis.call('HMGET', K_USAGE, 'bytes', 'digests')
  return tonumber(u[1]) or 0, tonumber(u[2]) or 0
end
-- Bytes of the reservations still live at now, except \`except\`; expired ones are dropped on the way.
local function reserved(now, except)
  local sum = 0
  local flat = redis.call('HGETALL', K_RESERVED)
  for i = 1, #flat, 2 do
    local bytes, untilMs = string.match(flat[i + 1], '^(%d+) (%d+)$')
    if bytes and tonumber(untilMs) > now then
      if flat[i] ~= except then sum = sum + tonumber(bytes) end
    else
      redis.call('HDEL', K_RESERVED, flat[i])
    end
  end
  return sum
end
`;

/**
 * ARGV: digest, size, holder, limit ('' none), reservation ('' none), now.
 * Returns {ok, added, bytes, digests, reserved}: ok 0 = refused, nothing changed.
 */
const charge = `${NS_KEYS}
local digest, size, holder, limit, reservation, now = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local isNew = redis.call('HEXISTS', K_SIZES, digest) == 0
local bytes, count = used()
local others = reserved(now, reservation)
if isNew and limit ~= '' and bytes + others + size > tonumber(limit) then
  return {0, 0, bytes, count, others}
end
redis.call('ZADD', K_HOLDERS, 0, digest .. ' ' .. holder)
if isNew then
  redis.call('HSET', K_SIZES, digest, size)
  bytes = redis.call('HINCRBY', K_USAGE, 'bytes', size)
  count = redis.call('HINCRBY', K_USAGE, 'digests', 1)
end
if reservation ~= '' then redis.call('HDEL', K_RESERVED, reservation) end
return {1, isNew and 1 or 0, bytes, count, others}
`;

/** ARGV: digest, holder. 1 when the last holder left and the digest's bytes were freed. */
const release = `${NS_KEYS}
local digest = ARGV[1]
if redis.call('ZREM', K_HOLDERS, digest .. ' ' .. ARGV[2]) == 0 then return 0 end
-- Members are "<digest> <holder>"; '!' sorts right after ' ', so this range is exactly the digest's holders.
if redis.call('ZLEXCOUNT', K_HOLDERS, '[' .. digest .. ' ', '(' .. digest .. '!') > 0 then return 0 end
local size = tonumber(redis.call('HGET', K_SIZES, digest))
if not size then return 0 end
redis.call('HDEL', K_SIZES, digest)
redis.call('HINCRBY', K_USAGE, 'bytes', -size)
redis.call('HINCRBY', K_USAGE, 'digests', -1)
return 1
`;

/** ARGV: id, bytes, until, limit ('' none), now. Returns {ok, bytes, digests, reserved by others}. */
const reserve = `${NS_KEYS}
local id, want, untilMs, limit, now = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local bytes, count = used()
local others = reserved(now, id)
if limit ~= '' and bytes + others + want > tonumber(limit) then return {0, bytes, count, others} end
redis.call('HSET', K_RESERVED, id, string.format('%d %s', want, untilMs))
return {1, bytes, count, others}
`;

/** ARGV: now. Returns {bytes, digests, reserved}. */
const usage = `${NS_KEYS}
local bytes, count = used()
return {bytes, count, reserved(tonumber(ARGV[1]), '')}
`;

/**
 * KEYS: the four namespace keys, then the rebuilt sizes and holders. Swaps the rebuilt records in
 * and recomputes the usage from them; reservations stay.
 */
const replace = `${NS_KEYS}
local K_NEW_SIZES, K_NEW_HOLDERS = KEYS[5], KEYS[6]
redis.call('DEL', K_SIZES, K_HOLDERS, K_USAGE)
local bytes, count = 0, 0
local flat = redis.call('HGETALL', K_NEW_SIZES)
for i = 2, #flat, 2 do
  bytes = bytes + tonumber(flat[i])
  count = count + 1
end
if count > 0 then
  redis.call('RENAME', K_NEW_SIZES, K_SIZES)
  redis.call('RENAME', K_NEW_HOLDERS, K_HOLDERS)
end
redis.call('DEL', K_NEW_SIZES, K_NEW_HOLDERS)
redis.call('HSET', K_USAGE, 'bytes', bytes, 'digests', count)
return 1
`;

export const QUOTA_SCRIPTS = {
  berthQuotaCharge: { source: charge, keys: PER_NAMESPACE_KEYS.length },
  berthQuotaRelease: { source: release, keys: PER_NAMESPACE_KEYS.length },
  berthQuotaReserve: { source: reserve, keys: PER_NAMESPACE_KEYS.length },
  berthQuotaUsage: { source: usage, keys: PER_NAMESPACE_KEYS.length },
  berthQuotaReplace: { source: replace, keys: PER_NAMESPACE_KEYS.length + 2 },
} as const;

export type QuotaScriptName = keyof typeof QUOTA_SCRIPTS;
