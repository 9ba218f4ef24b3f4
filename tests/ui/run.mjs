// Drives the web UI in headless Chromium the way an ops person would, and writes what it saw
// to a JSON report the Rust test asserts on. Screenshots of every page go to OUT.
//
// env: BASE (http://127.0.0.1:port), EMAIL, PASSWORD, API_KEY (for the connection and for
// creating a customer "through the API"), OUT (directory), CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { writeFileSync } from 'node:fs';

const { BASE, EMAIL, PASSWORD, API_KEY, OUT } = process.env;
const report = { consoleErrors: [], screenshots: [] };
const api = (path, init = {}) => fetch(`${BASE}/api/integration/v1${path}`, {
  ...init,
  headers: { 'X-Api-Key': API_KEY, 'Content-Type': 'application/json', ...(init.headers || {}) },
});

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
  const nav = (name) => page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name, exact: true });
  const text = async (locator) => (await locator.textContent() || '').trim();

  // A page behind the login sends the visitor to it, and back after.
  await page.goto(`${BASE}/runs`);
  report.loginRedirect = new URL(page.url()).pathname + new URL(page.url()).search;

  // A wrong password is refused, saying so.
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForLoadState();
  report.wrongPassword = { path: new URL(page.url()).pathname, alert: await text(page.getByRole('alert')) };
  await shot('01-login-refused');

  // The right one logs in, by keyboard.
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Password').press('Enter');
  await page.waitForURL(`${BASE}/runs`);
  report.afterLogin = new URL(page.url()).pathname;
  await nav('Dashboard').click();
  await page.waitForURL(`${BASE}/`);
  report.dashboardHeading = await text(page.getByRole('heading', { level: 1 }));
  await shot('02-dashboard-empty');

  // An API-key connection, tested.
  await nav('Connections').click();
  await page.getByLabel('Name', { exact: true }).fill('Our other timix');
  await page.getByLabel('Type').selectOption('api_key');
  report.basicFieldsHidden = await page.getByLabel('User name').isHidden();
  await page.getByLabel('Base URL').fill(`${BASE}/api/integration/v1`);
  await page.getByLabel('Key', { exact: true }).fill(API_KEY);
  await shot('03-connections-form');
  await page.getByRole('button', { name: 'Add connection' }).click();
  await page.waitForURL(/\/connections\/con_/);
  report.connectionId = page.url().split('/').pop();
  await page.getByRole('button', { name: 'Test' }).click();
  await page.waitForLoadState();
  report.connectionTest = {
    notice: await text(page.getByRole('status')),
    badge: await text(page.locator('h1 .badge')),
  };
  await shot('04-connection');

  // The flow "new customer → create project named after it", built in the builder.
  await nav('Flows').click();
  await shot('05-flows-empty');
  await page.getByRole('link', { name: 'New flow' }).click();
  await page.getByLabel('Name', { exact: true }).fill('New customer → project');
  await page.getByLabel('Trigger', { exact: true }).selectOption({ label: 'New Customer' });
  await page.getByLabel('Action', { exact: true }).selectOption('create_project');
  await page.waitForSelector('[name="steps[0].input.name"]');
  report.builderKeptName = await page.getByLabel('Name', { exact: true }).first().inputValue();
  report.stepKey = await page.getByLabel('Step key', { exact: true }).inputValue();
  report.builderFields = await page.locator('.step .inputs label').allTextContents();
  // The customer picker starts on the trigger's customer, the one source of a customer here.
  const projectName = page.locator('[name="steps[0].input.name"]');
  // First a template that does not parse: the error must land on this field.
  await projectName.fill('Project for {{trigger.name');
  await page.getByRole('button', { name: 'Create flow' }).click();
  await page.waitForSelector('#s0-name-err');
  report.fieldError = {
    invalid: await page.locator('[name="steps[0].input.name"]').getAttribute('aria-invalid'),
    message: await text(page.locator('#s0-name-err')),
    customerKept: await page.locator('[name="steps[0].input.customerId"]').inputValue(),
  };
  await shot('06-flow-builder-error');
  await page.locator('[name="steps[0].input.name"]').fill('Project for ');
  await page.locator('.step:not(.trigger) [data-insert="trigger.name"]').click();
  report.projectTemplate = await page.locator('[name="steps[0].input.name"]').inputValue();
  await shot('07-flow-builder');
  await page.getByRole('button', { name: 'Create flow' }).click();
  await page.waitForURL(/\/flows\/flw_/);
  report.flowId = page.url().split('/').pop();
  report.flowNotice = await text(page.getByRole('status'));
  await shot('08-flow-saved');

  // Test with the sample: its customer does not exist here, so the run fails, saying why.
  await page.getByRole('button', { name: 'Test with sample' }).click();
  await page.waitForURL(/\/runs\/run_/);
  report.sampleRunNotice = await text(page.getByRole('status'));
  for (let i = 0; i < 40; i++) {
    const badge = await text(page.locator('h1 .badge'));
    if (badge !== 'queued' && badge !== 'running') break;
    await page.waitForTimeout(250);
    await page.reload();
  }
  report.sampleRun = {
    status: await text(page.locator('h1 .badge')),
    stepError: await text(page.locator('.step-result .alert').first()),
  };
  await shot('08b-sample-run-failed');
  await page.getByRole('button', { name: 'Replay', exact: true }).click();
  await page.waitForURL(/\/runs\/run_/);
  report.replayNotice = await text(page.getByRole('status'));

  // A customer created through the API starts the flow.
  const created = await api('/customers', { method: 'POST', body: JSON.stringify({ name: 'Globex' }) });
  report.customerStatus = created.status;

  // The run, with its steps, in the UI.
  let runLink = null;
  for (let i = 0; i < 60 && !runLink; i++) {
    await page.goto(`${BASE}/runs?flowId=${report.flowId}&status=succeeded`);
    const links = page.locator('a[href^="/runs/run_"]');
    if (await links.count() > 0) runLink = links.first();
    else await page.waitForTimeout(500);
  }
  await shot('09-runs');
  if (runLink) {
    await runLink.click();
    await page.waitForURL(/\/runs\/run_/);
    report.run = {
      status: await text(page.locator('h1 .badge')),
      steps: await page.locator('.step-result h3').allTextContents(),
      stepStatus: await page.locator('.step-result .badge').allTextContents(),
      outputs: await page.locator('.step-result pre').allTextContents(),
    };
    await shot('10-run');
  }

  // An API key, shown once, with a copy button.
  await nav('API keys').click();
  await page.getByLabel('Name', { exact: true }).fill('Zapier');
  await page.getByLabel('Role').selectOption('member');
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.waitForLoadState();
  report.newKey = await page.locator('#new-key').inputValue();
  await shot('11-keys');

  // A webhook; its page; the users and apps pages.
  await nav('Webhooks').click();
  await page.getByLabel('URL', { exact: true }).fill('https://hooks.timix.invalid/timix');
  await page.getByLabel('customer.created').check();
  await page.getByLabel('customer.updated').check();
  await page.getByRole('button', { name: 'Add webhook' }).click();
  await page.waitForLoadState();
  report.webhookSecret = await page.locator('#new-secret').inputValue();
  await shot('12-webhooks');
  await page.getByRole('link', { name: 'Open the webhook' }).click();
  await page.waitForURL(/\/webhooks\/whk_/);
  await page.getByRole('button', { name: 'Send a test event' }).click();
  await page.waitForLoadState();
  report.webhookTestNotice = await text(page.getByRole('status'));
  for (let i = 0; i < 60 && await page.locator('.delivery tbody tr').count() === 0; i++) {
    await page.waitForTimeout(250);
    await page.reload();
  }
  report.deliveryAttempts = await page.locator('.delivery tbody tr').count();
  report.deliveryError = await text(page.locator('.delivery td.error-text').first());
  await page.getByRole('button', { name: /^Retry now: the / }).first().click();
  await page.waitForLoadState();
  report.retryNotice = await text(page.getByRole('status'));
  await page.getByRole('button', { name: 'Rotate secret' }).click();
  await page.waitForLoadState();
  report.rotatedSecret = await page.locator('#rot-secret').inputValue();
  await shot('13-webhook');
  await nav('Users').click();
  await shot('14-users');
  await nav('Apps').click();
  await shot('15-apps');
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download timix-zapier.zip' }).click();
  report.download = (await download).suggestedFilename();
  await nav('Dashboard').click();
  await page.waitForURL(`${BASE}/`);
  await shot('16-dashboard');

  // A tablet-sized window still shows everything.
  await page.setViewportSize({ width: 768, height: 1024 });
  await page.goto(`${BASE}/flows/${report.flowId}`);
  await shot('17-flow-tablet');

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/\/login/);
  report.afterLogout = { path: new URL(page.url()).pathname, notice: await text(page.getByRole('status')) };
  await page.goto(`${BASE}/flows`);
  report.flowsAfterLogout = new URL(page.url()).pathname;
} catch (error) {
  report.failure = String(error && error.stack || error);
} finally {
  await browser.close();
  writeFileSync(`${OUT}/report.json`, JSON.stringify(report, null, 2));
}
