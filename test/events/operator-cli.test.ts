// `berth events` as an operator runs it: a real process on the embedded store a serving registry has
import { readFile } from 'node:fs/promises';
// open, while the registry delivers to a real webhook receiver. Dead letters from real refusals are
// listed, replayed (and arrive), discarded; a replay --since delivers the same ids again; bad usage
// exits 2 and an unknown endpoint 1, each with a message.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EventsStatus } from '../../server/registry/events/operator.js';
import type { DeadLettersPage, RecordsPage } from '../../server/registry/events/operator-answers.js';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { runBerth, writeCliConfig } from '../helpers/berth-cli.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from '../helpers/webhook-receiver.js';

const repositoryOf = (r: ReceivedRequest) => (r.json as { data: { repository?: string } }).data.repository;

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('berth events', () => {
  let receiver: WebhookReceiver;
  let registry: TestRegistry;
  let client: RegistryClient;
  let configFile: string;

  const berth = async (...args: string[]) => runBerth(['events', ...args, '--config', configFile]);
  const json = async <T>(...args: string[]): Promise<T> => {
    const r = await berth(...args, '--json');
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  const deadLetters = () => registry.storage.metadata.events.countDeadLetters('hook');

  before(async () => {
    receiver = await startWebhookReceiver();
    receiver.answer((r) => (repositoryOf(r) === 'team/refused' ? { status: 400 } : { status: 200 }));
    const endpoints = [
      { name: 'hook', url: `${receiver.url}/hook`, actions: ['manifest.pushed'], backoff: { initialSeconds: 0.02, maxSeconds: 0.2 } },
      { name: 'spare', url: `${receiver.url}/spare`, actions: ['tag.deleted'] },
    ];
    registry = await startTestRegistry({
      driver: async (dir) => new FilesystemDriver({ root: join(dir, 'storage') }),
      config: { gc: { enabled: false }, events: { pollIntervalMs: 20, leaseSeconds: 5, endpoints } },
    });
    // The same endpoints as the server: the command names and checks them, it does not deliver.
    configFile = await writeCliConfig(registry.dir, { events: { deliver: false, endpoints }, audit: { output: join(registry.dir, 'audit.log') } });
    client = new RegistryClient(registry.url);
    await client.pushImage('team/app', 'v1');
    await client.pushImage('team/other', 'v1');
  });
  after(async () => {
    await registry?.close();
    await receiver?.close();
  });

  it('lists the newest records: text, --json, --repository and --limit', async () => {
    const text = await berth('list', '--limit', '3');
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(
      lines[0] ?? '',
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ {2}#\d+ {2}manifest\.pushed {2}team\/other sha256:[0-9a-f]{12}… tags v1 {2}by anonymous \(anonymous\)$/,
    );

    const page = await json<RecordsPage>('list', '--repository', 'team/app');
    assert.ok(page.records.length > 0);
    assert.ok(page.records.every((r) => 'repository' in r.record && r.record.repository === 'team/app'));
    const api = (await (await fetch(`${registry.url}/api/v1/events?repository=team/app&n=20`)).json()) as RecordsPage;
    assert.deepEqual(page, api, 'the same JSON as the API');
  });

  it('shows the status of the log and of each endpoint', async () => {
    await waitUntil(async () => (await json<EventsStatus>('status')).endpoints[0]?.behind === 0, 'hook caught up');
    const text = await berth('status');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^log: \d+ records logged, \d+ kept\n/);
    assert.match(text.stdout, /\nendpoint hook\n {2}0 behind, lag 0s, 0 dead letters, delivered by [^\n]+\n {2}delivered [1-9]\d*, failed attempts 0/);
    assert.match(text.stdout, /\nendpoint spare\n/);
  });

  it('lists a dead letter, replays it (the endpoint gets it) and it leaves the list', async () => {
    await client.pushImage('team/refused', 'v1');
    await waitUntil(async () => (await deadLetters()) === 1, 'one dead letter');
    const text = await berth('dead-letters', '--endpoint', 'hook');
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /^\S+ {2}dead \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ after 1 attempt {2}manifest\.pushed team\/refused sha256:\S+ tags v1 {2}error: .*400/,
    );
    const page = await json<DeadLettersPage>('dead-letters', '--endpoint', 'hook');
    assert.deepEqual(page, await (await fetch(`${registry.url}/api/v1/events/endpoints/hook/dead-letters`)).json(), 'the same JSON as the API');
    const id = page.deadLetters[0]?.id ?? '';

    receiver.answer(() => ({ status: 200 }));
    const from = receiver.requests.length;
    const replay = await berth('replay', '--endpoint', 'hook', '--dead-letters');
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stdout, /^endpoint hook: 1 dead letters to be delivered again/);
    await receiver.waitFor((r) => r.slice(from).some((x) => x.eventId === id), 30_000, 'the replayed dead letter');
    await waitUntil(async () => (await deadLetters()) === 0, 'the dead letter gone once delivered');
    assert.match((await berth('dead-letters', '--endpoint', 'hook')).stdout, /^endpoint hook has no dead letters\n$/);
  });

  it('discards a dead letter by --id, then --all', async () => {
    receiver.answer(() => ({ status: 400 }));
    await client.pushImage('team/app', 'd1');
    await client.pushImage('team/app', 'd2');
    await waitUntil(async () => (await deadLetters()) === 2, 'two dead letters');
    receiver.answer(() => ({ status: 200 }));
    const id = (await json<DeadLettersPage>('dead-letters', '--endpoint', 'hook', '--limit', '1')).deadLetters[0]?.id ?? '';
    const one = await berth('discard', '--endpoint', 'hook', '--id', id);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, 'discarded 1 dead letters of endpoint hook\n');
    const again = await berth('discard', '--endpoint', 'hook', '--id', id);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^berth events discard: endpoint hook has no dead letter /);
    assert.deepEqual(await json('discard', '--endpoint', 'hook', '--all'), { endpoint: 'hook', discarded: 1 });
    assert.equal(await deadLetters(), 0);
    // Who changed what is audited; a refused discard is not.
    const audit = (await readFile(join(registry.dir, 'audit.log'), 'utf8'))
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { action: string; endpoint?: string; reason?: string; actorKind?: string });
    const discards = audit.filter((a) => a.action === 'events_discarded');
    assert.deepEqual(
      discards.map((a) => [a.endpoint, a.reason, a.actorKind]),
      [
        ['hook', `id:${id}`, 'operator'],
        ['hook', 'all', 'operator'],
      ],
    );
    assert.ok(audit.some((a) => a.action === 'events_replayed' && a.reason === 'dead_letters'));
  });

  it('replay --since moves the cursor back: the events arrive again with the same ids', async () => {
    await waitUntil(async () => (await json<EventsStatus>('status')).endpoints[0]?.behind === 0, 'hook caught up');
    const delivered = new Set(receiver.requests.filter((r) => r.url === '/hook').map((r) => r.eventId));
    const from = receiver.requests.length;
    const r = await berth('replay', '--endpoint', 'hook', '--since', '1d');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^endpoint hook: cursor moved to the first record logged at or after /);
    await receiver.waitFor(
      (requests) => {
        const again = new Set(requests.slice(from).map((x) => x.eventId));
        return [...delivered].every((id) => again.has(id));
      },
      30_000,
      'every event delivered before, again',
    );
  });

  it('exits 1 naming the configured endpoints for an unknown one, and 2 for bad usage', async () => {
    const unknown = [
      ['dead-letters', '--endpoint', 'nope'],
      ['replay', '--endpoint', 'nope', '--dead-letters'],
      ['replay', '--endpoint', 'nope', '--since', '2h'],
      ['discard', '--endpoint', 'nope', '--all'],
    ];
    for (const list of unknown) {
      const r = await berth(...list);
      const args = list.join(' ');
      assert.equal(r.code, 1, args);
      assert.match(r.stderr, /no event endpoint named "nope"; configured: hook, spare\n$/, args);
    }
    const usage = [
      [['replay', '--endpoint', 'hook'], /give --since or --dead-letters$/m],
      [['replay', '--endpoint', 'hook', '--since', '2h', '--dead-letters'], /not both$/m],
      [['replay', '--endpoint', 'hook', '--since', '2 hours'], /"2 hours" is not a time: give /],
      [['replay', '--endpoint', 'hook', '--since', '2026-13-01'], /is not a time/],
      [['replay', '--endpoint', 'hook', '--since', '0m'], /at least 1m/],
      [['replay', '--endpoint', 'hook', '--since', '2999-01-01'], /in the future/],
      [['replay', '--dead-letters'], /name the endpoint: --endpoint NAME/],
      [['discard', '--endpoint', 'hook'], /give --id or --all$/m],
      [['discard', '--endpoint', 'hook', '--id'], /--id needs a value/],
      [['list', '--limit', '0'], /--limit must be a whole number of at least 1/],
      [['list', '--limit', '5000'], /at most 1000/],
      [['list', '--repository', 'Bad Name'], /invalid repository name/],
      [['list', '--bogus'], /unknown option --bogus/],
      [['status', 'extra'], /unexpected argument "extra"/],
      [['frob'], /unknown events command "frob"/],
    ] as const;
    for (const [args, message] of usage) {
      const r = await berth(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^berth events/, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
      assert.match(r.stderr, /Usage:/, 'the help follows');
    }
  });

  it('prints help for events and each command, exit 0', async () => {
    for (const sub of ['list', 'status', 'dead-letters', 'replay', 'discard']) {
      const r = await runBerth(['events', sub, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`^Usage: berth events ${sub} `));
    }
    const all = await runBerth(['events', '--help']);
    assert.match(all.stdout, /berth events replay --endpoint NAME \(--since TIME \| --dead-letters\)/);
    assert.match((await runBerth(['help'])).stdout, /berth events list\|status\|dead-letters\|replay\|discard/);
  });

  it('says events are off when the configuration turns them off, exit 1', async () => {
    const off = await writeCliConfig(registry.dir, { events: { enabled: false } }, join(registry.dir, 'off.yaml'));
    const r = await runBerth(['events', 'status', '--config', off]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^berth events: events are off on this registry \(events\.enabled: false\)/);
  });
});
