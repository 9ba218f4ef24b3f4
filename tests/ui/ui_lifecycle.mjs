// A flow's lifecycle from the flow page, in headless Chromium: a webhook sample captured by
// listening; a draft saved, dry-run tested (what would have been sent, nothing performed) and
// published; the version history's diff and a restore; a run's tree of nodes replayed from a
// middle step; the flows list's last triggered, failure rate and "not firing"; "why didn't it
// fire?" for an event that started no run; a new webhook flow's URL before it is enabled.
// Writes what it saw to OUT/report.json; tests/it/ui_lifecycle.rs asserts on it.
//
// env: BASE (http://127.0.0.1:port), EMAIL, PASSWORD, API_KEY, OUT (directory),
// CHROMIUM (default /usr/bin/chromium), and the flows the Rust test made: HOOK_FLOW (webhook →
// create a customer), TREE_FLOW (webhook → set, if/then, set), FAILING_FLOW, EXPLAIN_FLOW
// (customer.created with a condition the customer made does not meet), EXPLAIN_EVENT.
import { chromium } from 'playwright-core';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const { BASE, EMAIL, PASSWORD, API_KEY, OUT, HOOK_FLOW, TREE_FLOW, EXPLAIN_FLOW, EXPLAIN_EVENT } = process.env;
const report = { consoleErrors: [], screenshots: [], clicks: 0, keystrokes: 0, pages: [] };
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const api = async (path, init = {}) => {
  const response = await fetch(`${BASE}/api/integration/v1${path}`, {
    ...init,
    headers: { 'X-Api-Key': API_KEY, 'Content-Type': 'application/json', ...(init.headers || {}) },
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') report.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => report.consoleErrors.push(String(e)));
  page.on('dialog', (d) => d.accept());
  const shot = async (name) => {
    await page.screenshot({ path: `${OUT}/${name}.png`, fullPage: true });
    report.screenshots.push(name);
  };
  const text = async (locator) => ((await locator.textContent()) || '').trim();
  const click = async (locator) => { report.clicks += 1; await locator.click(); };
  const status = async () => text(page.getByRole('status').first());

  await page.goto(`${BASE}/login?next=/flows`);
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Password').press('Enter');
  await page.waitForURL(`${BASE}/flows`);

  // A webhook sample, captured by listening from the flow page.
  await page.goto(`${BASE}/flows/${HOOK_FLOW}`);
  await click(page.getByRole('link', { name: 'Listen for a sample' }));
  await page.waitForURL(/\/samples$/);
  await click(page.getByRole('button', { name: 'Listen for a sample' }));
  await page.waitForURL(/\/samples$/);
  report.listenNotice = await status();
  const hookUrl = await text(page.locator('#hook-url'));
  const called = await fetch(hookUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'Initech', email: 'ops@initech.test' }),
  });
  report.sampleCall = { status: called.status, body: await called.json() };
  await click(page.getByRole('link', { name: 'Check for new samples' }));
  await page.waitForLoadState();
  report.samples = await page.locator('.sample pre').allTextContents();
  await shot('lifecycle-01-sample');
  await click(page.getByRole('button', { name: 'Stop listening' }));
  await page.waitForLoadState();

  // A draft: the live flow is changed, saved as a draft, compared, dry-run tested, published.
  await page.goto(`${BASE}/flows/${HOOK_FLOW}`);
  report.bar = await page.locator('.lifecycle .toolbar').locator('a, button').allTextContents();
  await shot('lifecycle-00-flow-bar');
  const nameField = page.locator('[name="steps[0].input.name"]');
  await nameField.fill('{{trigger.name}} Ltd');
  report.keystrokes += '{{trigger.name}} Ltd'.length;
  await click(page.getByRole('button', { name: 'Save as draft' }));
  await page.waitForURL(/\/draft$/);
  report.draft = {
    notice: await status(),
    added: await page.locator('pre.diff ins').allTextContents(),
    removed: await page.locator('pre.diff del').allTextContents(),
  };
  report.draftLive = (await api(`/flows/${HOOK_FLOW}`)).body;
  await shot('lifecycle-02-draft');
  await click(page.getByRole('button', { name: 'Test (dry run)' }));
  await page.waitForURL(/\/runs\/run_/);
  report.dryRun = {
    notice: await status(),
    badge: await text(page.locator('h1 .badge')),
    startedBy: await text(page.locator('#started-by')),
    banner: await text(page.getByRole('note')),
    // What a reader sees (a closed <details> hides its text from innerText).
    inputs: await page.locator('.step-result pre').evaluateAll((els) => els.map((e) => e.innerText)),
    runId: page.url().split('/').pop(),
  };
  await shot('lifecycle-03-dry-run');
  // Back on the flow page, the builder shows the draft; its banner has the one Publish.
  await page.goto(`${BASE}/flows/${HOOK_FLOW}`);
  report.draftOnFlowPage = {
    note: await text(page.locator('#draft-note')),
    name: await nameField.inputValue(),
    publishButtons: await page.getByRole('button', { name: /Publish/ }).allTextContents(),
  };
  await click(page.locator('.draft-banner').getByRole('button', { name: 'Publish', exact: true }));
  await page.waitForURL(`${BASE}/flows/${HOOK_FLOW}`);
  report.published = { notice: await status(), flow: (await api(`/flows/${HOOK_FLOW}`)).body };

  // The version history: a diff of version 1 against the live one, and a restore.
  await click(page.getByRole('link', { name: 'Versions' }));
  await page.waitForURL(/\/versions$/);
  report.versionRows = await page.locator('table.versions tbody tr').count();
  await click(page.getByRole('link', { name: 'Version 1', exact: true }));
  await page.waitForURL(/\/versions\/1$/);
  report.versionDiff = {
    heading: await text(page.locator('#diff-h')),
    added: await page.locator('pre.diff ins').allTextContents(),
    removed: await page.locator('pre.diff del').allTextContents(),
  };
  await shot('lifecycle-04-version-diff');
  await click(page.getByRole('button', { name: 'Restore this version' }));
  await page.waitForURL(/\/versions$/);
  report.restored = { notice: await status(), flow: (await api(`/flows/${HOOK_FLOW}`)).body };
  await shot('lifecycle-05-versions');

  // A run's tree of nodes, what started it, and a replay from a middle step.
  const hook = (await api(`/flows/${TREE_FLOW}`)).body.trigger.webhookUrl;
  const started = await fetch(`${BASE}${hook}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ n: 2 }),
  });
  const runId = (await started.json()).runId;
  const finished = async () => {
    for (let i = 0; i < 120; i++) {
      const run = (await api(`/runs/${runId}`)).body;
      if (['succeeded', 'failed'].includes(run.status)) return run;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`run ${runId} never finished`);
  };
  report.runBefore = await finished();
  await page.goto(`${BASE}/runs/${runId}`);
  report.tree = {
    top: await page.locator('ul.run-tree[aria-label="Steps of the run"] > li > section h3').allTextContents(),
    nested: await page.locator('ul.run-tree ul.run-tree > li > section h3').allTextContents(),
    startedBy: await text(page.locator('#started-by')),
  };
  await shot('lifecycle-06-run-tree');
  await click(page.getByRole('button', { name: 'Run again from here at check', exact: true }));
  await page.waitForURL(/\/runs\/run_/);
  report.replayNotice = await status();
  report.runAfter = await finished();

  // The flows list: last triggered, failure rate, "not firing".
  await page.goto(`${BASE}/flows`);
  report.flowsList = await page.locator('table.flows tbody tr').evaluateAll((rows) => rows.map((r) => ({
    name: r.querySelector('td a').textContent.trim(),
    lastTriggered: r.querySelector('.last-triggered').textContent.trim(),
    failureRate: r.querySelector('.failure-rate').textContent.trim().replace(/\s+/g, ' '),
    notFiring: !!r.querySelector('.not-firing'),
  })));
  await shot('lifecycle-07-flows');
  await page.goto(`${BASE}/runs?flowId=${HOOK_FLOW}`);
  report.runsList = (await page.locator('tbody tr td:nth-child(3)').allTextContents()).map((t) => t.trim().replace(/\s+/g, ' '));

  // Why didn't it fire? for a customer the flow's condition leaves out.
  await page.goto(`${BASE}/flows/${EXPLAIN_FLOW}`);
  await click(page.getByRole('link', { name: "Why didn't it fire?" }));
  await page.waitForURL(/\/explain$/);
  await click(page.getByRole('link', { name: `Explain Plain Ltd ${EXPLAIN_EVENT}` }));
  await page.waitForURL(/eventId=/);
  report.explain = {
    words: await text(page.locator('#explain-words')),
    compared: await page.locator('.explain tbody tr').allTextContents(),
  };
  await shot('lifecycle-08-explain');

  // Every lifecycle page: no axe-core violation, no sideways scrolling on a phone.
  await api(`/flows/${HOOK_FLOW}/draft`, { method: 'PUT', body: JSON.stringify({ name: 'Hook → customer' }) });
  const pages = [`/flows/${HOOK_FLOW}`, `/flows/${HOOK_FLOW}/draft`, `/flows/${HOOK_FLOW}/versions`,
    `/flows/${HOOK_FLOW}/versions/1`, `/flows/${HOOK_FLOW}/samples`,
    `/flows/${EXPLAIN_FLOW}/explain?eventId=${EXPLAIN_EVENT}`, `/runs/${runId}`, `/runs/${report.dryRun.runId}`, '/flows', `/runs?flowId=${HOOK_FLOW}`];
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: width > 600 ? 900 : 844 });
    for (const path of pages) {
      await page.goto(`${BASE}${path}`);
      await page.evaluate(AXE);
      const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] }))
        .violations.map((v) => ({ id: v.id, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) })));
      const sideways = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
      report.pages.push({ path, width, violations, sideways });
    }
  }
  await page.setViewportSize({ width: 1280, height: 900 });

  // A new webhook flow shows its URL before it is enabled: it is created disabled.
  try {
    await page.goto(`${BASE}/flows/new`);
    await page.getByLabel('Name', { exact: true }).fill('Inbound leads');
    await page.getByLabel('Trigger', { exact: true }).selectOption('webhook');
    await page.waitForSelector('text=Create it disabled and show the URL');
    await page.locator('[name="steps[0].action"]').selectOption('create_customer');
    await page.waitForSelector('[name="steps[0].input.name"]');
    await page.locator('[name="steps[0].input.name"]').fill('{{trigger.company}}');
    await click(page.getByRole('button', { name: 'Create it disabled and show the URL' }));
    await page.waitForURL(/\/samples$/);
    report.earlyUrl = {
      notice: await status(),
      url: await text(page.locator('#hook-url')),
      disabledNote: await text(page.locator('#disabled-note')),
    };
    // Disabled, it listens all the same: the sender's first call becomes the sample.
    await click(page.getByRole('button', { name: 'Listen for a sample' }));
    await page.waitForURL(/\/samples$/);
    const first = await fetch(report.earlyUrl.url, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ company: 'Umbrella' }),
    });
    report.earlyUrl.callStatus = first.status;
    await click(page.getByRole('link', { name: 'Check for new samples' }));
    await page.waitForLoadState();
    report.earlyUrl.samples = await page.locator('.sample pre').allTextContents();
    await shot('lifecycle-09-new-webhook-url');
  } catch (error) {
    report.earlyUrl = { error: String(error) };
  }
} catch (error) {
  report.failure = String(error && error.stack || error);
} finally {
  await browser.close();
  writeFileSync(`${OUT}/report.json`, JSON.stringify(report, null, 2));
}
