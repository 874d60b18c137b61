// Lua scripts of replication's records in the Redis store (layout in redis-replication.ts). Every key a
// script touches is the rule's own, under its `{repl:<rule>}` hash tag, so each step is atomic on Cluster too.

/** A rule's keys, in the KEYS order every replication script expects. */
export const PER_RULE_KEYS = ['state', 'records', 'order'] as const;

const RULE_KEYS = `
local K_STATE, K_RECORDS, K_ORDER = KEYS[1], KEYS[2], KEYS[3]
`;

/** ARGV: expected revision, state. 1 when stored (as revision expected + 1), 0 when the revision differs. */
const updateState = `${RULE_KEYS}
local expected = tonumber(ARGV[1])
local revision = tonumber(redis.call('HGET', K_STATE, 'rev')) or 0
if revision ~= expected then return 0 end
redis.call('HSET', K_STATE, 'rev', revision + 1, 'data', ARGV[2])
return 1
`;

/** ARGV: key, present ('1' store, '0' remove), value. The record and its place in the order change together. */
const putArtifact = `${RULE_KEYS}
if ARGV[2] == '1' then
  redis.call('HSET', K_RECORDS, ARGV[1], ARGV[3])
  redis.call('ZADD', K_ORDER, 0, ARGV[1])
else
  redis.call('HDEL', K_RECORDS, ARGV[1])
  redis.call('ZREM', K_ORDER, ARGV[1])
end
return 1
`;

/** ARGV: lex start ('-' or '(' .. after), limit. Returns key, value, key, value, … in byte order, read in one step. */
const listArtifacts = `${RULE_KEYS}
local keys = redis.call('ZRANGEBYLEX', K_ORDER, ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, k in ipairs(keys) do
  local v = redis.call('HGET', K_RECORDS, k)
  if v then
    out[#out + 1] = k
    out[#out + 1] = v
  end
end
return out
`;

/** Removes the rule's keys; returns how many artifact records went. */
const clearRule = `${RULE_KEYS}
local removed = redis.call('HLEN', K_RECORDS)
redis.call('DEL', K_STATE, K_RECORDS, K_ORDER)
return removed
`;

export const REPLICATION_SCRIPTS = {
  berthReplUpdateState: { source: updateState, keys: PER_RULE_KEYS.length },
  berthReplPutArtifact: { source: putArtifact, keys: PER_RULE_KEYS.length },
  berthReplListArtifacts: { source: listArtifacts, keys: PER_RULE_KEYS.length },
  berthReplClearRule: { source: clearRule, keys: PER_RULE_KEYS.length },
} as const;

export type ReplicationScriptName = keyof typeof REPLICATION_SCRIPTS;
