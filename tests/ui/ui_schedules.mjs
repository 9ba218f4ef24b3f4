// The schedule editor in headless Chromium: each kind of schedule built in the flow builder,
// its next five fire times read from the preview (refreshed by the page's script as one edits),
// the flow saved and opened again; and the runs list and a run's page showing times in the
// organization's time zone. Writes what it saw to OUT/report.json for the Rust test to assert.
//
// env: BASE, EMAIL, PASSWORD, OUT, CHROMIUM (default /usr/bin/chromium), RUN_ID (a run of this
// organization to find on the runs list).
import { chromium } from 'playwright-core';
import { writeFileSync } from 'node:fs';

const { BASE, EMAIL, PASSWORD, OUT, RUN_ID } = process.env;
const report = { consoleErrors: [], screenshots: [], kinds: {} };

// Each kind as an ops person fills it in, and the cron it must make.
const KINDS = [
  { kind: 'minutes', every: '15', cron: '*/15 * * * *' },
  { kind: 'daily', time: '09:00', cron: '0 9 * * *' },
  { kind: 'weekdays', time: '17:30', cron: '30 17 * * 1-5' },
  { kind: 'monthly', day: '15', time: '06:45', cron: '45 6 15 * *' },
  { kind: 'cron', cronText: '0 12 * * 0', cron: '0 12 * * 0' },
];

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
  const shot = async (name) => {
    await page.screenshot({ path: `${OUT}/${name}.png`, fullPage: true });
    report.screenshots.push(name);
  };
  const text = async (locator) => (await locator.textContent() || '').trim();
  const fires = () => page.$$eval('[data-schedule-fires] time',
    (times) => times.map((t) => ({ at: t.dateTime, label: t.textContent.trim() })));
  const visibleLabels = () => page.$$eval('[data-schedule-editor] label',
    (labels) => labels.filter((l) => l.checkVisibility()).map((l) => l.textContent.trim()));

  await page.goto(`${BASE}/login`);
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Password').press('Enter');
  await page.waitForURL(`${BASE}/`);

  for (const spec of KINDS) {
    const seen = {};
    report.kinds[spec.kind] = seen;
    await page.goto(`${BASE}/flows/new`);
    await page.getByLabel('Name', { exact: true }).fill(`Schedule ${spec.kind}`);
    // Picking the trigger re-renders the builder with the editor (the page's script submits).
    await page.getByLabel('Trigger', { exact: true }).selectOption('schedule');
    await page.waitForSelector('[data-schedule-editor]');
    // One step, so that the flow can be saved.
    await page.getByLabel('Action', { exact: true }).selectOption('create_customer');
    await page.waitForSelector('[name="steps[0].input.name"]');
    await page.locator('[name="steps[0].input.name"]').fill('Tick');
    seen.initialCron = await text(page.locator('[data-schedule-cron]'));
    await page.getByLabel('How often', { exact: true }).selectOption(spec.kind);
    if (spec.every) await page.getByLabel('Every', { exact: true }).selectOption(spec.every);
    if (spec.day) await page.getByLabel('Day of the month').fill(spec.day);
    if (spec.time) await page.getByLabel(/^At \(/).fill(spec.time);
    if (spec.cronText) await page.getByLabel('Cron expression').fill(spec.cronText);
    // The preview follows the edit without a reload.
    await page.waitForFunction((cron) => {
      const shown = document.querySelector('[data-schedule-cron]');
      return shown && shown.textContent === cron
        && document.querySelectorAll('[data-schedule-fires] time').length === 5;
    }, spec.cron, { timeout: 10000 }).catch(() => {});
    seen.cron = await text(page.locator('[data-schedule-cron]'));
    seen.fires = await fires();
    seen.visibleLabels = await visibleLabels();
    seen.heading = await text(page.locator('#sch-next'));
    await shot(`schedule-${spec.kind}`);
    await page.getByRole('button', { name: 'Create flow' }).click();
    await page.waitForURL(/\/flows\/flw_/);
    seen.flowId = new URL(page.url()).pathname.split('/').pop();
    // Opened again, the editor shows the same kind and fire times (rendered by the server).
    seen.kindAfterSave = await page.getByLabel('How often', { exact: true }).inputValue();
    seen.cronAfterSave = await text(page.locator('[data-schedule-cron]'));
    seen.firesAfterSave = await fires();
  }

  // A kind change shows its fields only, and a cron expression starts from the schedule so far.
  await page.goto(`${BASE}/flows/${report.kinds.weekdays.flowId}`);
  await page.getByLabel('How often', { exact: true }).selectOption('cron');
  report.cronFromWeekdays = await page.getByLabel('Cron expression').inputValue();
  report.cronVisibleLabels = await visibleLabels();
  await page.getByLabel('Cron expression').fill('not a schedule');
  await page.waitForFunction(() => !document.querySelector('[data-schedule-error]').hidden, null,
    { timeout: 10000 }).catch(() => {});
  report.previewError = await text(page.locator('[data-schedule-error]'));
  report.previewErrorFires = (await fires()).length;

  // Times elsewhere: the runs list and the run's page.
  await page.goto(`${BASE}/runs`);
  const row = page.locator('tr', { has: page.locator(`a[href="/runs/${RUN_ID}"]`) });
  report.runsRow = await row.locator('td').allTextContents();
  await shot('schedule-runs');
  await page.goto(`${BASE}/runs/${RUN_ID}`);
  report.runCreated = await text(page.locator('xpath=//dt[normalize-space()="Created"]/following-sibling::dd[1]'));
} catch (error) {
  report.failure = String(error && error.stack || error);
} finally {
  await browser.close();
  writeFileSync(`${OUT}/report.json`, JSON.stringify(report, null, 2));
}
