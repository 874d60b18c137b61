// Deploy hook: receives Berth's io.berth.manifest.pushed and io.berth.tag.moved events and, for each
// tag matching --tags, POSTs a body rendered from a JSON template to a CI system (GitHub's
// repository_dispatch, GitLab's pipeline trigger, …). It answers Berth only after the CI call, so
// Berth's retries cover a CI outage. See docs/events-recipes.md.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  changeId,
  checkTagPattern,
  checkTemplate,
  deployFields,
  parseTemplate,
  renderTemplate,
  tagsToForward,
  type DeployFields,
  type Json,
} from './deploy-request.js';
import { integer, listen, parseOptions, readSecretFile, readTextFile, required, runMain, stopOnSignals, UsageError } from './hook-cli.js';
import { log, receiveEvent, RecentIds, sendJson } from './hook-receiver.js';

const USAGE = `usage: node dist/recipes/deploy-hook.js --secret-file <file> --url <CI URL> --template <file.json> [options]

  --secret-file <file>      the endpoint's signing secret(s), one per line
  --url <url>               where to POST, e.g. https://api.github.com/repos/OWNER/REPO/dispatches
  --template <file.json>    the body; strings may use {{repository}} {{tag}} {{digest}} {{reference}}
                            {{image}} {{mediaType}} {{previousDigest}} {{action}} {{eventId}}
                            {{eventType}} {{actor}} {{time}} {{env.NAME}}
  --tags <pattern>          forward only tags matching a glob or /regex/ (repeatable; default: every tag)
  --header "Name: value"    a static header (repeatable)
  --header-env Name=VAR     a header whose value is the environment variable VAR (repeatable): tokens
  --registry-host <host>    the registry's host:port clients pull from ({{reference}} and {{image}} need it)
  --host <address>          listen address (default 127.0.0.1)
  --port <n>                listen port (default 8081; 0 = any free port, logged)
  --timeout <seconds>       per CI call (default 10)
`;

const ACTIONS = new Set(['io.berth.manifest.pushed', 'io.berth.tag.moved']);

interface Settings {
  secrets: string[];
  url: URL;
  template: Json;
  tags: string[];
  headers: Record<string, string>;
  registryHost: string | undefined;
  host: string;
  port: number;
  timeoutMs: number;
}

function settingsFrom(argv: string[]): Settings {
  const o = parseOptions(argv, {
    'secret-file': { type: 'string' },
    url: { type: 'string' },
    template: { type: 'string' },
    tags: { type: 'string', multiple: true },
    header: { type: 'string', multiple: true },
    'header-env': { type: 'string', multiple: true },
    'registry-host': { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    timeout: { type: 'string' },
  });
  let url: URL;
  try {
    url = new URL(required(o.url, 'url'));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--url ${o.url}: not a URL`);
  }
  const templateFile = required(o.template, 'template');
  let template: Json;
  try {
    template = parseTemplate(readTextFile(templateFile, 'template'));
    checkTemplate(template, process.env, o['registry-host']);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--template ${templateFile}: ${(err as Error).message}`);
  }
  for (const pattern of o.tags ?? []) {
    try {
      checkTagPattern(pattern);
    } catch (err) {
      throw new UsageError(`--tags ${pattern}: ${(err as Error).message}`);
    }
  }
  const headers: Record<string, string> = {};
  for (const h of o.header ?? []) {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new UsageError(`--header ${JSON.stringify(h)}: expected "Name: value"`);
    headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  for (const h of o['header-env'] ?? []) {
    const eq = h.indexOf('=');
    if (eq <= 0) throw new UsageError(`--header-env ${JSON.stringify(h)}: expected Name=ENV_VAR`);
    const variable = h.slice(eq + 1);
    const value = process.env[variable];
    if (value === undefined || value === '') throw new UsageError(`--header-env ${h.slice(0, eq)}: ${variable} is not set in the environment`);
    headers[h.slice(0, eq).trim().toLowerCase()] = value;
  }
  return {
    secrets: readSecretFile(required(o['secret-file'], 'secret-file')),
    url,
    template,
    tags: o.tags ?? [],
    headers,
    registryHost: o['registry-host'],
    host: o.host ?? '127.0.0.1',
    port: integer(o.port, 'port', 8081),
    timeoutMs: integer(o.timeout, 'timeout', 10, 1) * 1000,
  };
}

type Forwarded = { ok: true; status: number } | { ok: false; retryable: boolean; error: string };

async function forward(s: Settings, fields: DeployFields): Promise<Forwarded> {
  let res: Response;
  try {
    res = await fetch(s.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'berth-deploy-hook', ...s.headers },
      body: JSON.stringify(renderTemplate(s.template, fields, process.env)),
      redirect: 'manual',
      signal: AbortSignal.timeout(s.timeoutMs),
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${s.timeoutMs / 1000} s` : (e.cause?.code ?? e.message);
    return { ok: false, retryable: true, error: `cannot reach ${s.url.origin}: ${why}` };
  }
  const text = (await res.text().catch(() => '')).slice(0, 200);
  if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
  const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
  const redirect = res.status >= 300 && res.status < 400 ? ` (a redirect to ${res.headers.get('location') ?? '?'}: fix --url)` : '';
  return { ok: false, retryable, error: `${s.url.origin}${s.url.pathname} answered ${res.status}${redirect}${text ? `: ${text}` : ''}` };
}

async function main(): Promise<void> {
  const s = settingsFrom(process.argv.slice(2));
  // `<change id> <tag>` once its CI call succeeded: a redelivery (after a partial failure), or the
  // tag.moved that comes with a manifest.pushed of the same change, skips those.
  const done = new RecentIds();

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const event = await receiveEvent(req, res, { secrets: s.secrets });
    if (!event) return;
    if (!ACTIONS.has(event.type)) {
      sendJson(res, 200, { status: 'ignored', reason: `not a push or tag move (${event.type})` });
      return;
    }
    const tags = tagsToForward(event, s.tags);
    if (tags.length === 0) {
      sendJson(res, 200, { status: 'ignored', reason: 'no tag matches --tags' });
      return;
    }
    const forwarded: string[] = [];
    const failures: Array<{ tag: string; retryable: boolean; error: string }> = [];
    for (const tag of tags) {
      const key = `${changeId(event.id)} ${tag}`;
      if (done.has(key)) continue;
      const started = Date.now();
      const outcome = await forward(s, deployFields(event, tag, s.registryHost));
      const base = { eventId: event.id, repository: event.data.repository, tag, ms: Date.now() - started };
      if (outcome.ok) {
        done.add(key);
        forwarded.push(tag);
        log({ level: 'info', msg: 'forwarded', ...base, status: outcome.status });
      } else {
        failures.push({ tag, retryable: outcome.retryable, error: outcome.error });
        log({ level: 'error', msg: 'forward failed', ...base, retryable: outcome.retryable, error: outcome.error });
      }
    }
    if (failures.length === 0) sendJson(res, 200, forwarded.length > 0 ? { status: 'forwarded', tags: forwarded } : { status: 'duplicate' });
    // 503: Berth retries later. 422: Berth dead-letters it, for an operator to fix the CI side and replay.
    else if (failures.some((f) => f.retryable)) sendJson(res, 503, { error: 'the CI endpoint failed; retry', failures, forwarded });
    else sendJson(res, 422, { error: 'the CI endpoint refused the request', failures, forwarded });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log({ level: 'error', msg: 'request failed', error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) sendJson(res, 500, { error: 'the deploy hook failed; see its log' });
      else res.destroy();
    });
  });
  await listen(server, s.host, s.port, { url: `${s.url.origin}${s.url.pathname}`, tags: s.tags });
  stopOnSignals(server, async () => ({}));
}

runMain(USAGE, main);
