// /api/v1/events over a real registry and a real webhook receiver: the recent log, the status, dead
// letters made by real refusals, replayed and delivered, discarded; a replay from a time delivers the
// same ids again; bad requests are 400/404, never 500; events off says so; access with auth on.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Auth, createAuth } from '../../auth/index.js';
import type { EventsStatus } from '../../server/registry/events/operator.js';
import type { DeadLettersPage, RecordsPage } from '../../server/registry/events/operator-answers.js';
import { PASSWORDS, addUsers, baseConfig } from '../auth/fixtures.js';
import { RegistryClient } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from '../helpers/webhook-receiver.js';

interface CloudEvent {
  id: string;
  type: string;
  data: { repository?: string; target?: { digest?: string } };
}

const cloudEvent = (r: ReceivedRequest) => r.json as CloudEvent;
const JSON_HEADERS = { 'content-type': 'application/json' };

/** Polls `check` (bounded) for state kept in the store, which sends no notification. */
async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  return body.errors[0] as { code: string; message: string };
}

describe('events over the management API (auth off)', () => {
  let receiver: WebhookReceiver;
  let registry: TestRegistry;
  let client: RegistryClient;
  const actions: { action: string; endpoint: string; reason: string }[] = [];
  const api = (path: string, init?: RequestInit) => fetch(`${registry.url}/api/v1/events${path}`, init);
  const getJson = async <T>(path: string): Promise<T> => {
    const res = await api(path);
    assert.equal(res.status, 200, `GET ${path}`);
    return (await res.json()) as T;
  };
  const deadLetters = (endpoint = 'hook') => getJson<DeadLettersPage>(`/endpoints/${endpoint}/dead-letters`);
  const status = () => getJson<EventsStatus>('/status');
  const hook = async () => (await status()).endpoints.find((e) => e.name === 'hook');
  const caughtUp = async () => (await hook())?.behind === 0;

  before(async () => {
    receiver = await startWebhookReceiver();
    // team/refused is refused for good (400: no retries) until a test says otherwise.
    receiver.answer((r) => (cloudEvent(r).data.repository === 'team/refused' ? { status: 400, body: 'no thanks' } : { status: 200 }));
    registry = await startTestRegistry({
      deps: { onOperatorAction: (a) => actions.push({ action: a.action, endpoint: a.endpoint ?? '', reason: a.reason }) },
      config: {
        events: {
          pollIntervalMs: 20,
          leaseSeconds: 5,
          endpoints: [
            { name: 'hook', url: `${receiver.url}/hook`, actions: ['manifest.pushed'], backoff: { initialSeconds: 0.02, maxSeconds: 0.2 } },
            { name: 'spare', url: `${receiver.url}/spare`, actions: ['tag.deleted'] },
          ],
        },
      },
    });
    client = new RegistryClient(registry.url);
  });
  after(async () => {
    await registry?.close();
    await receiver?.close();
  });

  it('lists the recent records newest first, by repository and a page at a time', async () => {
    const first = await client.pushImage('team/app', 'v1');
    const second = await client.pushImage('team/other', 'v1');
    const all = await getJson<RecordsPage>('');
    const puts = all.records.filter((r) => r.record.kind === 'manifest_put');
    assert.deepEqual(
      puts.slice(0, 2).map((r) => 'digest' in r.record && r.record.digest),
      [second.manifest.digest, first.manifest.digest],
      'newest first',
    );
    assert.ok(puts[0]?.actions.includes('manifest.pushed'));
    assert.match(puts[0]?.time ?? '', /^\d{4}-\d{2}-\d{2}T.*Z$/);
    assert.ok(all.records.every((r, i) => i === 0 || (all.records[i - 1] as { seq: number }).seq > r.seq));

    const mine = await getJson<RecordsPage>('?repository=team/app');
    assert.ok(mine.records.length > 0);
    assert.ok(mine.records.every((r) => 'repository' in r.record && r.record.repository === 'team/app'));

    const one = await getJson<RecordsPage>('?n=1');
    assert.equal(one.records.length, 1);
    assert.ok(one.next !== undefined);
    const older = await getJson<RecordsPage>(`?n=1&last=${encodeURIComponent(one.next)}`);
    assert.equal(older.records[0]?.seq, (one.records[0]?.seq ?? 0) - 1);
  });

  it('shows the status of the log and of every endpoint', async () => {
    await waitUntil(caughtUp, 'hook caught up');
    const s = await status();
    assert.ok(s.logged > 0 && s.kept > 0);
    assert.deepEqual(
      s.endpoints.map((e) => [e.name, e.configured]),
      [
        ['hook', true],
        ['spare', true],
      ],
    );
    assert.ok((s.endpoints[0]?.delivered ?? 0) >= 2);
  });

  it('dead letters a refused event, lists it, replays it and the endpoint gets it', async () => {
    const refused = await client.pushImage('team/refused', 'v1');
    await waitUntil(async () => (await deadLetters()).total === 1, 'one dead letter');
    const page = await deadLetters();
    const letter = page.deadLetters[0];
    assert.equal(letter?.event?.action, 'manifest.pushed');
    assert.equal(letter?.event?.repository, 'team/refused');
    assert.equal(letter?.attempts, 1);
    assert.match(letter?.lastError ?? '', /400/);
    assert.equal((await hook())?.deadLetters, 1);

    receiver.answer(() => ({ status: 200 }));
    const from = receiver.requests.length;
    const res = await api('/endpoints/hook/replay', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ deadLetters: true }) });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { endpoint: 'hook', replay: 'deadLetters', deadLetters: 1 });
    await receiver.waitFor((r) => r.slice(from).some((x) => x.eventId === letter?.id), 30_000, 'the replayed dead letter');
    assert.equal(cloudEvent(receiver.requests.find((x) => x.eventId === letter?.id) as ReceivedRequest).data.target?.digest, refused.manifest.digest);
    await waitUntil(async () => (await deadLetters()).total === 0, 'the dead letter gone once delivered');
  });

  it('discards one dead letter by id, then all', async () => {
    receiver.answer(() => ({ status: 400 }));
    await client.pushImage('team/app', 'd1');
    await client.pushImage('team/app', 'd2');
    await waitUntil(async () => (await deadLetters()).total === 2, 'two dead letters');
    receiver.answer(() => ({ status: 200 }));
    const [one] = (await deadLetters()).deadLetters;
    const path = `/endpoints/hook/dead-letters/${encodeURIComponent(one?.id ?? '')}`;
    const res = await api(path, { method: 'DELETE' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { endpoint: 'hook', discarded: 1 });
    const again = await api(path, { method: 'DELETE' });
    assert.equal(again.status, 404);
    assert.match((await errorOf(again)).message, /has no dead letter/);
    const rest = await api('/endpoints/hook/dead-letters', { method: 'DELETE' });
    assert.deepEqual(await rest.json(), { endpoint: 'hook', discarded: 1 });
    assert.equal((await deadLetters()).total, 0);
    // Each change audited once, the refused one not at all.
    assert.deepEqual(
      actions.filter((a) => a.action === 'events_discarded'),
      [
        { action: 'events_discarded', endpoint: 'hook', reason: `id:${one?.id}` },
        { action: 'events_discarded', endpoint: 'hook', reason: 'all' },
      ],
    );
    assert.ok(actions.some((a) => a.action === 'events_replayed' && a.reason === 'dead_letters'));
  });

  it('a replay from a time moves the cursor back: the same events arrive again with the same ids', async () => {
    await waitUntil(caughtUp, 'hook caught up');
    const delivered = new Set(receiver.requests.filter((r) => r.url === '/hook' && r.eventId !== '').map((r) => r.eventId));
    const records = (await getJson<RecordsPage>('?n=1000')).records;
    const oldest = records[records.length - 1];
    assert.ok(oldest !== undefined);
    const from = receiver.requests.length;
    const res = await api('/endpoints/hook/replay', {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ since: new Date(oldest.record.at).toISOString() }),
    });
    assert.equal(res.status, 200);
    const answer = (await res.json()) as { replay: string; since: string };
    assert.equal(answer.replay, 'since');
    await receiver.waitFor(
      (r) => {
        const again = new Set(r.slice(from).map((x) => x.eventId));
        return [...delivered].every((id) => again.has(id));
      },
      30_000,
      'every event delivered before, again',
    );
  });

  it('refuses a replay from a time after records the endpoint has not had yet (it would skip them)', async () => {
    await receiver.stop();
    try {
      await client.pushImage('team/app', 'waiting');
      const waiting = (await getJson<RecordsPage>('?n=1')).records[0];
      assert.ok(waiting !== undefined);
      const since = waiting.record.at + 1;
      await waitUntil(async () => Date.now() > since, 'the clock past the record');
      const res = await api('/endpoints/hook/replay', {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ since: new Date(since).toISOString() }),
      });
      assert.equal(res.status, 400);
      assert.match((await errorOf(res)).message, /would skip them/);
    } finally {
      await receiver.listen();
    }
    await waitUntil(caughtUp, 'hook caught up once the receiver is back');
  });

  it('answers bad requests with 400 or 404 and a message, never 500', async () => {
    const post = (endpoint: string, body: string) => api(`/endpoints/${endpoint}/replay`, { method: 'POST', headers: JSON_HEADERS, body });
    const unknown = await post('nope', JSON.stringify({ deadLetters: true }));
    assert.equal(unknown.status, 404);
    assert.match((await errorOf(unknown)).message, /no event endpoint named "nope"; configured: hook, spare/);
    const unknownList = await api('/endpoints/nope/dead-letters');
    assert.equal(unknownList.status, 404);
    for (const [body, message] of [
      ['{}', /say what to replay/],
      [JSON.stringify({ since: '2026-01-01T00:00:00Z', deadLetters: true }), /not both/],
      [JSON.stringify({ since: '2h' }), /is not a time/],
      [JSON.stringify({ since: '2026-02-30' }), /is not a time/],
      [JSON.stringify({ since: '2026-01-01T10:00:00' }), /is not a time/],
      [JSON.stringify({ since: new Date(Date.now() + 3_600_000).toISOString() }), /in the future/],
      [JSON.stringify({ since: 5 }), /since must be a string/],
      [JSON.stringify({ deadLetters: 'yes' }), /deadLetters must be true/],
      [JSON.stringify({ from: 'x' }), /unknown field "from"/],
      ['[]', /the body is/],
      ['{"since":', /.+/],
    ] as const) {
      const res = await post('hook', body);
      assert.equal(res.status, 400, body);
      const error = await errorOf(res);
      assert.equal(error.code, 'REQUEST_INVALID', body);
      assert.match(error.message, message, body);
    }
    const noBody = await api('/endpoints/hook/replay', { method: 'POST' });
    assert.equal(noBody.status, 400);
    for (const query of ['?n=x', '?n=5000', '?repository=Bad%20Name', '?n=1&n=2']) assert.equal((await api(query)).status, 400, query);
  });
});

describe('events over the management API with events off', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({ config: { events: { enabled: false } } });
  });
  after(async () => registry?.close());

  it('says events are off, on every route', async () => {
    for (const [method, path] of [
      ['GET', ''],
      ['GET', '/status'],
      ['GET', '/endpoints/hook/dead-letters'],
      ['POST', '/endpoints/hook/replay'],
      ['DELETE', '/endpoints/hook/dead-letters'],
    ] as const) {
      const res = await fetch(`${registry.url}/api/v1/events${path}`, { method });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.match((await errorOf(res)).message, /events\.enabled: false/);
    }
  });
});

describe('events over the management API (auth on)', () => {
  let registry: TestRegistry;
  let auth: Auth;
  let work: string;

  async function tokenFor(user: keyof typeof PASSWORDS): Promise<string> {
    const res = await fetch(`${registry.url}/auth/token?service=berth&scope=${encodeURIComponent('registry:events:*')}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-events-api-'));
    await addUsers(work);
    auth = await createAuth(
      { ...baseConfig, enabled: true, rules: [...(baseConfig.rules ?? []), { registry: 'events', users: ['alice'], allow: ['*'] }] },
      { dataDir: work, log: { info() {}, warn() {}, error() {} } },
    );
    registry = await startTestRegistry({
      config: { events: { deliver: false, endpoints: [{ name: 'hook', url: 'http://127.0.0.1:9/hook' }] } },
      deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) },
    });
  });
  after(async () => {
    await registry?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const ROUTES = [
    ['GET', '/api/v1/events'],
    ['GET', '/api/v1/events/status'],
    ['GET', '/api/v1/events/endpoints/hook/dead-letters'],
    ['POST', '/api/v1/events/endpoints/hook/replay'],
    ['DELETE', '/api/v1/events/endpoints/hook/dead-letters'],
    ['DELETE', '/api/v1/events/endpoints/hook/dead-letters/x'],
  ] as const;

  it('challenges anonymous callers and refuses users without the events rule, before reading a body', async () => {
    const bob = await tokenFor('bob');
    for (const [method, path] of ROUTES) {
      const body = method === 'POST' ? { body: '{', headers: JSON_HEADERS } : {};
      const anon = await fetch(`${registry.url}${path}`, { method, ...body });
      assert.equal(anon.status, 401, `${method} ${path}`);
      assert.match(anon.headers.get('www-authenticate') ?? '', /scope="registry:events:\*"/);
      const denied = await fetch(`${registry.url}${path}`, {
        method,
        ...(method === 'POST' ? { body: '{' } : {}),
        headers: { ...JSON_HEADERS, authorization: `Bearer ${bob}` },
      });
      assert.equal(denied.status, 403, `${method} ${path}`);
    }
    assert.equal(await registry.storage.metadata.events.getEndpoint('hook'), undefined, 'nothing changed');
  });

  it('lets an operator with the events rule in', async () => {
    const headers = { authorization: `Bearer ${await tokenFor('alice')}` };
    const res = await fetch(`${registry.url}/api/v1/events/status`, { headers });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as EventsStatus).endpoints[0]?.name, 'hook');
    const replay = await fetch(`${registry.url}/api/v1/events/endpoints/hook/replay`, {
      method: 'POST',
      headers: { ...headers, ...JSON_HEADERS },
      body: JSON.stringify({ deadLetters: true }),
    });
    assert.deepEqual(await replay.json(), { endpoint: 'hook', replay: 'deadLetters', deadLetters: 0 });
  });
});
