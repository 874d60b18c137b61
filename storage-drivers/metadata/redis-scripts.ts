// Lua scripts of the Redis metadata store. Each one runs atomically; every key it touches is passed in
// KEYS (never built inside the script) and shares one Cluster hash tag, so they also run on Cluster.

/** First element of putManifest's answer when required references are missing (no digest or '' starts so). */
export const MISSING_MARK = '!missing';
/** First element of putManifest's answer when an immutable tag points elsewhere: then the tag and its digest. */
export const IMMUTABLE_MARK = '!immutable';
/** First element of deleteManifest's answer when its tags are not the expected ones: then the current tags. */
export const CHANGED_MARK = '!changed';

/** The per-repository keys, in the KEYS order every repository script expects. */
export const PER_REPO_KEYS = ['tags', 'tagmap', 'tagsof', 'manifests', 'referrers', 'exists', 'refs', 'untagged', 'blobs', 'tagtime', 'outbox'] as const;

/*
 * A script that changes the repository for a caller that passed an event origin gets the record's
 * caller-side fields as one JSON ARGV ('' = no event) and, once the change is made, XADDs it to the
 * repository's outbox stream with a second field: what only the script knew (see event-types.ts's
 * "store" fields). relay (redis-events.ts) moves the entries to the log. cjson encodes an empty list
 * as {}: the reader takes both.
 */
export const REPO_KEYS = `
local K_TAGS, K_TAGMAP, K_TAGSOF, K_MANIFESTS, K_REFERRERS, K_EXISTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local K_REFS, K_UNTAGGED, K_BLOBS, K_TAGTIME, K_OUTBOX = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local function outbox(record, computed)
  if record ~= '' then redis.call('XADD', K_OUTBOX, '*', 'r', record, 's', cjson.encode(computed)) end
end
local function mediaTypeOf(record)
  local ok, decoded = pcall(cjson.decode, record)
  if ok and type(decoded) == 'table' and type(decoded.mediaType) == 'string' then return decoded.mediaType end
  return nil
end
`;

/**
 * dropManifest(digest, record JSON): unlinks a linked manifest with everything that names it in the
 * repository (tags, referrer entry, untagged note) and its entry on each of its references. Returns
 * the dropped tags. A record that does not decode keeps its entries: one too many only keeps data,
 * one too few could let garbage collection delete a referenced blob.
 */
export const DROP_MANIFEST = `
local function dropManifest(digest, record)
  redis.call('HDEL', K_MANIFESTS, digest)
  redis.call('HDEL', K_UNTAGGED, digest)
  local ok, decoded = pcall(cjson.decode, record)
  if ok and type(decoded) == 'table' then
    if type(decoded.subject) == 'string' then
      redis.call('ZREM', K_REFERRERS, decoded.subject .. ' ' .. digest)
    end
    if type(decoded.references) == 'table' then
      for _, ref in ipairs(decoded.references) do
        if type(ref) == 'string' then redis.call('ZREM', K_REFS, ref .. ' ' .. digest) end
      end
    end
  end
  local head = digest .. ' '
  local dropped = {}
  for _, member in ipairs(redis.call('ZRANGEBYLEX', K_TAGSOF, '[' .. head, '(' .. digest .. '!')) do
    local tag = string.sub(member, #head + 1)
    redis.call('HDEL', K_TAGMAP, tag)
    redis.call('HDEL', K_TAGTIME, tag)
    redis.call('ZREM', K_TAGS, tag)
    redis.call('ZREM', K_TAGSOF, member)
    dropped[#dropped + 1] = tag
  end
  return dropped
end

local function tagsOfManifest(digest)
  local head = digest .. ' '
  local tags = {}
  for _, member in ipairs(redis.call('ZRANGEBYLEX', K_TAGSOF, '[' .. head, '(' .. digest .. '!')) do
    tags[#tags + 1] = string.sub(member, #head + 1)
  end
  return tags
end
`;

/**
 * ARGV: digest, record JSON, subject ('' = none), now (ms), pushed at (ms), n, n distinct references, b, b
 * blobs that must be linked, m, m manifests that must be in the repository, i, i immutable tags, event
 * record ('' = none), distinct tags…
 * Returns {IMMUTABLE_MARK, tag, digest} when an immutable tag points elsewhere and {MISSING_MARK,
 * digests…} when a required reference is missing, and then changes nothing.
 * Records the manifest on each reference (a set, so a re-put or a rebuild over existing data adds nothing twice).
 * Returns, per tag, the digest it pointed at before ('' = none).
 */
const putManifest = `${REPO_KEYS}
local digest, now, pushedAt, nrefs = ARGV[1], ARGV[4], ARGV[5], tonumber(ARGV[6])
local at = 7 + nrefs
local missing = {'${MISSING_MARK}'}
local nblobs = tonumber(ARGV[at])
for i = at + 1, at + nblobs do
  if redis.call('HEXISTS', K_BLOBS, ARGV[i]) == 0 then missing[#missing + 1] = ARGV[i] end
end
at = at + nblobs + 1
local nmanifests = tonumber(ARGV[at])
for i = at + 1, at + nmanifests do
  if redis.call('HEXISTS', K_MANIFESTS, ARGV[i]) == 0 then missing[#missing + 1] = ARGV[i] end
end
at = at + nmanifests + 1
local nimmutable = tonumber(ARGV[at])
for i = at + 1, at + nimmutable do
  local current = redis.call('HGET', K_TAGMAP, ARGV[i])
  if current and current ~= digest then return {'${IMMUTABLE_MARK}', ARGV[i], current} end
end
if #missing > 1 then return missing end
local event = ARGV[at + nimmutable + 1]
local tagsFrom = at + nimmutable + 2
local created = redis.call('EXISTS', K_EXISTS) == 0
for i = 7, 6 + nrefs do redis.call('ZADD', K_REFS, 0, ARGV[i] .. ' ' .. digest) end
redis.call('HSET', K_MANIFESTS, digest, ARGV[2])
if ARGV[3] ~= '' then redis.call('ZADD', K_REFERRERS, 0, ARGV[3] .. ' ' .. digest) end
local previous = {}
for i = tagsFrom, #ARGV do
  local tag = ARGV[i]
  local old = redis.call('HGET', K_TAGMAP, tag)
  if old then
    previous[#previous + 1] = old
    if old ~= digest then
      redis.call('ZREM', K_TAGSOF, old .. ' ' .. tag)
      redis.call('HSET', K_UNTAGGED, old, now)
    end
  else
    previous[#previous + 1] = ''
  end
  redis.call('HSET', K_TAGMAP, tag, digest)
  redis.call('HSET', K_TAGTIME, tag, pushedAt)
  redis.call('ZADD', K_TAGS, 0, tag)
  redis.call('ZADD', K_TAGSOF, 0, digest .. ' ' .. tag)
end
redis.call('SET', K_EXISTS, '1')
outbox(event, {previous = previous, repositoryCreated = created})
return previous
`;

/**
 * ARGV: digest, event record ('' = none), check ('1': only with exactly the expected tags), expected tags…
 * Returns the dropped tags, nil when the manifest was not linked, or {CHANGED_MARK, current tags…}.
 */
const deleteManifest = `${REPO_KEYS}${DROP_MANIFEST}
local record = redis.call('HGET', K_MANIFESTS, ARGV[1])
if not record then return false end
if ARGV[3] == '1' then
  local current = tagsOfManifest(ARGV[1])
  local expected = {}
  for i = 4, #ARGV do expected[ARGV[i]] = true end
  local same = #current == #ARGV - 3
  for _, tag in ipairs(current) do if not expected[tag] then same = false end end
  if not same then
    table.insert(current, 1, '${CHANGED_MARK}')
    return current
  end
end
local dropped = dropManifest(ARGV[1], record)
outbox(ARGV[2], {tags = dropped, mediaType = mediaTypeOf(record)})
return dropped
`;

/**
 * ARGV: tag, now (ms), expected digest ('' = any), event record ('' = none). Returns 1 when the tag was
 * removed; its manifest is noted as untagged now.
 */
const deleteTag = `${REPO_KEYS}
local tag = ARGV[1]
local digest = redis.call('HGET', K_TAGMAP, tag)
if not digest or (ARGV[3] ~= '' and digest ~= ARGV[3]) then return 0 end
redis.call('HDEL', K_TAGMAP, tag)
redis.call('HDEL', K_TAGTIME, tag)
redis.call('ZREM', K_TAGS, tag)
redis.call('ZREM', K_TAGSOF, digest .. ' ' .. tag)
redis.call('HSET', K_UNTAGGED, digest, ARGV[2])
outbox(ARGV[4], {digest = digest})
return 1
`;

/** ARGV: digest, size, event record ('' = none). Links the blob; the repository exists from now on. */
const linkBlob = `${REPO_KEYS}
local created = redis.call('EXISTS', K_EXISTS) == 0
redis.call('HSET', K_BLOBS, ARGV[1], ARGV[2])
redis.call('SET', K_EXISTS, '1')
outbox(ARGV[3], {repositoryCreated = created})
return 1
`;

/** ARGV: digest, event record ('' = none). Returns 1 when the link was removed. */
const unlinkBlob = `${REPO_KEYS}
if redis.call('HDEL', K_BLOBS, ARGV[1]) == 0 then return 0 end
outbox(ARGV[2], {})
return 1
`;

/** ARGV: tag. The tag's manifest record JSON in one round trip, or nil. */
const taggedManifest = `${REPO_KEYS}
local digest = redis.call('HGET', K_TAGMAP, ARGV[1])
if not digest then return false end
return redis.call('HGET', K_MANIFESTS, digest)
`;

/** ARGV: subject. The record JSON of each manifest in the repository whose subject it is. */
const referrers = `${REPO_KEYS}
local subject = ARGV[1]
local records = {}
for _, member in ipairs(redis.call('ZRANGEBYLEX', K_REFERRERS, '[' .. subject .. ' ', '(' .. subject .. '!')) do
  local record = redis.call('HGET', K_MANIFESTS, string.sub(member, #subject + 2))
  if record then records[#records + 1] = record end
end
return records
`;

/**
 * KEYS: session hash, age zset. ARGV: expected revision, next revision, next JSON, next updatedAt, id.
 * Returns 1 when the stored revision matched and the session was replaced, else 0.
 */
const updateUpload = `
local current = redis.call('HGET', KEYS[1], 'rev')
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'data', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
`;

/** KEYS: lease. ARGV: holder, ttl ms. 1 when the holder now holds the lease (taken or renewed). */
const acquireLease = `
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** KEYS: lease. ARGV: holder. Deletes the lease only if the holder still holds it. */
const releaseLease = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

export const SCRIPTS = {
  berthPutManifest: { source: putManifest, keys: PER_REPO_KEYS.length },
  berthDeleteManifest: { source: deleteManifest, keys: PER_REPO_KEYS.length },
  berthDeleteTag: { source: deleteTag, keys: PER_REPO_KEYS.length },
  berthLinkBlob: { source: linkBlob, keys: PER_REPO_KEYS.length },
  berthUnlinkBlob: { source: unlinkBlob, keys: PER_REPO_KEYS.length },
  berthTaggedManifest: { source: taggedManifest, keys: PER_REPO_KEYS.length },
  berthReferrers: { source: referrers, keys: PER_REPO_KEYS.length },
  berthUpdateUpload: { source: updateUpload, keys: 2 },
  berthAcquireLease: { source: acquireLease, keys: 1 },
  berthReleaseLease: { source: releaseLease, keys: 1 },
} as const;

export type ScriptName = keyof typeof SCRIPTS;
