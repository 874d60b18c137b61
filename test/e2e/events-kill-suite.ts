// Issue 14: `kill -9` of the process delivering to an endpoint, with a batch in flight, loses no event.
// Two real `berth serve` processes share one store; the receiver holds the holder's requests open,
// the test SIGKILLs it, and the other process must take the endpoint over once the lease runs out
// and deliver the whole batch again (at least once, same ids, same bodies, order kept per repository).
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EndpointState, EventMetadata } from '../../storage-drivers/metadata/event-types.js';
import { verifySignature } from '../../server/registry/events/signature.js';
import { startBerthProcesses, type BerthProcess } from '../helpers/berth-process.js';
import { RegistryClient } from '../helpers/oci.js';
import { makeScratchDir, type ScratchDir } from '../helpers/scratch.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'kill-9-test-secret';
const ENDPOINT = 'hook';
const LEASE_SECONDS = 3;
const REPOSITORIES = ['kill/alpha', 'kill/beta', 'kill/gamma'];
/** Distinct tags per repository; then two more pushes move a tag, 20 pushes in all. */
const TAGS_PER_REPOSITORY = 6;
/**
 * Requests answered 2xx before the receiver holds the rest open. A push is 3 records (config, layer,
 * manifest) and a batch 12: after the first push's batch of its own, a batch is 4 pushes, the first 3
 * of them in 3 repositories delivered at once. 7 answers: the first push, the next batch, and 2 of the
 * 3 requests the third batch starts with; its other events are held, so the batch in flight has
 * events delivered and events not.
 */
const BATCH_SIZE = 12;
const ANSWERED_BEFORE_HANG = 7;
const WAIT_MS = 30_000;

/** How the suite reaches one store: the `metadata` section both processes get, and a handle for the test to read it. */
export interface SharedStore {
  metadataConfig(dataDir: string): Record<string, unknown> | undefined;
  open(dataDir: string): Promise<{ events: EventMetadata; close(): Promise<void> }>;
  stop(): Promise<void>;
}

interface CloudEvent {
  id: string;
  type: string;
  data: { repository?: string; target?: { digest?: string; tag?: string; tags?: string[] } };
}

/** One event as the test expects it, independent of its id: `pushed <digest>` or `moved <tag> <digest>`. */
function keyOf(event: CloudEvent): string {
  const target = event.data.target ?? {};
  if (event.type === 'io.berth.manifest.pushed') return `pushed ${target.digest}`;
  if (event.type === 'io.berth.tag.moved') return `moved ${target.tag} ${target.digest}`;
  return event.type;
}

/** The first request of each event id, in arrival order. */
function firstDeliveries(requests: ReceivedRequest[]): ReceivedRequest[] {
  const seen = new Set<string>();
  return requests.filter((r) => !seen.has(r.eventId) && seen.add(r.eventId));
}

function holderPid(state: EndpointState | undefined): number | undefined {
  const pid = Number(state?.holder?.split(':')[1]);
  return Number.isInteger(pid) ? pid : undefined;
}

export function runKillSuite(title: string, makeStore: () => Promise<SharedStore>): void {
  describe(`kill -9 of the delivering process (${title})`, () => {
    let scratch: ScratchDir;
    let shared: SharedStore;
    let store: { events: EventMetadata; close(): Promise<void> };
    let receiver: WebhookReceiver;
    let procs: BerthProcess[] = [];

    before(async () => {
      scratch = await makeScratchDir('events-kill');
      shared = await makeStore();
      await writeFile(join(scratch.path, 'secret'), `${SECRET}\n`);
      receiver = await startWebhookReceiver();
      const metadata = shared.metadataConfig(scratch.path);
      const config = {
        log: { level: 'info', access: false },
        ...(metadata ? { metadata } : {}),
        events: {
          pollIntervalMs: 20,
          leaseSeconds: LEASE_SECONDS,
          batchSize: BATCH_SIZE,
          endpoints: [
            {
              name: ENDPOINT,
              url: `${receiver.url}/hook`,
              secretFile: join(scratch.path, 'secret'),
              actions: ['manifest.*', 'tag.*'],
              // Longer than the test: a held request stays in flight until the kill, never retried meanwhile.
              timeoutSeconds: 120,
              maxAttempts: 1000,
              backoff: { initialSeconds: 0.02, maxSeconds: 0.2 },
            },
          ],
        },
      };
      procs = await startBerthProcesses(2, { dataDir: scratch.path, config });
      store = await shared.open(scratch.path);
    });
    after(async () => {
      await Promise.all(procs.map((p) => p.stop()));
      await store?.close();
      await receiver?.close();
      await shared?.stop();
      await scratch?.remove();
    });

    it('the other process takes the endpoint over after the lease and delivers every event, signed, same bodies, in order per repository', async () => {
      const arrivals = new Map<ReceivedRequest, number>();
      const answered = new Set<string>();
      const held = new Set<string>();
      // The first event is held until every push is in: its batch was read with only the first push's
      // records, so every later batch is read from a complete log and its contents are known.
      receiver.answer((request) => {
        arrivals.set(request, Date.now());
        return { hang: true };
      });

      // A new endpoint starts at the log's head: let a process create its state before anything is pushed.
      await waitUntil(async () => (await store.events.getEndpoint(ENDPOINT))?.holder !== undefined, 'the endpoint claimed');

      const clients = procs.map((p) => new RegistryClient(p.url));
      const expected = new Map<string, string[]>(REPOSITORIES.map((repo) => [repo, []]));
      const push = async (n: number, repo: string, tag: string, moves: boolean) => {
        const { manifest } = await (clients[n % clients.length] as RegistryClient).pushImage(repo, tag);
        const keys = expected.get(repo) as string[];
        keys.push(`pushed ${manifest.digest}`);
        if (moves) keys.push(`moved ${tag} ${manifest.digest}`);
      };
      const pushes: [string, string, boolean][] = [];
      for (let i = 0; i < TAGS_PER_REPOSITORY; i++) for (const repo of REPOSITORIES) pushes.push([repo, `v${i}`, false]);
      pushes.push([REPOSITORIES[0] as string, 'v0', true], [REPOSITORIES[1] as string, 'v1', true]);
      assert.equal(pushes.length, 20);
      const [firstPush, ...laterPushes] = pushes as [[string, string, boolean], ...[string, string, boolean][]];
      await push(0, ...firstPush);
      await receiver.received(1, WAIT_MS);
      for (const [i, args] of laterPushes.entries()) await push(i + 1, ...args);
      const total = [...expected.values()].reduce((sum, keys) => sum + keys.length, 0);

      receiver.answer((request) => {
        arrivals.set(request, Date.now());
        if (arrivals.size <= ANSWERED_BEFORE_HANG) {
          answered.add(request.eventId);
          return { status: 200 };
        }
        held.add(request.eventId);
        return { hang: true };
      });
      answered.add(receiver.requests[0]?.eventId ?? '');
      receiver.release(200);
      await receiver.waitFor(() => held.size > 0, WAIT_MS, 'a request to hold open');
      const atHang = await store.events.getEndpoint(ENDPOINT);
      const victim = procs.find((p) => p.child.pid === holderPid(atHang));
      assert.ok(victim, `the endpoint's holder ${atHang?.holder} is one of the two processes (${procs.map((p) => p.child.pid).join(', ')})`);
      const survivor = procs.find((p) => p !== victim) as BerthProcess;
      // The lease the victim holds at least until: the survivor may not deliver before it ends.
      const leaseUntil = atHang?.leaseUntil ?? 0;
      assert.notEqual(atHang?.cursorSeq, (await store.events.head())?.seq, 'the log still has records after the cursor');
      await victim.kill();
      const heldAtKill = new Set(held);
      receiver.answer((request) => {
        arrivals.set(request, Date.now());
        return { status: 200 };
      });

      await receiver.waitFor((r) => firstDeliveries(r).length >= total, WAIT_MS, `all ${total} events after the kill`);
      await waitUntil(async () => {
        const state = await store.events.getEndpoint(ENDPOINT);
        return state?.cursorSeq !== undefined && state.cursorSeq === (await store.events.head())?.seq;
      }, "the endpoint's cursor at the end of the log");
      const atEnd = await store.events.getEndpoint(ENDPOINT);
      assert.equal(holderPid(atEnd), survivor.child.pid, 'the survivor holds the endpoint');

      // Every request held open when the victim died is delivered again, by the survivor, after the lease.
      for (const id of heldAtKill) {
        const redelivered = receiver.requests.filter((r) => r.eventId === id).slice(1);
        assert.ok(redelivered.length > 0, `event ${id}, in flight at the kill, delivered again`);
        const at = arrivals.get(redelivered[0] as ReceivedRequest) ?? 0;
        assert.ok(at >= leaseUntil, `event ${id} redelivered ${leaseUntil - at} ms before the victim's lease ran out`);
      }

      // The whole batch in flight goes again, the events it had delivered before the kill too.
      const again = [...answered].filter((id) => receiver.requests.filter((r) => r.eventId === id).length > 1);
      assert.ok(again.length > 0, 'events of the batch in flight that had been delivered are delivered again');

      const seenBodies = new Map<string, string>();
      for (const request of receiver.requests) {
        assert.ok(verifySignature(String(request.headers['berth-signature']), request.body, SECRET), `event ${request.eventId} signed with the secret`);
        const event = request.json as CloudEvent;
        assert.equal(request.eventId, event.id);
        const body = request.body.toString('utf8');
        const earlier = seenBodies.get(request.eventId);
        if (earlier !== undefined) assert.equal(body, earlier, `event ${request.eventId} redelivered with another body`);
        seenBodies.set(request.eventId, body);
      }

      const first = firstDeliveries(receiver.requests).map((r) => r.json as CloudEvent);
      assert.equal(first.length, total, 'no event the test did not push');
      for (const [repo, keys] of expected) {
        assert.deepEqual(first.filter((e) => e.data.repository === repo).map(keyOf), keys, `${repo}: every push and tag move, first delivered in push order`);
      }
    });
  });
}

/** Polls the store (bounded): endpoint state changes send no notification. */
async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
