// The event recipes (recipes/*.ts) as their users run them: a child process on 127.0.0.1, fed
// CloudEvents signed the way Berth signs them (written here from the wire format, not with the
// recipes' own code, so a shared mistake cannot pass).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** dist/recipes/, from dist/test/helpers/recipes.js. */
const RECIPES = fileURLToPath(new URL('../../recipes/', import.meta.url));
/** The stand-in scanner, compiled beside the tests. */
export const FAKE_SCANNER = fileURLToPath(new URL('../fixtures/fake-scanner.js', import.meta.url));
const WAIT_MS = 60_000;

export type LogEntry = Record<string, unknown> & { msg?: string };

export interface RecipeProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly entries: LogEntry[];
  /** Resolves with the first log entry (past or future) that `match` accepts. */
  waitForLog(match: (entry: LogEntry) => boolean, what: string, timeoutMs?: number): Promise<LogEntry>;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `node dist/recipes/<script>.js <args>` on port 0; resolves once it logs the port it got. */
export async function startRecipe(script: 'scan-hook' | 'deploy-hook', args: string[], env: Record<string, string> = {}): Promise<RecipeProcess> {
  const child = spawn(process.execPath, [`${RECIPES}${script}.js`, '--port', '0', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const entries: LogEntry[] = [];
  const raw: string[] = [];
  const waiters = new Set<(entry: LogEntry) => void>();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => raw.push(line));
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    raw.push(line);
    let entry: LogEntry;
    try {
      entry = JSON.parse(line) as LogEntry;
    } catch {
      return;
    }
    entries.push(entry);
    for (const w of waiters) w(entry);
  });
  const output = () => raw.slice(-40).join('\n');

  const waitForLog = (match: (entry: LogEntry) => boolean, what: string, timeoutMs = WAIT_MS) => {
    const found = entries.find(match);
    if (found) return Promise.resolve(found);
    return new Promise<LogEntry>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      const check = (entry: LogEntry) => {
        if (!match(entry)) return;
        done();
        resolve(entry);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${script}: no log line for ${what} within ${timeoutMs} ms\n${output()}`));
      }, timeoutMs);
      waiters.add(check);
      void exited.then(() => {
        if (!waiters.has(check)) return;
        done();
        reject(new Error(`${script} exited (${child.signalCode ?? child.exitCode}) before logging ${what}\n${output()}`));
      });
    });
  };

  const listening = await waitForLog((e) => e.msg === 'listening', 'listening', 15_000);
  return {
    url: `http://127.0.0.1:${String(listening.port)}`,
    child,
    entries,
    waitForLog,
    output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** `Berth-Signature` as the wire format defines it: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")> per secret. */
export function berthSignature(secrets: string[], body: Buffer, t = Math.floor(Date.now() / 1000)): string {
  const v1 = secrets.map((s) => `v1=${createHmac('sha256', s).update(`${t}.`).update(body).digest('hex')}`);
  return [`t=${t}`, ...v1].join(',');
}

export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: Record<string, unknown>;
}

/** A CloudEvent as Berth will send it, type io.berth.<action>. */
export function berthEvent(action: string, repository: string, target: Record<string, unknown>, id: string = randomUUID()): CloudEvent {
  const tag = typeof target.tag === 'string' ? target.tag : Array.isArray(target.tags) ? (target.tags[0] as string | undefined) : undefined;
  return {
    specversion: '1.0',
    id,
    source: 'berth',
    type: `io.berth.${action}`,
    subject: tag ? `${repository}:${tag}` : `${repository}@${String(target.digest)}`,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: { action, repository, target, actor: { name: 'ci-bot', kind: 'robot' } },
  };
}

export interface PostOptions {
  /** Secrets to sign with (one v1 each); none: no signature header. */
  secrets?: string[];
  /** A Berth-Signature value to send as it is. */
  signature?: string;
  attempt?: number;
}

/** POSTs one event the way Berth's sender does; returns the status and the JSON answer. */
export async function postEvent(
  url: string,
  event: CloudEvent,
  options: PostOptions,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const body = Buffer.from(JSON.stringify(event));
  const headers: Record<string, string> = {
    'content-type': 'application/cloudevents+json',
    'berth-event-id': event.id,
    'berth-delivery-attempt': String(options.attempt ?? 1),
  };
  const signature = options.signature ?? (options.secrets ? berthSignature(options.secrets, body) : undefined);
  if (signature !== undefined) headers['berth-signature'] = signature;
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
}
