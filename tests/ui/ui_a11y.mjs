// Visits every page of the web UI at a desktop (1280×900) and a phone (390×844) size, runs
// axe-core on each, measures whether the page scrolls sideways, and keeps a full-page
// screenshot of each. Data for the pages to show is made through the API first. Writes what it
// saw to OUT/report.json; the Rust test (tests/it/ui_a11y.rs) asserts on it. Also: the boxes
// that scroll (a run's long output) are reached and scrolled by keyboard, a table's cells are
// named by their column on a phone, and the current section's link is scrolled into view by
// app.js where the CSS does not do it.
//
// env: BASE (http://127.0.0.1:port), EMAIL, PASSWORD, API_KEY, OUT (directory),
// CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const { BASE, EMAIL, PASSWORD, API_KEY, OUT } = process.env;
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const SIZES = [{ width: 1280, height: 900 }, { width: 390, height: 844 }];
const report = { pages: [], consoleErrors: [], seeded: {} };
const PKCE_VERIFIER = randomBytes(32).toString('base64url');
const PKCE_CHALLENGE = createHash('sha256').update(PKCE_VERIFIER).digest('base64url');

const api = async (path, body, method = body ? 'POST' : 'GET') => {
  const response = await fetch(`${BASE}/api/integration/v1${path}`, {
    method,
    headers: { 'X-Api-Key': API_KEY, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
};

// Waits until a run of the flow has finished, and returns it.
const finishedRun = async (flowId) => {
  for (let i = 0; i < 120; i++) {
    const { items } = await api(`/runs?flowId=${flowId}`);
    const done = (items || []).find((r) => r.status === 'succeeded' || r.status === 'failed');
    if (done) return done;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`no finished run of ${flowId}`);
};

// A customer, a flow of each trigger kind (one with two versions and a draft), a succeeded, a
// failed and a dry-run test run, a run whose output is longer than its box, a connection, a
// webhook with a failed delivery, a key, a user and an OAuth client.
async function seed() {
  const s = report.seeded;
  const connection = await api('/connections', {
    name: 'This timix', type: 'api_key', baseUrl: `${BASE}/api/integration/v1`,
    credentials: { apiKey: API_KEY },
  });
  s.connection = connection.id;
  const eventFlow = await api('/flows', {
    name: 'New customer → onboarding project',
    trigger: { type: 'event', event: 'customer.created' },
    steps: [{ key: 'project', action: 'create_project',
      input: { customerId: '{{trigger.id}}', name: 'Onboarding {{trigger.name}}' } }],
  });
  s.eventFlow = eventFlow.id;
  const webhookFlow = await api('/flows', {
    name: 'Inbound lead',
    trigger: { type: 'webhook' },
    steps: [{ key: 'lead', action: 'create_customer', input: { name: '{{trigger.company}}' } }],
  });
  s.webhookFlow = webhookFlow.id;
  s.scheduleFlow = (await api('/flows', {
    name: 'Nightly summary',
    trigger: { type: 'schedule', schedule: '0 0 2 * * *' },
    steps: [{ key: 'summary', type: 'set', values: { channel: 'ops' } }],
  })).id;
  s.pollFlow = (await api('/flows', {
    name: 'Mirror customers from the other timix',
    trigger: { type: 'poll', connectionId: connection.id, source: 'new_customer', schedule: '0 0 * * * *' },
    steps: [{ key: 'copy', action: 'create_customer',
      input: { name: '{{trigger.name}}', externalId: 'mirror:{{trigger.id}}' } }],
  })).id;

  s.customer = (await api('/customers', { name: 'Globex Corporation' })).id;
  s.succeededRun = (await finishedRun(eventFlow.id)).id;
  // A second version, a draft, and a dry-run test of the event flow.
  await api(`/flows/${eventFlow.id}`, { steps: [{ key: 'project', action: 'create_project',
    input: { customerId: '{{trigger.id}}', name: 'Kick-off {{trigger.name}}' } }] }, 'PATCH');
  await api(`/flows/${eventFlow.id}/draft`, { name: eventFlow.name, trigger: eventFlow.trigger,
    steps: [{ key: 'project', action: 'create_project',
      input: { customerId: '{{trigger.id}}', name: 'Onboarding {{trigger.nme}}' } }] }, 'PUT');
  s.testRun = (await api(`/flows/${eventFlow.id}/test`, { dryRun: true })).id;
  // No `company` in the payload: the step's input cannot be rendered and the run fails.
  const inbound = new URL(webhookFlow.trigger.webhookUrl, BASE);
  await fetch(`${BASE}${inbound.pathname}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'Initech' }),
  });
  s.failedRun = (await finishedRun(webhookFlow.id)).id;
  // Forty lines of output: more than the 24rem its box shows on a desktop.
  const lines = Object.fromEntries(Array.from({ length: 40 }, (_, i) =>
    [`line${String(i + 1).padStart(2, '0')}`, `Line ${i + 1} of a long output`]));
  const longFlow = await api('/flows', {
    name: 'Long output', trigger: { type: 'webhook' },
    steps: [{ key: 'lines', type: 'set', values: lines }],
  });
  await fetch(`${BASE}${new URL(longFlow.trigger.webhookUrl, BASE).pathname}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(lines),
  });
  s.longRun = (await finishedRun(longFlow.id)).id;

  const webhook = await api('/webhooks', {
    url: 'http://127.0.0.1:9/timix-events', events: ['customer.created', 'project.created'],
    description: 'The CRM',
  });
  s.webhook = webhook.id;
  await api(`/webhooks/${webhook.id}/test`, {});
  s.key = (await api('/api-keys', { name: 'Zapier', role: 'member' })).id;
  s.user = (await api('/org-users', { email: 'sam.lee@example.com', name: 'Sam Lee', role: 'member' })).id;

  const registered = await fetch(`${BASE}/oauth/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ client_name: 'Claude', redirect_uris: ['http://127.0.0.1:9/callback'],
      token_endpoint_auth_method: 'none' }),
  });
  const client = await registered.json();
  s.oauthClient = client.client_id;
  s.authorize = '/oauth/authorize?' + new URLSearchParams({
    response_type: 'code', client_id: client.client_id, redirect_uri: 'http://127.0.0.1:9/callback',
    state: 'a11y', code_challenge: PKCE_CHALLENGE,
    code_challenge_method: 'S256', resource: `${BASE}/mcp`,
  });
}

// What sticks out past the right edge of the window, outside any box that scrolls or clips.
function overflowing() {
  const width = window.innerWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? `#${el.id}` : '') +
    (el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : '');
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (style.overflowX !== 'visible' || style.clip !== 'auto') return true;
    }
    return false;
  };
  const found = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 0.5 && !clipped(el)) {
      found.push(`${name(el)} (right edge ${Math.round(box.right)}px)`);
      if (found.length === 8) break;
    }
  }
  return found;
}

// At a phone's width: the header's height, whether the current section's link is in view,
// and the status badges of tables that are not.
function phoneLayout() {
  const width = window.innerWidth;
  const inView = (el) => { const b = el.getBoundingClientRect(); return b.left >= -0.5 && b.right <= width + 0.5; };
  const header = document.querySelector('header');
  const current = document.querySelector('nav a[aria-current="page"]');
  return {
    headerHeight: header ? Math.round(header.getBoundingClientRect().height) : 0,
    currentNavInView: current ? inView(current) : null,
    badgesOutOfView: [...document.querySelectorAll('td .badge')].filter((b) => !inView(b)).length,
  };
}

// Boxes that scroll and hold nothing focusable: each must be reachable by Tab and named.
function scrollBoxes() {
  const controls = 'a[href], button, input, select, textarea, summary';
  const focusable = `${controls}, [tabindex]`;
  return [...document.querySelectorAll('body *')].filter((el) => {
    if (el.matches(controls)) return false;
    const style = getComputedStyle(el);
    const scrolls = (/auto|scroll/.test(style.overflowY) && el.scrollHeight > el.clientHeight + 1) ||
      (/auto|scroll/.test(style.overflowX) && el.scrollWidth > el.clientWidth + 1);
    return scrolls && el.getClientRects().length > 0 && !el.querySelector(focusable);
  }).map((el) => ({
    tag: el.tagName.toLowerCase(),
    tabindex: el.getAttribute('tabindex'),
    label: el.getAttribute('aria-label'),
  }));
}

// The cells of every table as they read (a cell's ::before, then its text), and the cells whose
// data-label is missing or is not their column's header. The first column names the row and
// needs no label; a column whose header is only for screen readers (buttons) gets none.
function tableLabels() {
  const shown = [];
  const problems = [];
  let labelsShown = 0;
  for (const table of document.querySelectorAll('table')) {
    const headers = [...table.querySelectorAll('thead th')].map((th) =>
      (th.querySelector('.sr-only') ? '' : th.textContent.trim()));
    for (const row of table.querySelectorAll('tbody tr')) {
      [...row.children].forEach((td, i) => {
        const label = td.getAttribute('data-label');
        const where = `${headers.join('|')} column ${i + 1}`;
        if (label !== null && label !== headers[i]) problems.push(`${where}: data-label "${label}"`);
        if (label === null && i > 0 && headers[i]) problems.push(`${where}: no data-label`);
        const before = getComputedStyle(td, '::before').content;
        const prefix = /^".*"$/.test(before) ? JSON.parse(before) : '';
        if (prefix) labelsShown += 1;
        if (td.getClientRects().length > 0 && shown.length < 60) shown.push(prefix + td.innerText.trim());
      });
    }
  }
  return { cells: shown, labelProblems: problems.slice(0, 10), labelsShown };
}

async function check(page, name, path, expectStatus = 200, prepare = null) {
  for (const size of SIZES) {
    await page.setViewportSize(size);
    const response = await page.goto(`${BASE}${path}`);
    await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
    if (prepare) await page.evaluate(prepare);
    const seen = { name, path, width: size.width, status: response ? response.status() : 0, expectStatus };
    await page.evaluate(AXE);
    seen.violations = await page.evaluate(async () => {
      const result = await window.axe.run(document, { resultTypes: ['violations'] });
      return result.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 10),
      }));
    });
    Object.assign(seen, await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    })));
    seen.scrollBoxes = await page.evaluate(scrollBoxes);
    Object.assign(seen, await page.evaluate(tableLabels));
    if (size.width < 600) {
      seen.overflowing = await page.evaluate(overflowing);
      Object.assign(seen, await page.evaluate(phoneLayout));
    }
    seen.screenshot = `${name}-${size.width}.png`;
    await page.screenshot({ path: `${OUT}/${seen.screenshot}`, fullPage: true });
    report.pages.push(seen);
  }
}

// A run's long output on a desktop: Tab presses from the top of the page until the output box
// has the focus, and whether the arrow keys then scroll it.
async function longOutputByKeyboard(page) {
  await page.setViewportSize(SIZES[0]);
  await page.goto(`${BASE}/runs/${report.seeded.longRun}`);
  await page.evaluate(() => document.querySelectorAll('.step-result details').forEach((d) => { d.open = true; }));
  const seen = { tabs: null, scrollTop: 0 };
  for (let tabs = 1; tabs <= 60; tabs++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
    if (focused && focused.startsWith('Output of')) { seen.tabs = tabs; break; }
  }
  if (seen.tabs) {
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowDown');
    // The arrows scroll smoothly: wait for a line's worth or two seconds.
    await page.waitForFunction(() => document.activeElement.scrollTop >= 20, null, { timeout: 2000 })
      .catch(() => {});
    seen.scrollTop = await page.evaluate(() => document.activeElement.scrollTop);
  }
  return seen;
}

// At a phone's width, with the CSS that keeps the current section's link in view taken out:
// where app.js leaves the link (and, with `javaScript` false, where it is without it), whether
// the page itself moved, and the layout shift the page had.
async function sectionRowWithoutCss(loggedIn, path, javaScript) {
  const context = await browser.newContext({ viewport: SIZES[1], javaScriptEnabled: javaScript });
  await context.addCookies(await loggedIn.cookies());
  await context.route('**/assets/app.css', async (route) => {
    const css = await (await route.fetch()).text();
    await route.fulfill({ contentType: 'text/css', body: css.replace(/scroll-initial-target:[^;}]*;?/g, '') });
  });
  await context.addInitScript(() => {
    window.layoutShift = 0;
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.layoutShift += entry.value;
    }).observe({ type: 'layout-shift', buffered: true });
  });
  const page = await context.newPage();
  await page.goto(`${BASE}${path}`);
  await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
  const seen = await page.evaluate(() => {
    const link = document.querySelector('nav a[aria-current="page"]');
    const box = link.getBoundingClientRect();
    return {
      cssSupported: CSS.supports('scroll-initial-target', 'nearest'),
      cssLeft: /scroll-initial-target/.test([...document.styleSheets].map((s) =>
        [...s.cssRules].map((r) => r.cssText).join('')).join('')),
      inView: box.left >= -0.5 && box.right <= window.innerWidth + 0.5,
      rowScrollLeft: Math.round(link.closest('nav').scrollLeft),
      pageScrollY: window.scrollY,
    };
  });
  seen.layoutShift = javaScript ? await page.evaluate(() => window.layoutShift) : null;
  await context.close();
  return { path, javaScript, ...seen };
}

// An invitation link for the seeded user, as an admin gets it on the Users page.
async function invitationPath(page) {
  await page.goto(`${BASE}/users`);
  const csrf = await page.locator('input[name="_csrf"]').first().inputValue();
  const answer = await page.request.post(`${BASE}/users/${report.seeded.user}/invite`, {
    form: { _csrf: csrf }, headers: { Origin: BASE },
  });
  const link = (await answer.text()).match(/\/invite\/[A-Za-z0-9_-]+/);
  if (!link) throw new Error(`no invitation link (${answer.status()})`);
  return link[0];
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  await seed();
  const s = report.seeded;
  const context = await browser.newContext({ viewport: SIZES[0] });
  const page = await context.newPage();
  page.on('console', (m) => {
    // The not-found page is a 404 on purpose; Chromium logs that.
    if (m.type() === 'error' && !page.url().endsWith('/no-such-page')) {
      report.consoleErrors.push(`${page.url()}: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => report.consoleErrors.push(`${page.url()}: ${e}`));

  await check(page, 'login', '/login');
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Password').press('Enter');
  await page.waitForURL(`${BASE}/`);

  const pages = [
    ['dashboard', '/'],
    ['flows', '/flows'],
    ['flow-new', '/flows/new'],
    ['flow-event', `/flows/${s.eventFlow}`],
    ['flow-webhook', `/flows/${s.webhookFlow}`],
    ['flow-schedule', `/flows/${s.scheduleFlow}`],
    ['flow-poll', `/flows/${s.pollFlow}`],
    ['flow-draft', `/flows/${s.eventFlow}/draft`],
    ['flow-versions', `/flows/${s.eventFlow}/versions`],
    ['flow-version', `/flows/${s.eventFlow}/versions/1`],
    ['flow-explain', `/flows/${s.eventFlow}/explain`],
    ['flow-samples', `/flows/${s.webhookFlow}/samples`],
    ['run-test', `/runs/${s.testRun}`],
    ['runs', '/runs'],
    ['run-succeeded', `/runs/${s.succeededRun}`],
    ['run-failed', `/runs/${s.failedRun}`],
    ['connections', '/connections'],
    ['connections-connector', '/connections?connector=slack'],
    ['connection', `/connections/${s.connection}`],
    ['connection-edit', `/connections/${s.connection}/edit`],
    ['connectors', '/connectors'],
    ['connector', '/connectors/timix'],
    ['webhooks', '/webhooks'],
    ['webhook', `/webhooks/${s.webhook}`],
    ['webhook-edit', `/webhooks/${s.webhook}/edit`],
    ['keys', '/keys'],
    ['users', '/users'],
    ['user', `/users/${s.user}`],
    ['apps', '/apps'],
    ['authorize', s.authorize],
  ];
  for (const [name, path] of pages) await check(page, name, path);
  // With its step's input and output open: a long output in a box that scrolls on a desktop.
  await check(page, 'run-long', `/runs/${s.longRun}`, 200,
    () => document.querySelectorAll('details').forEach((d) => { d.open = true; }));
  report.longOutput = await longOutputByKeyboard(page);
  report.sectionRow = [];
  for (const path of ['/connected-apps', '/users']) {
    report.sectionRow.push(await sectionRowWithoutCss(context, path, true));
  }
  report.sectionRow.push(await sectionRowWithoutCss(context, '/connected-apps', false));
  // Allowed, the assistant is listed among the connected ones.
  await page.route('http://127.0.0.1:9/**', (route) => route.fulfill({ body: 'back at the client' }));
  await page.goto(`${BASE}${s.authorize}`);
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.waitForURL(/^http:\/\/127\.0\.0\.1:9\/callback/);
  const code = new URL(page.url()).searchParams.get('code');
  const token = await fetch(`${BASE}/oauth/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'authorization_code', code, client_id: s.oauthClient,
      redirect_uri: 'http://127.0.0.1:9/callback', code_verifier: PKCE_VERIFIER, resource: `${BASE}/mcp` }),
  });
  if (!token.ok) throw new Error(`token exchange: ${token.status} ${await token.text()}`);
  await check(page, 'connected-apps', '/connected-apps');
  await check(page, 'not-found', '/no-such-page', 404);

  // The invitation page is for someone not logged in.
  const invite = await invitationPath(page);
  const stranger = await (await browser.newContext({ viewport: SIZES[0] })).newPage();
  await check(stranger, 'invite', invite);
} catch (error) {
  report.failure = String((error && error.stack) || error);
} finally {
  await browser.close();
  writeFileSync(`${OUT}/report.json`, JSON.stringify(report, null, 2));
}
