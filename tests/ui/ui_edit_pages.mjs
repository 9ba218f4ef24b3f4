// Edits what was made before, in headless Chromium: rotates a connection's API key and tests
// it, replaces a connection in the flows that use it, changes a webhook's URL and events,
// changes a user's role, deactivates and reactivates them, and reads the key form's default
// role. Writes what it saw to a JSON report the Rust test (tests/it/ui_edit_pages.rs) asserts.
//
// env: BASE, EMAIL, PASSWORD (the owner), CONNECTION (its key is wrong), GOOD_KEY (a key that
// works), REPLACEMENT (a connection of the same type), WEBHOOK, USER_ID, USER_EMAIL,
// USER_PASSWORD, OUT (directory), CHROMIUM.
import { chromium } from 'playwright-core';
import { writeFileSync } from 'node:fs';

const { BASE, EMAIL, PASSWORD, CONNECTION, GOOD_KEY, REPLACEMENT, WEBHOOK, USER_ID, USER_EMAIL, USER_PASSWORD, OUT } = process.env;
const report = { consoleErrors: [], screenshots: [] };

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
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  const shot = async (name) => {
    await page.screenshot({ path: `${OUT}/${name}.png`, fullPage: true });
    report.screenshots.push(name);
  };
  const text = async (locator) => (await locator.textContent() || '').trim();
  const nav = (name) => page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name, exact: true });
  const logIn = async (p, email, password) => {
    await p.goto(`${BASE}/login`);
    await p.getByLabel('E-mail').fill(email);
    await p.getByLabel('Password').fill(password);
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.waitForLoadState();
  };

  await logIn(page, EMAIL, PASSWORD);

  // A connection whose key is wrong fails its test; a new key is given on its edit page, and
  // the test passes with it.
  await page.goto(`${BASE}/connections/${CONNECTION}`);
  await page.getByRole('button', { name: 'Test' }).click();
  await page.waitForLoadState();
  report.testBefore = { badge: await text(page.locator('h1 .badge')), alert: await text(page.locator('main > .alert').first()) };
  await page.getByRole('link', { name: 'Edit', exact: true }).click();
  await page.waitForURL(`${BASE}/connections/${CONNECTION}/edit`);
  report.editForm = {
    name: await page.getByLabel('Name', { exact: true }).inputValue(),
    baseUrl: await page.getByLabel('Base URL').inputValue(),
    header: await page.getByLabel('Header').inputValue(),
    keyEmpty: (await page.getByLabel('New API key').inputValue()) === '',
  };
  await page.getByLabel('Name', { exact: true }).fill('Our other timix (rotated)');
  await page.getByLabel('New API key').fill(GOOD_KEY);
  await shot('01-connection-edit');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.waitForURL(`${BASE}/connections/${CONNECTION}`);
  report.savedNotice = await text(page.getByRole('status'));
  report.savedBadge = await text(page.locator('h1 .badge'));
  await page.getByRole('button', { name: 'Test' }).click();
  await page.waitForLoadState();
  report.testAfter = { badge: await text(page.locator('h1 .badge')), notice: await text(page.getByRole('status')) };
  report.connectionHeading = await text(page.locator('h1'));

  // The connection is replaced in the two flows that use it.
  report.usedBy = await page.locator('ul.used-by li').allTextContents();
  report.replacementChoices = await page.getByLabel('Replace it in these flows with').locator('option').allTextContents();
  await page.getByLabel('Replace it in these flows with').selectOption(REPLACEMENT);
  await page.getByRole('button', { name: /^Replace in / }).click();
  await page.waitForLoadState();
  report.replaced = {
    notice: await text(page.locator('#used-by ~ .notice')),
    flows: await page.locator('ul.replaced li').allTextContents(),
    stillUsedBy: await page.locator('ul.used-by li').count(),
    dialog: dialogs.at(-1) || null,
  };
  await shot('02-connection-replaced');

  // A webhook's URL, events and state, changed on its edit page.
  await page.goto(`${BASE}/webhooks/${WEBHOOK}`);
  await page.getByRole('link', { name: 'Edit', exact: true }).click();
  await page.waitForURL(`${BASE}/webhooks/${WEBHOOK}/edit`);
  report.webhookForm = {
    url: await page.getByLabel('URL', { exact: true }).inputValue(),
    checked: await page.locator('input[name="event"]:checked').evaluateAll((inputs) => inputs.map((i) => i.value)),
    enabled: await page.getByLabel('Enabled').isChecked(),
  };
  await page.getByLabel('URL', { exact: true }).fill('https://hooks.timix.invalid/changed');
  await page.getByLabel('customer.created').uncheck();
  await page.getByLabel('project.created').check();
  await page.getByLabel('invoice.paid').check();
  await page.getByLabel('Description').fill('Billing system');
  await page.getByLabel('Enabled').uncheck();
  await shot('03-webhook-edit');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(`${BASE}/webhooks/${WEBHOOK}`);
  report.webhookPage = {
    notice: await text(page.getByRole('status')),
    heading: await text(page.locator('h1')),
    events: await page.locator('dl.facts dd').first().locator('code').allTextContents(),
    description: await text(page.locator('dl.facts dd').nth(1)),
  };
  await shot('04-webhook-saved');

  // A user's role changed, then the user deactivated: their login is refused; reactivated,
  // it works again.
  await nav('Users').click();
  await page.locator(`a[href="/users/${USER_ID}"]`).click();
  await page.waitForURL(`${BASE}/users/${USER_ID}`);
  report.userRoleBefore = await page.getByLabel('Role').inputValue();
  report.userRoleChoices = await page.getByLabel('Role').locator('option').allTextContents();
  await page.getByLabel('Role').selectOption('manager');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(`${BASE}/users/${USER_ID}`);
  report.roleNotice = await text(page.getByRole('status'));
  await page.getByRole('button', { name: 'Deactivate' }).click();
  await page.waitForURL(`${BASE}/users/${USER_ID}`);
  report.deactivated = {
    notice: await text(page.getByRole('status')),
    badge: await text(page.locator('h1 .badge')),
    dialog: dialogs.at(-1) || null,
  };
  await shot('05-user-deactivated');
  const other = await (await browser.newContext()).newPage();
  await logIn(other, USER_EMAIL, USER_PASSWORD);
  report.deactivatedLogin = { path: new URL(other.url()).pathname, alert: await text(other.getByRole('alert')) };
  await page.getByRole('button', { name: 'Reactivate' }).click();
  await page.waitForURL(`${BASE}/users/${USER_ID}`);
  report.reactivatedNotice = await text(page.getByRole('status'));
  await logIn(other, USER_EMAIL, USER_PASSWORD);
  report.reactivatedLogin = { path: new URL(other.url()).pathname, role: await text(other.locator('.who .role')) };

  // A new key starts at the lowest role, each role saying what it allows.
  await nav('API keys').click();
  report.keyRole = await page.getByLabel('Role').inputValue();
  report.keyRoleChoices = await page.getByLabel('Role').locator('option').allTextContents();
  await page.getByLabel('Name', { exact: true }).fill('Reporting script');
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.waitForLoadState();
  report.newKey = await page.locator('#new-key').inputValue();
  await shot('06-keys');
} catch (error) {
  report.failure = String(error && error.stack || error);
} finally {
  await browser.close();
  writeFileSync(`${OUT}/report.json`, JSON.stringify(report, null, 2));
}
