// Lua scripts of garbage collection's records in the Redis store (see redis-gc.ts for the layout). Like
// redis-scripts.ts: every key in KEYS, all under one hash tag per script — a digest's `{blob:<d>}`, a
// repository's `{repo:<r>}` or the queue's `{gc}` — so each decision is one atomic step on Cluster too.
import { DROP_MANIFEST, PER_REPO_KEYS, REPO_KEYS } from './redis-scripts.js';

/** A digest's keys, in the KEYS order every digest script expects. */
export const PER_BLOB_KEYS = ['gc', 'pins', 'touch', 'repos', 'missing'] as const;

/** The queue's keys, in KEYS order. */
export const QUEUE_KEYS = ['queue', 'tokens'] as const;

/*
 * A digest's gc hash exists only while it is quarantined or being deleted: going live again deletes
 * it, so no field of an earlier round can leak into the next one.
 */
const BLOB_KEYS = `
local K_GC, K_PINS, K_TOUCH, K_HOLDERS, K_MISSING = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function version() return redis.call('HGET', K_TOUCH, 'v') or '' end
-- The latest until (as stored) among pins with until > now, or nil. clear: HDEL the expired ones.
local function livePin(now, clear)
  local best, bestN
  local flat = redis.call('HGETALL', K_PINS)
  for i = 1, #flat, 2 do
    local n = tonumber(flat[i + 1])
    if n and n > now then
      if not bestN or n > bestN then best, bestN = flat[i + 1], n end
    elseif clear then
      redis.call('HDEL', K_PINS, flat[i])
    end
  end
  return best
end
`;

/** ARGV: pin id, until, new version, at. 0 (not pinned) while the digest is being deleted, else 1. */
const pinBlob = `${BLOB_KEYS}
local state = redis.call('HGET', K_GC, 'state')
if state == 'deleting' then return 0 end
redis.call('HSET', K_PINS, ARGV[1], ARGV[2])
redis.call('HSET', K_TOUCH, 'v', ARGV[3], 'at', ARGV[4])
if state then redis.call('DEL', K_GC) end
return 1
`;

/** Returns {state, since, lastTouch}, '' for each one absent. */
const status = `${BLOB_KEYS}
local gc = redis.call('HMGET', K_GC, 'state', 'since')
return {gc[1] or '', gc[2] or '', redis.call('HGET', K_TOUCH, 'at') or ''}
`;

/**
 * ARGV: touchedBefore, now. Returns {'deleting', until} | {'quarantined', since} | {'pinned', max until}
 * | {'touched', lastTouch} | {'ok', version, holders}.
 */
const claimBlob = `${BLOB_KEYS}
local gc = redis.call('HMGET', K_GC, 'state', 'since', 'until')
if gc[1] == 'deleting' then return {'deleting', gc[3] or '0'} end
if gc[1] == 'quarantined' then return {'quarantined', gc[2] or '0'} end
local pinned = livePin(tonumber(ARGV[2]), true)
if pinned then return {'pinned', pinned} end
local at = redis.call('HGET', K_TOUCH, 'at')
if at and tonumber(at) >= tonumber(ARGV[1]) then return {'touched', at} end
return {'ok', version(), redis.call('ZRANGE', K_HOLDERS, 0, -1)}
`;

/**
 * ARGV: version, now, released holders…  The compare-and-set that decides a digest is unused: only a
 * live digest whose version is still the one claimed and that no pin holds. 1 when quarantined.
 */
const quarantineBlob = `${BLOB_KEYS}
if redis.call('HEXISTS', K_GC, 'state') == 1 then return 0 end
if version() ~= ARGV[1] then return 0 end
if livePin(tonumber(ARGV[2]), false) then return 0 end
for i = 3, #ARGV do redis.call('ZREM', K_HOLDERS, ARGV[i]) end
redis.call('DEL', K_GC)
redis.call('HSET', K_GC, 'state', 'quarantined', 'since', ARGV[2], 'qv', ARGV[1])
return 1
`;

/**
 * ARGV: token, leaseUntil, quarantinedBefore, now. Returns the holders once the digest is being deleted
 * under `token`, else nil. A quarantined digest used since (new version, or a pin) is revived here.
 */
const beginPurge = `${BLOB_KEYS}
local now = tonumber(ARGV[4])
local gc = redis.call('HMGET', K_GC, 'state', 'since', 'qv', 'until')
if gc[1] == 'deleting' then
  local lease = tonumber(gc[4])
  if lease and lease >= now then return false end
  redis.call('HSET', K_GC, 'token', ARGV[1], 'until', ARGV[2])
  return redis.call('ZRANGE', K_HOLDERS, 0, -1)
end
if gc[1] ~= 'quarantined' then return false end
if version() ~= gc[3] or livePin(now, false) then
  redis.call('DEL', K_GC)
  return false
end
local since = tonumber(gc[2])
if not since or since > tonumber(ARGV[3]) then return false end
redis.call('HSET', K_GC, 'state', 'deleting', 'token', ARGV[1], 'until', ARGV[2])
return redis.call('ZRANGE', K_HOLDERS, 0, -1)
`;

const OWNS_PURGE = `
local function ownsPurge(token)
  local gc = redis.call('HMGET', K_GC, 'state', 'token')
  return gc[1] == 'deleting' and gc[2] == token
end
`;

/** ARGV: token. Deletes every record of the digest if the deletion is still this token's; 1 then. */
const finishPurge = `${BLOB_KEYS}${OWNS_PURGE}
if not ownsPurge(ARGV[1]) then return 0 end
redis.call('DEL', K_GC, K_PINS, K_TOUCH, K_HOLDERS, K_MISSING)
return 1
`;

/** ARGV: token. The digest is live again if the deletion is still this token's. */
const abortPurge = `${BLOB_KEYS}${OWNS_PURGE}
if ownsPurge(ARGV[1]) then redis.call('DEL', K_GC) end
return 1
`;

/** ARGV: digest. Returns {manifests referencing it, 1 if it is a linked manifest, 1 if linked as a blob}. */
const repositoryHolds = `${REPO_KEYS}
local d = ARGV[1]
return {redis.call('ZLEXCOUNT', K_REFS, '[' .. d .. ' ', '(' .. d .. '!'), redis.call('HEXISTS', K_MANIFESTS, d), redis.call('HEXISTS', K_BLOBS, d)}
`;

/** ARGV: digest. Removes the blob link unless a manifest of the repository references it or is it; 1 then. */
const unlinkOrphan = `${REPO_KEYS}
local d = ARGV[1]
if (redis.call('ZLEXCOUNT', K_REFS, '[' .. d .. ' ', '(' .. d .. '!')) > 0 or redis.call('HEXISTS', K_MANIFESTS, d) == 1 then return 0 end
redis.call('HDEL', K_BLOBS, d)
return 1
`;

/**
 * ARGV: digest, untaggedBefore ('' = no such rule), orphanReferrers ('1' | '0'), dry run ('1': only answer),
 * event record ('' = none; a manifest_deleted joins the outbox when it deletes).
 * Returns the deleted record JSON, or nil when the manifest is not linked, is referenced, or no rule applies.
 */
const deleteManifestIfUnused = `${REPO_KEYS}${DROP_MANIFEST}
local d = ARGV[1]
local record = redis.call('HGET', K_MANIFESTS, d)
if not record then return false end
if (redis.call('ZLEXCOUNT', K_REFS, '[' .. d .. ' ', '(' .. d .. '!')) > 0 then return false end
local ok, decoded = pcall(cjson.decode, record)
if not ok or type(decoded) ~= 'table' then return false end
local collect = false
if ARGV[3] == '1' and type(decoded.subject) == 'string' and redis.call('HEXISTS', K_MANIFESTS, decoded.subject) == 0 then
  collect = true
end
if not collect and ARGV[2] ~= '' then
  local tagged = #redis.call('ZRANGEBYLEX', K_TAGSOF, '[' .. d .. ' ', '(' .. d .. '!', 'LIMIT', 0, 1) > 0
  if not tagged then
    local created = tonumber(decoded.createdAt) or 0
    local untagged = tonumber(redis.call('HGET', K_UNTAGGED, d)) or 0
    collect = math.max(created, untagged) < tonumber(ARGV[2])
  end
end
if not collect then return false end
if ARGV[4] ~= '1' then
  local dropped = dropManifest(d, record)
  outbox(ARGV[5], {tags = dropped, mediaType = mediaTypeOf(record)})
end
return record
`;

/** ARGV: (item, due, token)… */
const enqueue = `
for i = 1, #ARGV, 3 do
  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
end
return 1
`;

/** ARGV: now, limit (> 0). Returns (item, due, token)… earliest first. */
const takeDue = `
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local out = {}
for i = 1, #items, 2 do
  out[#out + 1] = items[i]
  out[#out + 1] = items[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], items[i]) or ''
end
return out
`;

/** ARGV: (item, token)…  Removes each item still under the token it was taken with. */
const complete = `
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return 1
`;

export const GC_SCRIPTS = {
  berthGcPin: { source: pinBlob, keys: PER_BLOB_KEYS.length },
  berthGcStatus: { source: status, keys: PER_BLOB_KEYS.length },
  berthGcClaim: { source: claimBlob, keys: PER_BLOB_KEYS.length },
  berthGcQuarantine: { source: quarantineBlob, keys: PER_BLOB_KEYS.length },
  berthGcBeginPurge: { source: beginPurge, keys: PER_BLOB_KEYS.length },
  berthGcFinishPurge: { source: finishPurge, keys: PER_BLOB_KEYS.length },
  berthGcAbortPurge: { source: abortPurge, keys: PER_BLOB_KEYS.length },
  berthGcRepositoryHolds: { source: repositoryHolds, keys: PER_REPO_KEYS.length },
  berthGcUnlinkOrphan: { source: unlinkOrphan, keys: PER_REPO_KEYS.length },
  berthGcDeleteManifestIfUnused: { source: deleteManifestIfUnused, keys: PER_REPO_KEYS.length },
  berthGcEnqueue: { source: enqueue, keys: QUEUE_KEYS.length },
  berthGcTakeDue: { source: takeDue, keys: QUEUE_KEYS.length },
  berthGcComplete: { source: complete, keys: QUEUE_KEYS.length },
} as const;

export type GcScriptName = keyof typeof GC_SCRIPTS;
