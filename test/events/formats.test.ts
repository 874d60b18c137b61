import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import { parseConfig } from '../../server/config.js';
import { expandRecord, type RegistryEvent } from '../../server/registry/events/event.js';
import {
  CLOUDEVENTS_MEDIA_TYPE,
  DISTRIBUTION_MEDIA_TYPE,
  defaultEventSource,
  formatEvent,
  formatOptionsFor,
  registryBaseUrl,
  type FormatOptions,
} from '../../server/registry/events/formats.js';
import { AT, D1, D2, D3, GC, IMAGE, RETENTION, manifestPut, record } from './records.js';

const OPTIONS: FormatOptions = {
  baseUrl: 'https://registry.example.com',
  source: 'berth://registry.example.com',
  instance: { addr: 'node-1:5000', instanceID: 'inst-1' },
};
const TIME = new Date(AT).toISOString();

function parse(body: Buffer): Record<string, unknown> {
  return JSON.parse(body.toString('utf8')) as Record<string, unknown>;
}

function distribution(event: RegistryEvent, options = OPTIONS): Record<string, unknown>[] {
  const out = formatEvent('distribution', event, options);
  assert.ok(out, `${event.action} has a distribution form`);
  assert.equal(out.contentType, DISTRIBUTION_MEDIA_TYPE);
  const envelope = parse(out.body);
  assert.deepEqual(Object.keys(envelope), ['events']);
  return envelope.events as Record<string, unknown>[];
}

function cloudEvent(event: RegistryEvent): Record<string, unknown> {
  const out = formatEvent('cloudevents', event, OPTIONS);
  assert.ok(out);
  assert.equal(out.contentType, CLOUDEVENTS_MEDIA_TYPE);
  return parse(out.body);
}

const REQUEST = { id: 'req-1', addr: '10.0.0.7', host: 'registry.example.com', useragent: 'docker/27.0' };
const SOURCE = { addr: 'node-1:5000', instanceID: 'inst-1' };

describe('distribution format', () => {
  it('a push with one tag is one push event with every field distribution sends', () => {
    const rec = manifestPut({ tags: ['v1'], previous: [''] });
    assert.deepEqual(distribution(expandRecord(rec)[0]!), [
      {
        id: rec.id,
        timestamp: TIME,
        action: 'push',
        target: {
          repository: 'team/app',
          mediaType: IMAGE,
          digest: D1,
          size: 1234,
          length: 1234,
          url: `https://registry.example.com/v2/team/app/manifests/${D1}`,
          tag: 'v1',
        },
        request: { ...REQUEST, method: 'PUT' },
        actor: { name: 'ci-bot' },
        source: SOURCE,
      },
    ]);
  });

  it('a push with several tags is one distribution event per tag, ids suffixed -<i>, in one envelope', () => {
    const rec = manifestPut({ tags: ['v1', 'latest', 'stable'], previous: ['', '', ''], id: 'r-tags' });
    const events = distribution(expandRecord(rec)[0]!);
    assert.deepEqual(
      events.map((e) => [e.id, (e.target as { tag: string }).tag]),
      [
        ['r-tags-0', 'v1'],
        ['r-tags-1', 'latest'],
        ['r-tags-2', 'stable'],
      ],
    );
    assert.ok(events.every((e) => e.action === 'push' && (e.target as { digest: string }).digest === D1));
  });

  it('a push by digest has no tag', () => {
    const [event] = distribution(expandRecord(manifestPut())[0]!);
    assert.equal((event?.target as Record<string, unknown>).tag, undefined);
  });

  it('deletes say what went: the digest of a manifest, the tag alone for a tag', () => {
    const [manifest] = distribution(expandRecord(record('manifest_deleted', { repository: 'team/app', digest: D1, tags: ['old'] }))[0]!);
    assert.equal(manifest?.action, 'delete');
    assert.deepEqual(manifest?.target, { repository: 'team/app', digest: D1 });
    assert.equal((manifest?.request as { method: string }).method, 'DELETE');
    const [tag] = distribution(expandRecord(record('tag_deleted', { repository: 'team/app', tag: 'v1', digest: D1 }))[0]!);
    assert.deepEqual(tag?.target, { repository: 'team/app', tag: 'v1' });
    const [blob] = distribution(expandRecord(record('blob_unlinked', { repository: 'team/app', digest: D3 }))[0]!);
    assert.deepEqual(blob?.target, { repository: 'team/app', digest: D3 });
  });

  it('blob pushes and mounts link to the blob; a mount names where it came from', () => {
    const [pushed] = distribution(
      expandRecord(record('blob_linked', { repository: 'team/app', digest: D3, size: 10, via: 'push', repositoryCreated: false }))[0]!,
    );
    assert.equal(pushed?.action, 'push');
    assert.deepEqual(pushed?.target, {
      repository: 'team/app',
      mediaType: 'application/octet-stream',
      digest: D3,
      size: 10,
      length: 10,
      url: `https://registry.example.com/v2/team/app/blobs/${D3}`,
    });
    const [mounted] = distribution(
      expandRecord(
        record('blob_linked', { repository: 'team/app', digest: D3, size: 10, via: 'mount', fromRepository: 'base/os', repositoryCreated: true }),
      )[1]!,
    );
    assert.equal(mounted?.action, 'mount');
    assert.equal((mounted?.target as { fromRepository: string }).fromRepository, 'base/os');
    assert.equal((mounted?.request as { method: string }).method, 'POST');
  });

  it('a pull is a pull event with the tag', () => {
    const [pull] = distribution(expandRecord(record('pull', { repository: 'team/app', digest: D1, tag: 'latest', mediaType: IMAGE, size: 5 }))[0]!);
    assert.equal(pull?.action, 'pull');
    assert.equal((pull?.target as { tag: string }).tag, 'latest');
    assert.equal((pull?.request as { method: string }).method, 'GET');
  });

  it('system changes have an empty request record and name the job as actor; anonymous has no name', () => {
    const [deleted] = distribution(expandRecord(record('manifest_deleted', { repository: 'r', digest: D1, tags: [], origin: RETENTION }))[0]!);
    assert.deepEqual(deleted?.request, { id: '', method: '', useragent: '' });
    assert.deepEqual(deleted?.actor, { name: 'retention' });
    const [anonymous] = distribution(
      expandRecord(record('pull', { repository: 'r', digest: D1, origin: { actor: 'anonymous', actorKind: 'anonymous', address: '1.2.3.4' } }))[0]!,
    );
    assert.deepEqual(anonymous?.actor, {});
    assert.deepEqual(anonymous?.request, { id: '', addr: '1.2.3.4', host: 'registry.example.com', method: 'GET', useragent: '' });
  });

  it('gives null for actions distribution has no word for', () => {
    const events = [
      ...expandRecord(manifestPut({ tags: ['latest'], previous: [D2], repositoryCreated: true })).filter((e) => e.action !== 'manifest.pushed'),
      ...expandRecord(record('pulls', { repository: 'r', from: 0, to: 1, count: 1, tags: {} })),
      ...expandRecord(record('blob_deleted', { digest: D1, origin: GC })),
      ...expandRecord(record('blob_corrupt', { digest: D1 })),
      ...expandRecord(record('blob_missing', { digest: D1 })),
    ];
    assert.deepEqual(
      events.map((e) => e.action),
      ['repository.created', 'tag.moved', 'pulls.counted', 'blob.collected', 'blob.corrupt', 'blob.missing'],
    );
    for (const event of events) assert.equal(formatEvent('distribution', event, OPTIONS), null, event.action);
  });

  it('leaves url and host out when the registry has no base URL', () => {
    const [event] = distribution(expandRecord(manifestPut({ tags: ['v1'], previous: [''] }))[0]!, { ...OPTIONS, baseUrl: undefined });
    assert.equal((event?.target as Record<string, unknown>).url, undefined);
    assert.equal((event?.request as Record<string, unknown>).host, undefined);
  });
});

describe('CloudEvents format', () => {
  it('is CloudEvents 1.0 structured mode with the event as data', () => {
    const rec = manifestPut({ tags: ['v1.2.3', 'latest'], previous: ['', ''] });
    const event = expandRecord(rec)[0]!;
    assert.deepEqual(cloudEvent(event), {
      specversion: '1.0',
      id: rec.id,
      source: 'berth://registry.example.com',
      type: 'io.berth.manifest.pushed',
      subject: 'team/app:v1.2.3',
      time: TIME,
      datacontenttype: 'application/json',
      data: {
        action: 'manifest.pushed',
        repository: 'team/app',
        target: { digest: D1, mediaType: IMAGE, size: 1234, tags: ['v1.2.3', 'latest'] },
        actor: { name: 'ci-bot', kind: 'robot' },
        request: { id: 'req-1', address: '10.0.0.7', userAgent: 'docker/27.0' },
      },
    });
  });

  it('names its subject <repo>:<tag>, <repo>@<digest>, <repo>, or the digest for events of no repository', () => {
    const subject = (e: RegistryEvent) => cloudEvent(e).subject;
    const moved = expandRecord(manifestPut({ tags: ['latest'], previous: [D2], repositoryCreated: true }));
    assert.deepEqual(moved.map(subject), ['team/app', 'team/app:latest', 'team/app:latest']);
    assert.equal(subject(expandRecord(manifestPut())[0]!), `team/app@${D1}`);
    assert.equal(subject(expandRecord(record('manifest_deleted', { repository: 'team/app', digest: D1, tags: ['x'] }))[0]!), `team/app@${D1}`);
    assert.equal(subject(expandRecord(record('blob_deleted', { digest: D3 }))[0]!), D3);
  });

  it('delivers every action, with type io.berth.<action> and system details for jobs', () => {
    const [deleted] = expandRecord(record('manifest_deleted', { repository: 'r', digest: D1, tags: ['a'], origin: RETENTION }));
    const body = cloudEvent(deleted!);
    assert.equal(body.type, 'io.berth.manifest.deleted');
    assert.deepEqual((body.data as Record<string, unknown>).system, { policy: 'ci-builds', reason: 'keep_last' });
    for (const e of [
      ...expandRecord(record('pulls', { repository: 'r', from: 0, to: 1, count: 1, tags: {} })),
      ...expandRecord(record('blob_missing', { digest: D1 })),
    ]) {
      assert.equal(cloudEvent(e).type, `io.berth.${e.action}`);
    }
  });
});

describe('format options from the configuration', () => {
  it('uses http.publicUrl for links and the source', () => {
    const config = parseConfig({ http: { publicUrl: 'https://registry.example.com:8443/' } });
    const options = formatOptionsFor(config, 'inst-9');
    assert.equal(options.baseUrl, 'https://registry.example.com:8443');
    assert.equal(options.source, 'berth://registry.example.com:8443');
    assert.deepEqual(options.instance, { addr: `${hostname()}:5000`, instanceID: 'inst-9' });
  });

  it('takes events.source when given', () => {
    assert.equal(formatOptionsFor(parseConfig({ events: { source: 'urn:berth:prod' } }), 'i').source, 'urn:berth:prod');
  });

  it('falls back to the listener address, and to plain `berth` as the source', () => {
    assert.equal(defaultEventSource(undefined), 'berth');
    assert.equal(registryBaseUrl(parseConfig({ http: { port: 5001 } })), `http://${hostname()}:5001`);
    assert.equal(registryBaseUrl(parseConfig({ http: { host: '127.0.0.1', port: 5001 } })), 'http://127.0.0.1:5001');
    assert.equal(registryBaseUrl(parseConfig({ http: { host: '::1', port: 5001 } })), 'http://[::1]:5001');
    assert.equal(registryBaseUrl(parseConfig({ http: { host: 'reg', port: 443, tls: { certFile: 'c', keyFile: 'k' } } })), 'https://reg:443');
  });
});
