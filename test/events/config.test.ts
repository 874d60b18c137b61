import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../../server/config.js';
import { closeEndpoints, resolveEndpoints, type EventEndpoint } from '../../server/registry/events/endpoints.js';
import { expandRecord } from '../../server/registry/events/event.js';
import { postEvent } from '../../server/registry/events/sender.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { makeSelfSignedCert } from '../helpers/tls-cert.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';
import { manifestPut } from './records.js';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

const HOOK = { name: 'ci', url: 'https://ci.example.com/hook' };

function endpointProblems(endpoint: Record<string, unknown>): string[] {
  return problemsOf(() => parseConfig({ events: { endpoints: [endpoint] } }));
}

describe('events config', () => {
  it('has the documented defaults', () => {
    const { events } = parseConfig({ events: { endpoints: [HOOK] } });
    assert.deepEqual(
      { ...events, endpoints: undefined },
      {
        enabled: true,
        maxEvents: 100_000,
        pulls: 'off',
        deliver: true,
        pollIntervalMs: 500,
        leaseSeconds: 30,
        batchSize: 100,
        pullIntervalSeconds: 60,
        endpoints: undefined,
      },
    );
    assert.deepEqual(events.endpoints[0], {
      name: 'ci',
      url: 'https://ci.example.com/hook',
      format: 'cloudevents',
      headers: {},
      timeoutSeconds: 10,
      maxAttempts: 12,
      backoff: { initialSeconds: 1, maxSeconds: 300 },
      concurrency: 4,
      maxDeadLetters: 10_000,
    });
    assert.deepEqual(parseConfig({}).events.endpoints, []);
  });

  it('takes the section from the environment, endpoints as JSON', () => {
    const config = loadConfig({
      env: { BERTH_EVENTS_PULLS: 'aggregated', BERTH_EVENTS_DELIVER: 'false', BERTH_EVENTS_ENDPOINTS: JSON.stringify([{ ...HOOK, format: 'distribution' }]) },
    });
    assert.equal(config.events.pulls, 'aggregated');
    assert.equal(config.events.deliver, false);
    assert.equal(config.events.endpoints[0]?.format, 'distribution');
  });

  it('names each bad endpoint key', () => {
    assert.deepEqual(endpointProblems({ name: 'CI Hook', url: 'ftp://x/y', format: 'json' }), [
      'events.endpoints.0.name: must be lowercase letters, digits and "-" (not at either end), at most 64 characters',
      'events.endpoints.0.url: must be an http or https URL, not ftp:',
      'events.endpoints.0.format: Invalid option: expected one of "cloudevents"|"distribution"',
    ]);
    assert.deepEqual(endpointProblems({ ...HOOK, url: 'not a url' }), ['events.endpoints.0.url: Invalid URL']);
    assert.deepEqual(endpointProblems({ ...HOOK, url: 'https://user:pw@ci.example.com/' }), [
      'events.endpoints.0.url: must not carry credentials: send them as a header (headers: { Authorization: { valueEnv: NAME } })',
    ]);
    assert.deepEqual(endpointProblems({ ...HOOK, secret: 'x' }), ["unknown key 'events.endpoints.0.secret'"]);
  });

  it('refuses filters that can never match', () => {
    assert.deepEqual(endpointProblems({ ...HOOK, actions: ['manifest.pushed', 'push'], tags: ['/[/'], mediaTypes: ['application/*+json'] }), [
      'events.endpoints.0.actions.1: unknown action "push": use one of repository.created, manifest.pushed, manifest.pulled, manifest.deleted, tag.moved, tag.deleted, blob.pushed, blob.mounted, blob.deleted, blob.collected, blob.corrupt, blob.missing, pulls.counted, a family (repository.*, manifest.*, tag.*, blob.*, pulls.*) or *',
      'events.endpoints.0.tags.0: not a valid regular expression: Invalid regular expression: /[/: Unterminated character class',
      'events.endpoints.0.mediaTypes.0: a media type pattern may only end in `*` (e.g. application/vnd.oci.image.*)',
    ]);
  });

  it('refuses both secret sources, reserved or repeated headers, and caFile on http', () => {
    assert.deepEqual(
      endpointProblems({
        name: 'x',
        url: 'http://hook.local/',
        secretFile: '/run/secret',
        secretEnv: 'HOOK_SECRET',
        headers: { 'Content-Type': 'text/plain', 'Berth-Event-Id': '1', 'X-Team': 'a', 'x-team': 'b', 'Bad Name': 'v', 'X-Split': 'a\r\nInjected: 1' },
        caFile: '/ca.pem',
      }),
      [
        'events.endpoints.0.headers.X-Split: a header value may not hold line breaks',
        'events.endpoints.0.secretEnv: give secretFile or secretEnv, not both',
        'events.endpoints.0.headers.Content-Type: set by Berth itself (Content-Type, User-Agent, Berth-*): it cannot be configured',
        'events.endpoints.0.headers.Berth-Event-Id: set by Berth itself (Content-Type, User-Agent, Berth-*): it cannot be configured',
        'events.endpoints.0.headers.x-team: given twice (header names ignore case)',
        'events.endpoints.0.headers.Bad Name: not a valid header name',
        'events.endpoints.0.caFile: only used for https URLs',
      ],
    );
  });

  it('refuses out-of-range numbers and a backoff that starts above its maximum', () => {
    assert.deepEqual(endpointProblems({ ...HOOK, timeoutSeconds: 0, maxAttempts: 0, concurrency: 100, backoff: { initialSeconds: 60, maxSeconds: 10 } }), [
      'events.endpoints.0.timeoutSeconds: Too small: expected number to be >0',
      'events.endpoints.0.maxAttempts: Too small: expected number to be >=1',
      'events.endpoints.0.backoff: initialSeconds must not exceed maxSeconds',
      'events.endpoints.0.concurrency: Too big: expected number to be <=64',
    ]);
    assert.deepEqual(
      problemsOf(() => parseConfig({ events: { pulls: 'all', maxEvents: 10 } })),
      ['events.maxEvents: Too small: expected number to be >=100', 'events.pulls: Invalid option: expected one of "off"|"aggregated"|"each"'],
    );
  });

  it('refuses two endpoints of one name', () => {
    assert.deepEqual(
      problemsOf(() => parseConfig({ events: { endpoints: [HOOK, { ...HOOK, url: 'https://other.example/' }] } })),
      ['events.endpoints.1.name: endpoint name "ci" is used twice'],
    );
  });
});

describe('resolveEndpoints', () => {
  let scratch: ScratchDir;
  const opened: EventEndpoint[] = [];
  before(async () => {
    scratch = await makeScratchDir('events-config');
    await writeFile(join(scratch.path, 'secret'), 'new-secret\n\n  old-secret  \n');
    await writeFile(join(scratch.path, 'empty'), '\n \n');
  });
  after(async () => {
    closeEndpoints(opened);
    await scratch.remove();
  });

  function resolve(endpoints: Record<string, unknown>[], env: NodeJS.ProcessEnv = {}): EventEndpoint[] {
    const out = resolveEndpoints(parseConfig({ events: { endpoints } }).events, { env });
    opened.push(...out);
    return out;
  }

  it('reads secrets (one per line) and env header values, compiles the filter, converts units', () => {
    const [endpoint] = resolve(
      [
        {
          ...HOOK,
          secretFile: join(scratch.path, 'secret'),
          headers: { Authorization: { valueEnv: 'CI_TOKEN' }, 'X-Team': 'platform' },
          actions: ['manifest.pushed'],
          tags: ['v*'],
          timeoutSeconds: 2.5,
          backoff: { initialSeconds: 0.5, maxSeconds: 60 },
        },
      ],
      { CI_TOKEN: 'Bearer abc' },
    );
    assert.ok(endpoint);
    assert.deepEqual(endpoint.secrets, ['new-secret', 'old-secret']);
    assert.equal(endpoint.signed, true);
    assert.deepEqual(endpoint.headers, { Authorization: 'Bearer abc', 'X-Team': 'platform' });
    assert.deepEqual(endpoint.headerNames, ['Authorization', 'X-Team']);
    assert.equal(endpoint.timeoutMs, 2500);
    assert.deepEqual(endpoint.backoff, { initialMs: 500, maxMs: 60_000 });
    const [tagged, untagged] = [manifestPut({ tags: ['v1'], previous: [''] }), manifestPut()].map((r) => expandRecord(r)[0]!);
    assert.equal(endpoint.filter(tagged!), true);
    assert.equal(endpoint.filter(untagged!), false);
  });

  it('takes secrets from the environment, one per line', () => {
    const [endpoint] = resolve([{ ...HOOK, secretEnv: 'HOOK_SECRET' }], { HOOK_SECRET: 'a\nb' });
    assert.deepEqual(endpoint?.secrets, ['a', 'b']);
    const [unsigned] = resolve([HOOK]);
    assert.equal(unsigned?.signed, false);
    assert.deepEqual(unsigned?.secrets, []);
  });

  it('never shows secrets or header values when an endpoint is logged or serialised', () => {
    const [endpoint] = resolve([{ ...HOOK, secretEnv: 'HOOK_SECRET', headers: { Authorization: { valueEnv: 'CI_TOKEN' } } }], {
      HOOK_SECRET: 'very-secret-value',
      CI_TOKEN: 'token-value',
    });
    for (const text of [JSON.stringify(endpoint), inspect(endpoint, { depth: 10 }), String(Object.values(endpoint!))]) {
      assert.ok(!text.includes('very-secret-value'), text);
      assert.ok(!text.includes('token-value'), text);
    }
    assert.match(JSON.stringify(endpoint), /"headerNames":\["Authorization"\]/);
  });

  it('names the endpoint and the missing file or variable, never a value', () => {
    const problems = problemsOf(() =>
      resolve(
        [
          { name: 'a', url: 'https://a.example/', secretFile: join(scratch.path, 'nope') },
          { name: 'b', url: 'https://b.example/', secretEnv: 'B_SECRET' },
          { name: 'c', url: 'https://c.example/', secretFile: join(scratch.path, 'empty') },
          { name: 'd', url: 'https://d.example/', headers: { Authorization: { valueEnv: 'D_TOKEN' } } },
          { name: 'e', url: 'https://e.example/', caFile: join(scratch.path, 'secret') },
          { name: 'f', url: 'https://f.example/', secretFile: scratch.path },
        ],
        { B_SECRET: '  ' },
      ),
    );
    assert.deepEqual(problems, [
      `events.endpoints.0.secretFile (endpoint "a"): cannot read ${join(scratch.path, 'nope')}: no such file`,
      'events.endpoints.1.secretEnv (endpoint "b"): environment variable B_SECRET is not set',
      `events.endpoints.2.secretFile (endpoint "c"): ${join(scratch.path, 'empty')} holds no secret (one per line)`,
      'events.endpoints.3.headers.Authorization (endpoint "d"): environment variable D_TOKEN is not set',
      `events.endpoints.4.caFile (endpoint "e"): ${join(scratch.path, 'secret')} holds no PEM certificate`,
      `events.endpoints.5.secretFile (endpoint "f"): cannot read ${scratch.path}: is a directory`,
    ]);
    assert.ok(!problems.join('\n').includes('new-secret'));
  });

  it('trusts the CA file of an https endpoint, through the endpoint agent', async () => {
    const cert = makeSelfSignedCert(scratch.path, 'hook', '127.0.0.1');
    const receiver = await startWebhookReceiver({ tls: { cert: await readFile(cert.certFile), key: await readFile(cert.keyFile) } });
    try {
      const [endpoint] = resolve([{ name: 'tls', url: `${receiver.url}/hook`, caFile: cert.certFile }]);
      const outcome = await postEvent({
        url: endpoint!.url,
        body: Buffer.from('{}'),
        contentType: 'application/json',
        timeoutMs: 10_000,
        agent: endpoint!.agent,
      });
      assert.deepEqual(outcome, { ok: true, status: 200, retryable: false });
    } finally {
      await receiver.close();
    }
  });
});
