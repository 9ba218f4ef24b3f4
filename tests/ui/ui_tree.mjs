// The builder's tree of nodes in headless Chromium: a flow with an if/else, a stop in the else,
// values set, paths (a switch) and a loop inside a path, built with the "Add" buttons (some
// with the keyboard), moved and removed without a page load; a variable typo in a branch
// flagged at its field before it is live; the flow run for two customers; the tree again
// without JavaScript; axe-core and a phone's width on the tree. Writes what it saw to
// OUT/report.json; tests/it/ui_tree.rs asserts on it.
//
// env: BASE, EMAIL, PASSWORD, API_KEY, OUT, CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const { BASE, EMAIL, PASSWORD, API_KEY, OUT } = process.env;
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const report = { consoleErrors: [], failure: null };
let page = null;
const api = async (path, init = {}) => {
  const response = await fetch(`${BASE}/api/integration/v1${path}`, {
    ...init,
    headers: { 'X-Api-Key': API_KEY, 'Content-Type': 'application/json', ...(init.headers || {}) },
  });
  const text = await response.text();
  return text ? JSON.parse(text) : null;
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') report.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => report.consoleErrors.push(String(e)));
  page.on('dialog', (d) => d.accept());
  let loads = 0;
  page.on('load', () => { loads += 1; });
  const shot = (name) => page.screenshot({ path: `${OUT}/${name}.png`, fullPage: true });
  const text = async (locator) => ((await locator.textContent()) || '').replace(/\s+/g, ' ').trim();
  const focused = () => page.evaluate(() => document.activeElement && document.activeElement.id);
  const headings = () => page.locator('#builder .node > .heading-row h2, #builder .node > .heading-row h3, #builder .node > .heading-row h4, #builder .node > .heading-row h5')
    .evaluateAll((hs) => hs.map((h) => h.textContent.replace(/\s+/g, ' ').trim()));
  // "Add logic" of a list, then one of its kinds: with the keyboard.
  const addLogic = async (list, kind) => {
    await page.locator(`#${list}-logic`).focus();
    await page.keyboard.press('Enter');
    const path = await page.locator(`#${list}-add`).getAttribute('value');
    const listPath = path === 'add_step' ? 'steps' : path.replace(/:action$/, '').replace(/^add:/, '');
    await page.locator(`button[value="add:${listPath}:${kind}"]`).focus();
    await page.keyboard.press('Enter');
  };

  await page.goto(`${BASE}/login?next=/flows`);
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Password').press('Enter');
  await page.waitForURL(`${BASE}/flows`);

  await page.goto(`${BASE}/flows/new`);
  loads = 0;
  await page.locator('#f-name').fill('Corp tree');
  // 1. A project for the customer (the picker starts on the trigger's customer).
  await page.locator('[name="steps[0].action"]').selectOption('create_project');
  await page.waitForSelector('[name="steps[0].pick.customerId"]');
  await page.locator('#s0 [data-insert="trigger.name"]').first().click();

  // 2. If the name contains "Corp", with the keyboard: the focus goes to the new condition.
  await addLogic('steps', 'if');
  await page.waitForSelector('#s1-cond-left');
  report.focusAfterIf = await focused();
  await page.locator('#s1 > .inputs > .data-panel > summary').click();
  await page.locator('#s1 > .inputs [data-insert="trigger.name"]').first().click();
  await page.locator('#s1-cond-op').selectOption('contains');
  await page.locator('#s1-cond-right').fill('Corp');
  // Then: a kick-off task in the project.
  await page.locator('#s1-then-add').click();
  await page.waitForSelector('#s1-then-0-action');
  report.focusAfterThenStep = await focused();
  await page.locator('#s1-then-0-action').selectOption('create_task');
  await page.waitForSelector('[name="steps[1].then[0].pick.projectId"]');
  await page.locator('[name="steps[1].then[0].input.name"]').fill('Kick-off');
  // Else: stop, with a message that has a typo.
  await addLogic('s1-else', 'stop');
  await page.waitForSelector('#s1-else-0-status');
  await page.locator('#s1-else-0-message').fill('Not a Corp: {{trigger.nme}}');

  // 3. Paths: one for Umbrella, looping over two plans, each a task.
  await addLogic('steps', 'switch');
  await page.waitForSelector('#s2-c0-name');
  await page.locator('#s2-c0-name').fill('Umbrella');
  await page.locator('#s2-c0-cond-left').fill('{{trigger.name}}');
  await page.locator('#s2-c0-cond-op').selectOption('startsWith');
  await page.locator('#s2-c0-cond-right').fill('Umbrella');
  await addLogic('s2-cases-0-steps', 'forEach');
  await page.waitForSelector('#s2-cases-0-steps-0-items');
  await page.locator('#s2-cases-0-steps-0-items').fill('["Plan A", "Plan B"]');
  await page.locator('#s2-cases-0-steps-0-items').press('Tab');
  await page.locator('#s2-cases-0-steps-0-steps-add').click();
  await page.waitForSelector('#s2-cases-0-steps-0-steps-0-action');
  await page.locator('#s2-cases-0-steps-0-steps-0-action').selectOption('create_task');
  // Two projects are in the data here (step 1's, and step 2.1's task's): the picker asks.
  const innerProject = page.locator('[name="steps[2].cases[0].steps[0].steps[0].pick.projectId"]');
  await innerProject.selectOption('{{steps.project.id}}');
  await page.locator('[name="steps[2].cases[0].steps[0].steps[0].input.name"]').click();
  await page.locator('#s2-cases-0-steps-0-steps-0 [data-insert="item"]').first().click();

  // 4. Values set, then moved above the paths with the keyboard; a delay added and removed.
  await addLogic('steps', 'set');
  await page.waitForSelector('#s3-v0-name');
  await page.locator('#s3-v0-name').fill('greeting');
  await page.locator('#s3-v0-value').fill('Hello {{trigger.name}}');
  await page.locator('#s3-up').focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('#s2-v0-name');
  report.focusAfterMove = await focused();
  await addLogic('steps', 'delay');
  await page.waitForSelector('#s4-wait');
  report.delayHeading = await text(page.locator('#s4-h'));
  await page.getByRole('button', { name: 'Remove step 5', exact: true }).click();
  await page.waitForFunction(() => !document.getElementById('s4'));
  report.focusAfterRemove = await focused();
  report.headingsBuilt = await headings();
  report.loadsWhileBuilding = loads;
  await shot('t1-tree');

  // Created: the typo in the else branch is flagged at its field, nothing is live.
  await page.getByRole('button', { name: 'Create flow' }).click();
  await page.waitForURL(/\/flows\/flw_/);
  report.flowId = page.url().split('/').pop();
  await page.waitForSelector('#s1-else-0-message-warn');
  report.typo = await text(page.locator('#s1-else-0-message-warn'));
  report.afterCreate = (await api(`/flows/${report.flowId}`));
  // Fixed, saved: published (and enabled, as it was never live).
  await page.locator('#s1-else-0-message').fill('Not a Corp');
  await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Save flow' }).click()]);
  await page.getByRole('button', { name: 'Enable' }).click();
  await page.waitForURL(/\/flows\/flw_/);
  report.saved = await api(`/flows/${report.flowId}`);
  report.headingsReopened = await headings();
  await page.locator('#s1').screenshot({ path: `${OUT}/tree-if-else.png` });
  await page.locator('#s3').screenshot({ path: `${OUT}/tree-paths-loop.png` });

  // Run for two customers.
  for (const name of ['Umbrella Corp', 'Hooli']) {
    await api('/customers', { method: 'POST', body: JSON.stringify({ name }) });
  }
  report.runs = [];
  for (let i = 0; i < 80; i++) {
    const runs = await api(`/runs?flowId=${report.flowId}`);
    report.runs = (runs.items || []).map((r) => r.status);
    if (report.runs.length === 2 && report.runs.every((s) => !['queued', 'running'].includes(s))) break;
    await page.waitForTimeout(250);
  }
  report.projects = {};
  for (const project of (await api('/projects?limit=50')).items) {
    const tasks = await api(`/tasks?projectId=${project.id}&limit=50`);
    report.projects[project.name] = tasks.items.map((t) => t.name).sort();
  }

  // axe-core on the tree; a phone's width without sideways scrolling.
  await page.evaluate(AXE);
  report.axe = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] }))
    .violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`));
  await page.setViewportSize({ width: 390, height: 844 });
  report.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await shot('t2-tree-phone');

  // Without JavaScript: "Add logic" is a disclosure and its buttons re-render the form.
  const plain = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
  const noJs = await plain.newPage();
  await noJs.goto(`${BASE}/login?next=/flows/${report.flowId}`);
  await noJs.getByLabel('E-mail').fill(EMAIL);
  await noJs.getByLabel('Password').fill(PASSWORD);
  await noJs.getByLabel('Password').press('Enter');
  await noJs.waitForURL(`${BASE}/flows/${report.flowId}`);
  await noJs.locator('#s1-then-logic').click();
  await noJs.locator('button[value="add:steps[1].then:delay"]').click();
  await noJs.waitForSelector('#s1-then-1-wait');
  report.noJsDelay = await text(noJs.locator('#s1-then-1-h'));
  await plain.close();
} catch (error) {
  report.failure = String(error && error.stack || error);
  // What the page said, for the failure's report.
  if (page) report.pageErrors = await page.locator('#form-error, .field-error').evaluateAll((es) => es.map((e) => `${e.id}: ${e.textContent.trim()}`)).catch(() => []);
} finally {
  await browser.close();
  writeFileSync(`${OUT}/report.json`, JSON.stringify(report, null, 2));
}
