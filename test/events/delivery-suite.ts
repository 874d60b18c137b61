// Events end to end over a real registry and a real HTTP endpoint: pushes become signed webhooks,
// an endpoint that is down gets everything once it is back, refusals are dead-lettered and replay.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RegistryEvent } from '../../server/registry/events/event.js';
import type { LaneObservation } from '../../server/registry/events/lane.js';
import { verifySignature } from '../../server/registry/events/signature.js';
import { eventsStatus, replayDeadLetters } from '../../server/registry/events/operator.js';
import type { TestRegistryOptions } from '../helpers/registry.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { RegistryClient } from '../helpers/oci.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from '../helpers/webhook-receiver.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';

const SECRET = 'delivery-test-secret';

interface CloudEvent {
  id: string;
  type: string;
  subject?: string;
  data: { repository?: string; target?: { digest?: string; tags?: string[]; tag?: string } };
}

const events = (requests: ReceivedRequest[]) => requests.map((r) => r.json as CloudEvent);
const ofType = (requests: ReceivedRequest[], type: string) => events(requests).filter((e) => e.type === `io.berth.${type}`);

export function runDeliverySuite(title: string, storage: () => Promise<TestRegistryOptions>): void {
  describe(`event delivery (${title})`, () => {
    let scratch: ScratchDir;
    let receiver: WebhookReceiver;
    let registry: TestRegistry;
    let client: RegistryClient;
    const progress: { behind: number; lagSeconds: number }[] = [];
    let failures = 0;

    before(async () => {
      scratch = await makeScratchDir('events');
      await writeFile(join(scratch.path, 'secret'), `${SECRET}\n`);
      // Down from the start: every event waits for it.
      receiver = await startWebhookReceiver({ listening: false });
      registry = await startTestRegistry({
        ...(await storage()),
        deps: {
          onEventDelivery: (o: LaneObservation<RegistryEvent>) => {
            if (o.kind === 'progress') progress.push({ behind: o.behind, lagSeconds: o.lagSeconds });
            if (o.kind === 'failed') failures++;
          },
        },
        config: {
          events: {
            pollIntervalMs: 20,
            leaseSeconds: 5,
            endpoints: [
              {
                name: 'hook',
                url: `${receiver.url}/hook`,
                secretFile: join(scratch.path, 'secret'),
                actions: ['manifest.*', 'tag.*'],
                maxAttempts: 1000,
                backoff: { initialSeconds: 0.02, maxSeconds: 0.2 },
              },
            ],
          },
        },
      });
      client = new RegistryClient(registry.url);
    });
    after(async () => {
      await registry?.close();
      await receiver?.close();
      await scratch?.remove();
    });

    it('an endpoint down while images are pushed receives every event, signed, in order per repository, once it is back', async () => {
      const pushed: string[] = [(await client.pushImage('team/app', 'v0')).manifest.digest];
      // The first push's batch is under way (and stuck on the down endpoint) before the others arrive.
      await waitUntil(async () => failures > 0, 'the first batch under way');
      for (let i = 1; i < 5; i++) pushed.push((await client.pushImage('team/app', `v${i}`)).manifest.digest);
      const moved = await client.pushImage('team/app', 'v0');
      await client.pushImage('team/other', 'latest');
      // Nothing could be delivered: the endpoint refuses connections, and pushes did not wait for it.
      assert.equal(receiver.requests.length, 0);
      // The backlog gauges follow the pushes while the stuck batch is retried, not only when it ends.
      const reportedBefore = progress.length;
      await waitUntil(async () => progress.slice(reportedBefore).some((p) => p.behind >= 10 && p.lagSeconds > 0), 'the backlog reported growing mid-batch');
      assert.equal(receiver.requests.length, 0);
      await receiver.listen();
      await receiver.waitFor((r) => ofType(r, 'manifest.pushed').length >= 7 && ofType(r, 'tag.moved').length >= 1, 30_000, 'all pushes and the tag move');
      const pushes = ofType(receiver.requests, 'manifest.pushed').filter((e) => e.data.repository === 'team/app');
      assert.deepEqual(
        pushes.map((e) => e.data.target?.digest),
        [...pushed, moved.manifest.digest],
        'in push order',
      );
      const move = ofType(receiver.requests, 'tag.moved')[0] as CloudEvent;
      assert.equal(move.data.target?.tag, 'v0');
      for (const request of receiver.requests) {
        assert.ok(verifySignature(String(request.headers['berth-signature']), request.body, SECRET), 'signed with the endpoint secret');
        assert.equal(request.headers['content-type'], 'application/cloudevents+json');
        assert.equal(request.eventId, (request.json as CloudEvent).id);
      }
      // At least once, and a redelivery keeps its id: no event id arrives with two different bodies.
      const bodies = new Map<string, string>();
      for (const r of receiver.requests) {
        const seen = bodies.get(r.eventId);
        if (seen !== undefined) assert.equal(seen, r.body.toString());
        bodies.set(r.eventId, r.body.toString());
      }
    });

    it('an event the endpoint refuses is dead-lettered, the others go on, and a replay delivers it', async () => {
      receiver.answer((r) => ((r.json as CloudEvent).data.repository === 'team/refused' ? { status: 400 } : { status: 200 }));
      const refused = await client.pushImage('team/refused', 'v1');
      await client.pushImage('team/fine', 'v1');
      await receiver.waitFor((r) => ofType(r, 'manifest.pushed').some((e) => e.data.repository === 'team/fine'), 30_000, 'the push to team/fine');
      const metadata = registry.storage.metadata.events;
      await waitUntil(async () => (await metadata.countDeadLetters('hook')) === 1, 'one dead letter');
      const [letter] = await metadata.listDeadLetters('hook', undefined, 10);
      assert.equal(letter?.record.kind, 'manifest_put');
      assert.match(letter?.lastError ?? '', /400/);
      const status = await eventsStatus(metadata, ['hook'], Date.now());
      assert.equal(status.endpoints[0]?.deadLetters, 1);

      receiver.answer(() => ({ status: 200 }));
      const before = receiver.requests.length;
      assert.deepEqual(await replayDeadLetters(metadata, 'hook', ['hook'], Date.now()), { deadLetters: 1 });
      await receiver.waitFor(
        (r) => r.slice(before).some((x) => (x.json as CloudEvent).data.target?.digest === refused.manifest.digest),
        30_000,
        'the replayed event',
      );
      await waitUntil(async () => (await metadata.countDeadLetters('hook')) === 0, 'the dead letter gone after its replay');
    });
  });
}

/** Polls `check` (bounded) for state kept in the store, which sends no notification. */
async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
