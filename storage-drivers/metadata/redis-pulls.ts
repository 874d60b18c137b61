import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';
import { DAY_MS, daysOf, type PullBatch, type PullBatchEntry, type PullMetadata, type PullSeries, type PullTally, type SeriesRange } from './pull-types.js';

/*
 * Pull statistics in Redis (P = keyPrefix), all under the repository's hash tag, next to its tags:
 *
 *   P{repo:<r>}:pulls              hash { count, last }: the repository's totals
 *   P{repo:<r>}:pulltags           hash tag → "<count> <last>"
 *   P{repo:<r>}:pullday:<day>      hash { total, t:<tag> → count }, expires keepDays after <day> began
 *   P{repo:<r>}:pullbatch:<id>:<day>  "1" for a day: that flush was applied (a retry changes nothing)
 *
 * One script per repository and day reads P{repo:<r>}:tagsof (the store's "<digest> <tag>" index) to
 * credit pulls by digest, so the credit and the tags it reads are one atomic step, on Cluster too.
 */

/** How long a flush id is remembered: far beyond any retry of it. */
const BATCH_TTL_MS = DAY_MS;
/** Tags per HMGET of a batched read. */
const TAG_READ_CHUNK = 5000;

/**
 * KEYS: totals, tag totals, tagsof, the day's hash, the batch mark. ARGV: batch ttl (ms), when the day's
 * hash expires (ms), n, n × (tag, count, last), m, m × (digest, count, last). 0 when already applied.
 */
const recordPulls = `
local K_TOTAL, K_TAGS, K_TAGSOF, K_DAY, K_BATCH = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if not redis.call('SET', K_BATCH, '1', 'NX', 'PX', ARGV[1]) then return 0 end
local function credit(tag, count, last)
  local c, l = 0, 0
  local old = redis.call('HGET', K_TAGS, tag)
  if old then
    local sp = string.find(old, ' ', 1, true)
    if sp then
      c = tonumber(string.sub(old, 1, sp - 1)) or 0
      l = tonumber(string.sub(old, sp + 1)) or 0
    end
  end
  if last > l then l = last end
  redis.call('HSET', K_TAGS, tag, string.format('%d %d', c + count, l))
  redis.call('HINCRBY', K_DAY, 't:' .. tag, count)
end
local total, latest = 0, 0
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local count, last = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  credit(ARGV[i], count, last)
  total = total + count
  if last > latest then latest = last end
  i = i + 3
end
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  local digest, count, last = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local head = digest .. ' '
  for _, member in ipairs(redis.call('ZRANGEBYLEX', K_TAGSOF, '[' .. head, '(' .. digest .. '!')) do
    credit(string.sub(member, #head + 1), count, last)
  end
  total = total + count
  if last > latest then latest = last end
  i = i + 3
end
if total > 0 then
  redis.call('HINCRBY', K_TOTAL, 'count', total)
  local before = tonumber(redis.call('HGET', K_TOTAL, 'last') or '0') or 0
  if latest > before then redis.call('HSET', K_TOTAL, 'last', string.format('%d', latest)) end
  redis.call('HINCRBY', K_DAY, 'total', total)
  redis.call('PEXPIREAT', K_DAY, ARGV[2])
end
return 1
`;

type ScriptRunner = (...args: (string | number)[]) => Promise<unknown>;

/** What RedisPulls borrows from its RedisStore: the connection, the key names and the error mapping. */
export interface RedisPullsContext {
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  run<T>(what: string, action: () => Promise<T>): Promise<T>;
}

function tallyOf(value: string | null): PullTally | undefined {
  if (value === null) return undefined;
  const [count, last] = value.split(' ').map(Number);
  if (count === undefined || last === undefined || !Number.isFinite(count) || !Number.isFinite(last)) return undefined;
  return { count, last };
}

/** The replies of a pipeline, in order; a failed command fails the read. */
async function replies(pipeline: ReturnType<RedisClient['pipeline']>): Promise<unknown[]> {
  const results = await pipeline.exec();
  if (results === null) throw new Error('pipeline aborted');
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

export class RedisPulls implements PullMetadata {
  constructor(private readonly ctx: RedisPullsContext) {
    ctx.client.defineCommand('berthRecordPulls', { lua: recordPulls, numberOfKeys: 5 });
  }

  private get record(): ScriptRunner {
    const fn = (this.ctx.client as unknown as Record<'berthRecordPulls', ScriptRunner>).berthRecordPulls;
    return fn.bind(this.ctx.client);
  }

  recordPulls(batch: PullBatch): Promise<void> {
    return this.ctx.run('pulls.recordPulls', async () => {
      // One script per repository and day (each in its repository's slot), sent at once.
      await Promise.all(batch.entries.map((entry) => this.recordEntry(batch, entry)));
    });
  }

  private async recordEntry(batch: PullBatch, entry: PullBatchEntry): Promise<void> {
    const { keys } = this.ctx;
    const args: (string | number)[] = [
      keys.pulls(entry.repo, 'total'),
      keys.pulls(entry.repo, 'tags'),
      keys.repo(entry.repo, 'tagsof'),
      keys.pullDay(entry.repo, entry.day),
      keys.pullBatch(entry.repo, batch.id, entry.day),
      String(BATCH_TTL_MS),
      String((entry.day + batch.keepDays) * DAY_MS),
      String(entry.byTag.length),
    ];
    for (const t of entry.byTag) args.push(t.tag, String(t.count), String(t.last));
    args.push(String(entry.byDigest.length));
    for (const d of entry.byDigest) args.push(d.digest, String(d.count), String(d.last));
    await this.record(...args);
  }

  repositoryPulls(repo: string, range: SeriesRange): Promise<PullSeries> {
    return this.ctx.run('pulls.repositoryPulls', async () => {
      const days = daysOf(range);
      const pipeline = this.ctx.client.pipeline().hmget(this.ctx.keys.pulls(repo, 'total'), 'count', 'last');
      for (const day of days) pipeline.hget(this.ctx.keys.pullDay(repo, day), 'total');
      const [totals, ...daily] = await replies(pipeline);
      const [count, last] = totals as (string | null)[];
      return {
        count: Number(count ?? 0),
        ...(last ? { last: Number(last) } : {}),
        daily: days.map((day, i) => ({ day, count: Number(daily[i] ?? 0) })),
      };
    });
  }

  tagSeries(repo: string, tag: string, range: SeriesRange): Promise<PullSeries> {
    return this.ctx.run('pulls.tagSeries', async () => {
      const days = daysOf(range);
      const pipeline = this.ctx.client.pipeline().hget(this.ctx.keys.pulls(repo, 'tags'), tag);
      for (const day of days) pipeline.hget(this.ctx.keys.pullDay(repo, day), `t:${tag}`);
      const [total, ...daily] = await replies(pipeline);
      const tally = tallyOf(total as string | null);
      return {
        count: tally?.count ?? 0,
        ...(tally ? { last: tally.last } : {}),
        daily: days.map((day, i) => ({ day, count: Number(daily[i] ?? 0) })),
      };
    });
  }

  tagPulls(repo: string, tags: string[]): Promise<Map<string, PullTally>> {
    return this.ctx.run('pulls.tagPulls', async () => {
      const found = new Map<string, PullTally>();
      if (tags.length === 0) return found;
      const key = this.ctx.keys.pulls(repo, 'tags');
      const pipeline = this.ctx.client.pipeline();
      for (let i = 0; i < tags.length; i += TAG_READ_CHUNK) pipeline.hmget(key, ...tags.slice(i, i + TAG_READ_CHUNK));
      const values = (await replies(pipeline)).flat() as (string | null)[];
      tags.forEach((tag, i) => {
        const tally = tallyOf(values[i] ?? null);
        if (tally) found.set(tag, tally);
      });
      return found;
    });
  }
}
