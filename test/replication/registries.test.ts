import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { ConfigError } from '../../server/config.js';
import { resolveRegistries, type RegistryEntry } from '../../server/registry/replication/registries.js';

const entry: RegistryEntry = {
  name: 'dr',
  urls: ['https://dr.example.com/'],
  username: 'robot',
  passwordEnv: 'DR_PW',
  timeoutSeconds: 1.5,
  maxConcurrent: 4,
  requestsPerSecond: 0,
  maxWaitSeconds: 10,
};

describe('replication registries: resolving the configured entries', () => {
  it('reads the password from the environment and keeps it out of logs', () => {
    const [registry] = resolveRegistries([entry], { env: { DR_PW: 'hunter2' } });
    assert.ok(registry);
    assert.equal(registry.password, 'hunter2');
    assert.deepEqual(registry.urls, ['https://dr.example.com']);
    assert.equal(registry.timeoutMs, 1500);
    assert.equal(registry.maxWaitMs, 10_000);
    assert.ok(!JSON.stringify(registry).includes('hunter2'));
    assert.ok(!inspect(registry).includes('hunter2'));
  });

  it('names every missing password source in one ConfigError, never a password', () => {
    const files: Record<string, string> = { '/pw/empty': '\n' };
    const readFile = (path: string) => {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
      return text;
    };
    const entries: RegistryEntry[] = [
      entry,
      { ...entry, name: 'acr', passwordEnv: undefined, passwordFile: '/pw/empty' },
      { ...entry, name: 'ali', passwordEnv: undefined, passwordFile: '/pw/none' },
    ];
    assert.throws(
      () => resolveRegistries(entries, { env: {}, readFile }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /replication\.registries\.0\.passwordEnv \(registry "dr"\): environment variable DR_PW is not set/);
        assert.match(err.message, /replication\.registries\.1\.passwordFile \(registry "acr"\): \/pw\/empty is empty/);
        assert.match(err.message, /replication\.registries\.2\.passwordFile \(registry "ali"\): cannot read \/pw\/none: no such file/);
        return true;
      },
    );
  });
});
