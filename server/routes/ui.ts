import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { BerthConfig } from '../config.js';
import { OciError } from '../errors.js';

/** The UI's own files: the page and styles from ui/public, the scripts tsc built from ui/src. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SOURCES = [join(ROOT, 'ui', 'public'), join(ROOT, 'dist', 'ui')];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

// The page loads only its own scripts and styles and talks only to this origin (the API) and the token
// endpoint (an external one is another origin); nothing may frame it.
function contentPolicy(realm: string | undefined): string {
  const connect = realm === undefined ? "'self'" : `'self' ${new URL(realm).origin}`;
  return `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src ${connect}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`;
}

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

async function collect(dir: string, prefix: string, into: Map<string, Asset>): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    const name = `${prefix}${entry.name}`;
    if (entry.isDirectory()) await collect(path, `${name}/`, into);
    else if (entry.isFile() && TYPES[extname(entry.name)] !== undefined) {
      const body = await readFile(path);
      into.set(name, { body, type: TYPES[extname(entry.name)] as string, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
    }
  }
}

/**
 * Serves the web UI under /ui/. The files are read once at start-up into a fixed table (a few hundred
 * KiB), so a request can only name a file in that table: there is no path to traverse.
 */
export async function uiRoutes(app: FastifyInstance, config: BerthConfig): Promise<void> {
  const csp = contentPolicy(config.auth?.realm);
  const assets = new Map<string, Asset>();
  for (const dir of SOURCES) await collect(dir, '', assets);
  if (!assets.has('index.html') || !assets.has('main.js')) {
    app.log.warn('the web UI is not built (run `npm run build`); /ui/ answers 404');
  }

  app.get('/', async (_request, reply) => reply.redirect('/ui/', 302));
  app.get('/ui', async (_request, reply) => reply.redirect('/ui/', 301));
  app.get<{ Params: { '*': string } }>('/ui/*', async (request, reply) => {
    const name = request.params['*'] === '' ? 'index.html' : request.params['*'];
    const asset = assets.get(name);
    if (!asset) throw new OciError('NOT_FOUND', `the web UI has no file ${JSON.stringify(name.slice(0, 100))}; open /ui/`);
    reply
      .header('Content-Type', asset.type)
      .header('ETag', asset.etag)
      // Revalidated on each load, so an upgrade shows at once; the ETag makes that a 304.
      .header('Cache-Control', 'no-cache')
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'no-referrer')
      .header('Content-Security-Policy', csp);
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return reply.send(asset.body);
  });
}
