// The web UI in a real browser (Debian's chromium, driven by playwright-core) against a real Berth with
// auth on: sign in through the token service, browse, search, open an image and an index, copy a pull
// command, delete a tag and see it gone, a user who may only pull, keyboard and labels, contrast, and a
// phone-sized screen. Screenshots of the main pages go to test-results/ui/.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { type Auth, createAuth } from '../../auth/index.js';
import { PASSWORDS, addUsers } from '../auth/fixtures.js';
import { contrast, launchBrowser, SCREENSHOTS } from '../helpers/browser.js';
import { blob, imageManifest, OCI_INDEX, randomBlob, RegistryClient, type Blob } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const XSS = '/bin/sh -c echo "<img src=x onerror=window.__xss=1>"';
const OPERATOR_RESOURCES = ['catalog', 'gc', 'retention', 'quotas', 'events', 'replication', 'stats'];

describe('web UI in chromium', () => {
  let reg: TestRegistry;
  let auth: Auth;
  let work: string;
  let browser: Browser;
  let admin: RegistryClient;

  async function token(user: keyof typeof PASSWORDS, scopes: string[]): Promise<string> {
    const query = new URLSearchParams({ service: 'berth' });
    for (const s of scopes) query.append('scope', s);
    const res = await fetch(`${reg.url}/auth/token?${query.toString()}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  async function pushImage(repo: string, tag: string, arch: string, history: Array<Record<string, unknown>>): Promise<Blob> {
    const config = blob(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, history, nonce: `${repo}:${tag}` }));
    const layers = [randomBlob(2000), randomBlob(3000)];
    for (const b of [config, ...layers]) await admin.pushBlob(repo, b);
    const manifest = imageManifest(config, layers);
    await admin.pushManifest(repo, tag, manifest);
    return manifest;
  }

  async function newPage(options: { viewport?: { width: number; height: number } } = {}): Promise<{ context: BrowserContext; page: Page }> {
    // bypassCSP lets the test's own probes run as strings; markup injected into a page would run too, so the
    // escaping is what the XSS check proves, not the policy.
    const context = await browser.newContext({ viewport: options.viewport ?? { width: 1280, height: 900 }, bypassCSP: true });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: reg.url });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/status of 40[134]/.test(msg.text())) problems.push(msg.text());
    });
    (page as Page & { problems?: string[] }).problems = problems;
    return { context, page };
  }

  function problemsOf(page: Page): string[] {
    return (page as Page & { problems?: string[] }).problems ?? [];
  }

  async function signIn(page: Page, user: keyof typeof PASSWORDS): Promise<void> {
    await page.goto(`${reg.url}/`);
    await page.locator('#who').getByRole('link', { name: 'Sign in' }).click();
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(PASSWORDS[user]);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(`Signed in as ${user}`).waitFor();
    await page.getByRole('heading', { name: 'Repositories' }).waitFor();
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-ui-'));
    await addUsers(work);
    const authConfig = {
      enabled: true,
      tokenTtlSeconds: 120,
      refreshTokenTtlSeconds: 3600,
      rules: [
        { repository: '**', users: ['alice'], allow: ['*'] },
        ...OPERATOR_RESOURCES.map((registry) => ({ registry, users: ['alice'], allow: ['*'] })),
        { repository: 'team/**', users: ['carol'], allow: ['pull'] },
      ],
    };
    auth = await createAuth(authConfig, { dataDir: work, log: { info() {}, warn() {}, error() {} } });
    reg = await startTestRegistry({
      config: { gc: { enabled: false }, immutableTags: { rules: [{ repositories: 'team/**', tags: ['release-*'] }] } },
      deps: { authorizer: auth.authorizer, plugins: async (app) => app.register(auth.tokenRoutes) },
    });
    const repos = ['team/app', 'team/multi', 'other/secret'];
    admin = new RegistryClient(reg.url, {
      authorization: `Bearer ${await token(
        'alice',
        repos.map((r) => `repository:${r}:pull,push,delete`),
      )}`,
    });

    const v1 = await pushImage('team/app', 'v1', 'amd64', [
      { created: '2026-11-01T00:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:base in /', comment: 'base layer' },
      { created: '2026-11-02T00:00:00Z', created_by: XSS },
    ]);
    await pushImage('team/app', 'v2', 'amd64', [{ created: '2026-11-03T00:00:00Z', created_by: 'RUN make' }]);
    await admin.pushManifest('team/app', 'release-1', v1);
    const empty = blob('{}');
    const sbom = blob('{"spdxVersion":"SPDX-2.3"}');
    for (const b of [empty, sbom]) await admin.pushBlob('team/app', b);
    const referrer = imageManifest(empty, [sbom], {
      artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: empty.size },
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: v1.digest, size: v1.size },
    });
    await admin.pushManifest('team/app', referrer.digest, referrer);

    const amd = await pushImage('team/multi', 'amd64', 'amd64', []);
    const arm = await pushImage('team/multi', 'arm64', 'arm64', []);
    const index = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.digest, size: amd.size, platform: { os: 'linux', architecture: 'amd64' } },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm.digest, size: arm.size, platform: { os: 'linux', architecture: 'arm64' } },
        ],
      }),
    );
    await admin.pushManifest('team/multi', 'latest', index, OCI_INDEX);
    await pushImage('other/secret', 'x', 'amd64', []);
    for (let i = 0; i < 3; i++) assert.equal((await admin.fetch('/v2/team/app/manifests/v1')).status, 200);
    await reg.app.pullCounter?.flush();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await reg?.close();
    await auth?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('refuses a wrong password with a message, then signs in and lists every repository', async () => {
    const { context, page } = await newPage();
    await page.goto(`${reg.url}/ui/#/signin`);
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong user name or password' }).waitFor();
    // The browser logs the token endpoint's 400 for the wrong password; nothing else may go wrong.
    problemsOf(page).length = 0;

    await signIn(page, 'alice');
    // The heading is drawn before the list arrives; the table appears whole, with its rows.
    await page.locator('#repositories').waitFor();
    const names = await page.locator('#repositories tbody th').allTextContents();
    assert.deepEqual(names, ['other/secret', 'team/app', 'team/multi']);
    // The operator pages are offered because alice's token carries those scopes.
    for (const label of ['Storage', 'Activity', 'Garbage collection', 'Retention', 'Replication']) {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label }).waitFor();
    }
    await page.screenshot({ path: join(SCREENSHOTS, 'repositories.png'), fullPage: true });

    await page.getByLabel('Search by name').fill('multi');
    await page.locator('#repositories tbody th', { hasText: 'team/multi' }).waitFor();
    await page.waitForFunction("document.querySelectorAll('#repositories tbody tr').length === 1");
    assert.match(page.url(), /q=multi/);
    assert.deepEqual(problemsOf(page), []);
    await context.close();
  });

  it('shows a repository: tags sorted by clicking the header, the immutable badge, pulls per day', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'alice');
    await page.getByRole('link', { name: 'team/app' }).click();
    await page.getByRole('heading', { name: 'team/app', level: 1 }).waitFor();
    const tags = () => page.locator('#tags tbody th a').allTextContents();
    await page.locator('#tags').waitFor();
    assert.deepEqual(await tags(), ['release-1', 'v1', 'v2']);
    await page.getByRole('button', { name: /^Tag/ }).click();
    await page.locator('#tags th[aria-sort="descending"]').waitFor();
    assert.deepEqual(await tags(), ['v2', 'v1', 'release-1']);
    // Sorting rebuilt the table; the keyboard user's focus is back on the header they pressed.
    assert.equal(await page.evaluate("document.activeElement?.getAttribute('data-sort')"), 'name');
    await page.locator('tr', { hasText: 'release-1' }).getByText('immutable').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Delete tag release-1' }).isDisabled(), true);
    await page.getByText('Pulls per day: 3 from').waitFor();

    await page.getByLabel('Filter tags').fill('v');
    await page.waitForFunction("document.querySelectorAll('#tags tbody tr').length === 2");
    await page.getByLabel('Filter tags').fill('');
    await page.waitForFunction("document.querySelectorAll('#tags tbody tr').length === 3");
    await page.screenshot({ path: join(SCREENSHOTS, 'repository.png'), fullPage: true });
    assert.deepEqual(problemsOf(page), []);
    await context.close();
  });

  it('opens an image: layers, history as text (never markup), referrers, and copies the pull command', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'alice');
    await page.goto(`${reg.url}/ui/#/image?name=team/app&ref=v1`);
    await page.getByRole('heading', { name: 'team/app:v1' }).waitFor();
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
    assert.equal(await page.locator('section', { hasText: 'Layers' }).locator('tbody tr').count(), 2);
    await page.getByText(XSS).waitFor();
    assert.equal(await page.evaluate('window.__xss'), undefined);
    assert.equal(await page.locator('main img').count(), 0);
    await page.getByText('application/spdx+json').waitFor();
    await page.getByText('Pulls of v1 per day: 3 from').waitFor();

    const host = new URL(reg.url).host;
    await page.getByRole('button', { name: `Copy: docker pull ${host}/team/app:v1` }).click();
    await page.getByRole('status').filter({ hasText: 'Copied' }).waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), `docker pull ${host}/team/app:v1`);
    const byDigest = await page.getByLabel('By digest (never changes)').inputValue();
    assert.match(byDigest, new RegExp(`^docker pull ${host}/team/app@sha256:[0-9a-f]{64}$`));
    await page.screenshot({ path: join(SCREENSHOTS, 'image.png'), fullPage: true });

    await page.goto(`${reg.url}/ui/#/image?name=team/multi&ref=latest`);
    await page.getByRole('heading', { name: 'Platforms' }).waitFor();
    await page.getByRole('link', { name: 'linux/arm64' }).click();
    await page.getByRole('heading', { name: /^team\/multi@sha256:/ }).waitFor();
    await page.locator('dd', { hasText: 'linux/arm64' }).waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'image-platform.png'), fullPage: true });
    assert.deepEqual(problemsOf(page), []);
    await context.close();
  });

  it('deletes a tag after confirmation and it is gone, from the page and from the registry', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'alice');
    await page.goto(`${reg.url}/ui/#/repo?name=team/app`);
    await page.locator('#tags').waitFor();
    await page.getByRole('button', { name: 'Delete tag v2' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete tag v2?' });
    await dialog.waitFor();
    // Cancel first: nothing changes.
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await admin.fetch('/v2/team/app/manifests/v2')).status, 200);

    await page.getByRole('button', { name: 'Delete tag v2' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete tag v2' }).click();
    await page.getByRole('status').filter({ hasText: 'Deleted tag v2' }).waitFor();
    await page.waitForFunction("![...document.querySelectorAll('#tags tbody th')].some((th) => th.textContent.trim() === 'v2')");
    assert.equal((await admin.fetch('/v2/team/app/manifests/v2')).status, 404);
    assert.deepEqual(problemsOf(page), []);
    await context.close();
  });

  it('a user who may only pull sees only what they may pull, and no delete buttons or operator pages', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'carol');
    await page.locator('#repositories').waitFor();
    assert.deepEqual(await page.locator('#repositories tbody th').allTextContents(), ['team/app', 'team/multi']);
    const nav = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
    assert.deepEqual(nav, ['Repositories', 'Overview']);
    await page.getByRole('link', { name: 'team/app' }).click();
    await page.locator('#tags').waitFor();
    assert.equal(await page.getByRole('button', { name: /^Delete/ }).count(), 0);
    await page.goto(`${reg.url}/ui/#/repo?name=other/secret`);
    await page.getByRole('region', { name: 'Tags' }).getByRole('alert').filter({ hasText: 'denied' }).waitFor();
    assert.equal(await page.locator('#tags').count(), 0);
    await context.close();
  });

  it('the operator pages open for an operator (overview, storage, activity, gc, retention, replication)', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'alice');
    for (const [hash, heading, shot] of [
      ['#/storage', 'Storage', 'storage'],
      ['#/activity', 'Activity', 'activity'],
      ['#/gc', 'Garbage collection', 'gc'],
      ['#/retention', 'Retention', 'retention'],
      ['#/replication', 'Replication', 'replication'],
      ['#/overview', 'Overview', 'overview'],
    ] as const) {
      await page.goto(`${reg.url}/ui/${hash}`);
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      await page.waitForLoadState('networkidle');
      assert.equal(await page.getByRole('alert').count(), 0, `${heading}: ${await page.getByRole('alert').allTextContents()}`);
      await page.screenshot({ path: join(SCREENSHOTS, `${shot}.png`), fullPage: true });
    }
    await page.goto(`${reg.url}/ui/#/storage`);
    await page.getByRole('row', { name: /team/ }).waitFor();
    await page.goto(`${reg.url}/ui/#/activity`);
    await page.getByRole('link', { name: 'team/app' }).first().waitFor();
    // Blob uploads are hidden until asked for; tag pushes link to their image.
    assert.equal(await page.getByRole('cell', { name: 'blob.pushed' }).count(), 0);
    await page.getByRole('link', { name: 'release-1' }).waitFor();
    await page.getByLabel('Show blob uploads').check();
    await page.getByRole('cell', { name: 'blob.pushed' }).first().waitFor();
    assert.deepEqual(problemsOf(page), []);
    await context.close();
  });

  it('works from the keyboard, labels every control, and keeps text contrast at 4.5:1 or more', async () => {
    const { context, page } = await newPage();
    await signIn(page, 'alice');
    await page.goto(`${reg.url}/ui/#/repo?name=team/app`);
    await page.locator('#tags').waitFor();
    const unlabelled = await page.evaluate<string[]>(`[...document.querySelectorAll('input, select, button')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
      .map((el) => el.outerHTML)`);
    assert.deepEqual(unlabelled, []);
    await page.goto(`${reg.url}/ui/#/`);
    await page.reload();
    await page.locator('#repositories').waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement?.textContent'), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate('document.activeElement?.id'), 'main');
    await page.getByLabel('Search by name').focus();
    await page.keyboard.type('app');
    await page.waitForFunction("document.querySelectorAll('#repositories tbody tr').length === 1");
    // On through the sort controls and the table's scroll region to the one repository's link.
    for (let i = 0; i < 8 && (await page.evaluate('document.activeElement?.textContent')) !== 'team/app'; i++) await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'team/app', level: 1 }).waitFor();
    await page.locator('#tags').waitFor();
    await page.locator('figure.chart-box').waitFor();

    // Each visible text element's colour against the first opaque background behind it.
    const pairs = await page.evaluate<Array<{ text: string; fg: string; bg: string; disabled: boolean }>>(`(() => {
      const bg = (el) => {
        for (let e = el; e; e = e.parentElement) {
          const c = getComputedStyle(e).backgroundColor;
          if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
        }
        return 'rgb(255, 255, 255)';
      };
      return [...document.querySelectorAll('h1, h2, p, a, th, td, label, button, dt, dd')]
        .filter((el) => el.offsetParent !== null && el.textContent.trim())
        .map((el) => ({ text: el.textContent.trim().slice(0, 30), fg: getComputedStyle(el).color, bg: bg(el), disabled: el.disabled === true }));
    })()`);
    assert.ok(pairs.length > 20, `only ${pairs.length} text elements found`);
    const low = pairs.filter((p) => !p.disabled && contrast(p.fg, p.bg) < 4.5).map((p) => `${p.text}: ${p.fg} on ${p.bg}`);
    assert.deepEqual(low, []);
    await context.close();
  });

  it('fits a phone: no sideways scrolling of the page, and the menu opens', async () => {
    const { context, page } = await newPage({ viewport: { width: 390, height: 844 } });
    await signIn(page, 'alice');
    for (const [hash, settled] of [
      ['#/', '#repositories'],
      ['#/repo?name=team/app', 'figure.chart-box'],
      ['#/image?name=team/app&ref=v1', 'text=application/spdx+json'],
    ] as const) {
      await page.goto(`${reg.url}/ui/${hash}`);
      await page.locator(settled).waitFor();
      if (hash.startsWith('#/repo')) await page.locator('#tags').waitFor();
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
      const wide =
        overflow <= 0
          ? []
          : await page.evaluate<string[]>(`[...document.querySelectorAll('main *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('.table-wrap')?.contains(el.offsetParent))
        .slice(0, 8).map((el) => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().width))`);
      assert.ok(overflow <= 0, `${hash} scrolls sideways by ${overflow}px: ${wide.join(', ')}`);
    }
    await page.screenshot({ path: join(SCREENSHOTS, 'phone-image.png'), fullPage: true });
    const nav = page.getByRole('navigation', { name: 'Main' });
    assert.equal(await nav.isVisible(), false);
    await page.getByRole('button', { name: 'Menu' }).click();
    await nav.getByRole('link', { name: 'Storage' }).click();
    await page.getByRole('heading', { name: 'Storage', level: 1 }).waitFor();
    await context.close();
  });
});
