import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { bearerChallenge } from '../../auth/challenge.js';
import { authConfigSchema } from '../../auth/config.js';
import { globMatch } from '../../auth/glob.js';
import { LOG_REDACT_PATHS, SENSITIVE_HEADERS } from '../../auth/redact.js';
import { Policy } from '../../auth/rules.js';
import { ruleSchema } from '../../auth/rules-schema.js';
import { covers, missing, parseScope, parseScopes } from '../../auth/scope.js';
import { parseHtpasswd } from '../../auth/users.js';
import type { AccessNeed } from '../../auth/types.js';

/** The principal of robot `ci`, limited to `ci/**` and `actions`. */
function ciRobot(actions: string[]) {
  return {
    kind: 'robot' as const,
    name: 'ci',
    robot: { name: 'ci', id: 'x'.repeat(8), secretHash: '0'.repeat(64), repositories: ['ci/**'], actions, createdAt: '', expiresAt: null, description: '' },
  };
}

describe('auth units: scopes', () => {
  it('parses names with a host:port part without splitting on every colon', () => {
    assert.deepEqual(parseScope('repository:samalba/my-app:pull,push'), { type: 'repository', name: 'samalba/my-app', actions: ['pull', 'push'] });
    assert.deepEqual(parseScope('repository:localhost:5000/a/b:pull'), { type: 'repository', name: 'localhost:5000/a/b', actions: ['pull'] });
    assert.deepEqual(parseScope('repository(plugin):a/b:pull'), { type: 'repository', name: 'a/b', actions: ['pull'] });
    assert.deepEqual(parseScope('registry:catalog:*'), { type: 'registry', name: 'catalog', actions: ['*'] });
    for (const bad of [
      '',
      'repository',
      'repository:a',
      'repository::pull',
      'repository:a:',
      'repository:a:PULL',
      'weird:a:pull',
      ':a:pull',
      'repository:a:pull;rm',
    ]) {
      assert.equal(parseScope(bad), undefined, bad);
    }
  });

  it('merges repeated and space-separated scopes', () => {
    assert.deepEqual(parseScopes(['repository:a:pull repository:b:push', 'repository:a:push,pull']), [
      { type: 'repository', name: 'a', actions: ['pull', 'push'] },
      { type: 'repository', name: 'b', actions: ['push'] },
    ]);
  });

  it('coverage needs every action of every resource', () => {
    const granted = [
      { type: 'repository' as const, name: 'a', actions: ['pull'] },
      { type: 'registry' as const, name: 'catalog', actions: ['*'] },
    ];
    assert.equal(covers(granted, [{ type: 'repository', name: 'a', actions: ['pull'] }]), true);
    assert.equal(covers(granted, [{ type: 'repository', name: 'a', actions: ['pull', 'push'] }]), false);
    assert.equal(covers(granted, [{ type: 'repository', name: 'catalog', actions: ['pull'] }]), false, 'type matters');
    assert.equal(covers(granted, [{ type: 'registry', name: 'catalog', actions: ['*'] }]), true);
    assert.equal(covers(granted, []), true);
    assert.deepEqual(missing(granted, [{ type: 'repository', name: 'a', actions: ['pull', 'delete'] }]), [
      { type: 'repository', name: 'a', actions: ['delete'] },
    ]);
  });

  it('formats the challenge like distribution', () => {
    assert.equal(
      bearerChallenge('https://r.example/auth/token', 'r.example', [{ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }], 'insufficient_scope'),
      'Bearer realm="https://r.example/auth/token",service="r.example",scope="repository:a/b:pull,push",error="insufficient_scope"',
    );
  });
});

describe('auth units: globs', () => {
  const cases: Array<[string, string, boolean]> = [
    ['team/*', 'team/app', true],
    ['team/*', 'team/app/x', false],
    ['team/*', 'team', false],
    ['team/**', 'team/app/x', true],
    ['team/**', 'team', true],
    ['team/**', 'teamx/app', false],
    ['**', 'anything/at/all', true],
    ['*/app', 'x/app', true],
    ['*/app', 'x/y/app', false],
    ['lib?', 'lib1', true],
    ['lib?', 'lib/', false],
    ['a.b', 'axb', false],
    ['a+b', 'a+b', true],
    ['web-*', 'web-1', true],
  ];
  for (const [glob, name, expected] of cases) {
    it(`${glob} ${expected ? 'matches' : 'does not match'} ${name}`, () => assert.equal(globMatch(glob, name), expected));
  }
});

describe('auth units: policy', () => {
  const rules = (list: unknown[]) => list.map((r) => ruleSchema.parse(r));
  it('explicit deny wins over every allow, and nothing matching means nothing allowed', async () => {
    const p = new Policy({
      groups: { devs: ['ann', 'robot+ci'] },
      rules: rules([
        { repository: '**', groups: ['devs'], allow: ['*'] },
        { repository: 'prod/**', users: ['ann'], deny: ['delete'] },
        { repository: 'vault/**', authenticated: true, deny: ['*'] },
        { registry: 'catalog', groups: ['devs'], allow: ['*'] },
      ]),
      userNamespaces: false,
    });
    const ann = { kind: 'user' as const, name: 'ann' };
    assert.deepEqual([...(await p.allowedActions(ann, 'repository', 'x/y'))].sort(), ['*', 'delete', 'pull', 'push']);
    assert.deepEqual([...(await p.allowedActions(ann, 'repository', 'prod/db'))].sort(), ['pull', 'push']);
    assert.deepEqual([...(await p.allowedActions(ann, 'repository', 'vault/k'))], []);
    assert.deepEqual([...(await p.allowedActions({ kind: 'user', name: 'zed' }, 'repository', 'x/y'))], []);
    assert.deepEqual([...(await p.allowedActions({ kind: 'anonymous' }, 'repository', 'x/y'))], []);
    assert.equal(await p.allows(ann, { type: 'registry', name: 'catalog', actions: ['*'] }), true);
    assert.equal(await p.allows({ kind: 'user', name: 'zed' }, { type: 'registry', name: 'catalog', actions: ['*'] }), false);
    const robot = ciRobot(['pull']);
    assert.equal(await p.allows(robot, { type: 'repository', name: 'x/y', actions: ['push'] }), true, 'robots can be group members');
    assert.equal(await p.allows(robot, { type: 'repository', name: 'vault/k', actions: ['pull'] }), false);
  });

  it('allowsEach answers as allows does, need by need, in order', async () => {
    const p = new Policy({
      groups: { devs: ['ann', 'robot+ci'] },
      rules: rules([
        { repository: 'pub/*', anonymous: true, allow: ['pull'] },
        { repository: '**', groups: ['devs'], allow: ['pull', 'push'] },
        { repository: 'prod/**', users: ['ann'], deny: ['push'] },
        { repository: 'vault/**', authenticated: true, deny: ['*'] },
        { registry: 'catalog', users: ['ann'], allow: ['*'] },
      ]),
      userNamespaces: true,
    });
    const needs = ['pub/a', 'x/y', 'prod/db', 'vault/k', 'ann/own', 'zed/own'].flatMap((name) =>
      ['pull', 'push', 'delete'].map((action): AccessNeed => ({ type: 'repository', name, actions: [action] })),
    );
    needs.push({ type: 'registry', name: 'catalog', actions: ['*'] });
    for (const subject of [{ kind: 'anonymous' as const }, { kind: 'user' as const, name: 'ann' }, { kind: 'user' as const, name: 'zed' }, ciRobot(['pull'])]) {
      const one = await Promise.all(needs.map((need) => p.allows(subject, need)));
      assert.deepEqual(await p.allowsEach(subject, needs), one, JSON.stringify(subject));
      assert.ok(one.includes(true) || subject.kind === 'anonymous', JSON.stringify(subject));
    }
  });

  it('anonymous rules, user namespaces and robot grants', async () => {
    const p = new Policy({
      groups: {},
      rules: rules([
        { repository: 'pub/*', anonymous: true, allow: ['pull'] },
        { repository: 'ann/secret', users: ['ann'], deny: ['push'] },
        { repository: 'ci/blocked', robots: ['c*'], deny: ['pull'] },
      ]),
      userNamespaces: true,
    });
    assert.equal(await p.allows({ kind: 'anonymous' }, { type: 'repository', name: 'pub/a', actions: ['pull'] }), true);
    assert.equal(
      await p.allows({ kind: 'user', name: 'ann' }, { type: 'repository', name: 'pub/a', actions: ['pull'] }),
      false,
      'anonymous rules are for anonymous callers only',
    );
    assert.equal(await p.allows({ kind: 'user', name: 'ann' }, { type: 'repository', name: 'ann/x/y', actions: ['pull', 'push', 'delete'] }), true);
    assert.equal(await p.allows({ kind: 'user', name: 'ann' }, { type: 'repository', name: 'annx/y', actions: ['pull'] }), false);
    assert.equal(await p.allows({ kind: 'user', name: 'ann' }, { type: 'repository', name: 'ann/secret', actions: ['push'] }), false);
    assert.equal(await p.allows({ kind: 'user', name: 'bob' }, { type: 'repository', name: 'ann/x', actions: ['pull'] }), false);
    const robot = ciRobot(['pull', 'push']);
    assert.equal(await p.allows(robot, { type: 'repository', name: 'ci/a/b', actions: ['pull', 'push'] }), true);
    assert.equal(await p.allows(robot, { type: 'repository', name: 'ci/a', actions: ['delete'] }), false);
    assert.equal(await p.allows(robot, { type: 'repository', name: 'ci/blocked', actions: ['pull'] }), false);
    assert.equal(await p.allows(robot, { type: 'repository', name: 'other', actions: ['pull'] }), false);
  });

  it('rules need exactly one resource kind', () => {
    assert.throws(() => ruleSchema.parse({ allow: ['pull'] }));
    assert.throws(() => ruleSchema.parse({ repository: 'a', registry: 'catalog' }));
    assert.throws(() => ruleSchema.parse({ repository: 'a', allow: ['Pull'] }));
  });
});

describe('auth units: htpasswd', () => {
  it('reads htpasswd -B entries ($2y$) and skips other schemes', async () => {
    const hash = bcrypt.hashSync('s3cret-password', 5).replace(/^\$2[ab]\$/, '$2y$');
    const parsed = parseHtpasswd(`alice:${hash}\n\n# comment\nbob:$apr1$abc$defghijklmnopqrstuv\ncarol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nbroken\n`);
    assert.deepEqual([...parsed.users.keys()], ['alice']);
    assert.deepEqual(parsed.skipped, ['bob', 'carol', '(malformed line)']);
    assert.equal(await bcrypt.compare('s3cret-password', parsed.users.get('alice') as string), true);
    assert.equal(await bcrypt.compare('wrong', parsed.users.get('alice') as string), false);
  });
});

describe('auth units: config and redaction', () => {
  it('rejects unknown keys and lifetimes under 60 s', () => {
    assert.throws(() => authConfigSchema.parse({ enabled: true, nope: 1 }));
    assert.throws(() => authConfigSchema.parse({ tokenTtlSeconds: 59 }));
    assert.throws(() => authConfigSchema.parse({ refreshTokenTtlSeconds: 10 }));
    assert.throws(() => authConfigSchema.parse({ signing: { algorithm: 'HS256' } }));
    assert.throws(() => authConfigSchema.parse({ loginLimits: { perUserAndAddress: 0 } }));
    assert.throws(() => authConfigSchema.parse({ loginLimits: { trustedAddressSeconds: -1 } }));
    assert.throws(() => authConfigSchema.parse({ passwordChecks: { workers: 0 } }));
    assert.throws(() => authConfigSchema.parse({ passwordChecks: { maxQueued: 1.5 } }));
    assert.throws(() => authConfigSchema.parse({ passwordChecks: { threads: 2 } }), 'unknown keys');
    assert.throws(() => authConfigSchema.parse({ externalIssuers: [{ issuer: 'x' }] }), 'an external issuer needs keys');
    const full = authConfigSchema.parse({
      enabled: true,
      rules: [{ repository: 'a/*', users: ['x'], allow: ['pull'] }],
      externalIssuers: [{ issuer: 'i', jwksUrl: 'https://i.example/jwks' }],
    });
    assert.deepEqual(authConfigSchema.parse(full), full, 'createAuth may be handed an already parsed section');
    const c = authConfigSchema.parse({});
    assert.equal(c.enabled, false);
    assert.equal(c.signing.algorithm, 'ES256');
    assert.equal(c.tokenTtlSeconds, 300);
  });

  it('lists the authorization header for the logger', () => {
    assert.ok(SENSITIVE_HEADERS.includes('authorization'));
    assert.ok(LOG_REDACT_PATHS.includes('req.headers["authorization"]'));
  });
});
