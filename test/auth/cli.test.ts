import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type CliContext, runKeyCommand, runRobotCommand, runUserCommand } from '../../auth/cli.js';
import { RobotStore } from '../../auth/robots.js';
import { UserStore } from '../../auth/users.js';

describe('auth CLI', () => {
  let dir: string;
  let out: string[];
  let err: string[];
  const ctx = (stdin?: string): CliContext => ({
    dataDir: dir,
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    stdin: stdin === undefined ? undefined : Readable.from([Buffer.from(stdin)]),
  });
  const reset = () => {
    out = [];
    err = [];
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-auth-cli-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('user add/list/remove, with a password from stdin or generated once', async () => {
    reset();
    assert.equal(await runUserCommand(['add', 'alice', '--password-stdin'], ctx('alice-password-1\n')), 0);
    assert.equal(await runUserCommand(['add', 'bob'], ctx()), 0);
    const generated = /password \(shown once\): (\S+)/.exec(out.join(''))?.[1];
    assert.ok(generated && generated.length >= 20);
    const htpasswd = join(dir, 'auth', 'htpasswd');
    const text = await readFile(htpasswd, 'utf8');
    assert.ok(!text.includes('alice-password-1') && !text.includes(generated), 'only hashes on disk');
    assert.equal((await stat(htpasswd)).mode & 0o777, 0o600);
    const users = new UserStore(htpasswd);
    await users.load();
    assert.equal((await users.verify('alice', 'alice-password-1')).ok, true);
    assert.equal((await users.verify('bob', generated)).ok, true);
    reset();
    assert.equal(await runUserCommand(['list', '--config', '/etc/berth.yaml'], ctx()), 0, '--config belongs to the caller');
    assert.equal(out.join(''), 'alice\nbob\n');
    assert.equal(await runUserCommand(['remove', 'alice'], ctx()), 0);
    assert.equal((await users.verify('alice', 'alice-password-1')).ok, false);
    assert.equal(await runUserCommand(['remove', 'alice'], ctx()), 1);
    reset();
    assert.equal(await runUserCommand(['add', 'Bad:Name'], ctx()), 2);
    assert.equal(await runUserCommand(['add', 'robot+x'], ctx()), 2);
    assert.equal(await runUserCommand(['add', 'carol', '--password-stdin'], ctx('short\n')), 2);
    assert.equal(await runUserCommand(['add', 'carol', '--what'], ctx()), 2);
    reset();
    assert.equal(await runUserCommand(['--help'], ctx()), 0);
    assert.match(out.join(''), /Usage: berth user/);
  });

  it('robot create/list/revoke prints the secret once and stores only its hash', async () => {
    reset();
    assert.equal(
      await runRobotCommand(
        ['create', 'ci', '--repo', 'builds/**', '--repo=team/app', '--actions', 'pull,push', '--expires', '30d', '--description', 'CI'],
        ctx(),
      ),
      0,
    );
    const text = out.join('');
    const secret = /secret \(shown once\): (\S+)/.exec(text)?.[1];
    assert.ok(secret && secret.length >= 40);
    assert.match(text, /username: robot\+ci/);
    const file = join(dir, 'auth', 'robots.json');
    const stored = await readFile(file, 'utf8');
    assert.ok(!stored.includes(secret), 'secret not stored in clear');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const robots = new RobotStore(file);
    await robots.load();
    const login = await robots.verify('ci', secret);
    assert.equal(login.ok, true);
    if (login.ok) {
      assert.deepEqual(login.robot.repositories, ['builds/**', 'team/app']);
      assert.deepEqual(login.robot.actions, ['pull', 'push']);
      assert.ok(login.robot.expiresAt && Date.parse(login.robot.expiresAt) > Date.now() + 29 * 86_400_000);
    }
    reset();
    assert.equal(await runRobotCommand(['list'], ctx()), 0);
    assert.match(out.join(''), /^robot\+ci\tbuilds\/\*\* team\/app\tpull,push\texpires \S+\tCI\n$/);
    assert.ok(!out.join('').includes(secret));
    assert.equal(await runRobotCommand(['revoke', 'ci'], ctx()), 0);
    assert.equal((await robots.verify('ci', secret)).ok, false);
    assert.equal(await runRobotCommand(['revoke', 'ci'], ctx()), 1);
    assert.equal(await runRobotCommand(['create', 'x'], ctx()), 2, '--repo is required');
    assert.equal(await runRobotCommand(['create', 'x', '--repo', 'a', '--actions', 'pull,admin'], ctx()), 2);
    assert.equal(await runRobotCommand(['create', 'x', '--repo', 'a', '--expires', 'soon'], ctx()), 2);
    assert.equal(await runRobotCommand(['create', 'X!', '--repo', 'a'], ctx()), 2);
  });

  it('key rotate makes a new key active', async () => {
    reset();
    assert.equal(await runKeyCommand(['rotate'], ctx()), 0);
    const first = /new signing key (\S+)/.exec(out.join(''))?.[1];
    assert.equal(await runKeyCommand(['rotate'], ctx()), 0);
    const second = /new signing key (\S+)/.exec(out.join('').split('\n')[1] ?? '')?.[1];
    assert.ok(first && second && first !== second);
    const state = JSON.parse(await readFile(join(dir, 'auth', 'keys', 'keys.json'), 'utf8')) as { keys: Array<{ kid: string; retiredAt: string | null }> };
    assert.equal(state.keys.find((k) => k.retiredAt === null)?.kid, second);
    assert.equal((await stat(join(dir, 'auth', 'keys', `${second}.pem`))).mode & 0o777, 0o600);
    await assert.rejects(stat(join(dir, 'auth', 'keys', `${first}.pem`)), 'a retired private key is deleted');
  });
});
