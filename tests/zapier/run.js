// Checks an exported Zapier app: validates it with zapier-platform-schema, then runs its
// authentication test (and the error a refused key raises, as the app is and as an OAuth2 app)
// and every trigger, create and search with zapier-platform-core's createAppTester against a
// live timix server. Writes a JSON report (zapier-platform-core logs
// to stdout); exits 1 on any failure.
//
//   NODE_PATH=tests/zapier/node_modules node tests/zapier/run.js <app dir> <plan.json> <report.json>
//
// plan.json: {"authData": {"baseUrl", "apiKey"}, "hookTarget": "<url>",
//             "steps": [{"kind": "create"|"search", "key", "input": {...}}]}
'use strict';

const fs = require('fs');
const path = require('path');
const zapier = require('zapier-platform-core');
const schema = require('zapier-platform-schema');
// What `zapier validate` does: compile the app, replace its functions by their references.
const { prepareApp } = require('zapier-platform-core/src/tools/schema');
const { recurseCleanFuncs } = require('zapier-platform-core/src/tools/cleaner');

const [appDir, planFile, reportFile] = process.argv.slice(2);
const App = require(path.resolve(appDir, 'index.js'));
const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
const appTester = zapier.createAppTester(App);
const bundle = (extra) => ({ authData: plan.authData, inputData: {}, meta: {}, ...extra });

const main = async () => {
  const report = { schemaErrors: [], triggers: {}, hooks: {}, steps: {} };
  const definition = JSON.parse(JSON.stringify(recurseCleanFuncs(prepareApp(App))));
  const validation = schema.validateAppDefinition(definition);
  report.schemaErrors = validation.errors.map((e) => `${e.property}: ${e.message}`);

  const me = await appTester(App.authentication.test, bundle());
  report.auth = { organization: me.organization.name, type: App.authentication.type };
  report.label = App.authentication.connectionLabel({}, { inputData: me });

  // A key the server refuses (401): the error the app raises, as it is and as an OAuth2 app.
  const refused = async () => {
    try {
      await appTester(App.authentication.test, bundle({ authData: { ...plan.authData, apiKey: 'bbl_refused' } }));
      return null;
    } catch (error) {
      return error.name;
    }
  };
  report.refusedKey = { asIs: await refused() };
  const { type } = App.authentication;
  App.authentication.type = 'oauth2';
  report.refusedKey.asOAuth2 = await refused();
  App.authentication.type = type;

  for (const [key, trigger] of Object.entries(App.triggers)) {
    const list = trigger.operation.type === 'hook' ? trigger.operation.performList : trigger.operation.perform;
    const records = await appTester(list, bundle({ meta: { limit: 3, page: 0 } }));
    report.triggers[key] = { count: records.length, first: records[0] || null };
    if (trigger.operation.type === 'hook') {
      const subscribed = await appTester(trigger.operation.performSubscribe, bundle({ targetUrl: plan.hookTarget }));
      const delivered = await appTester(trigger.operation.perform, bundle({
        cleanedRequest: { id: 'evt_1', type: 'x', data: trigger.operation.sample },
      }));
      await appTester(trigger.operation.performUnsubscribe, bundle({ subscribeData: subscribed }));
      report.hooks[key] = { hookId: subscribed.id, delivered };
    }
  }

  for (const step of plan.steps) {
    const group = step.kind === 'search' ? App.searches : App.creates;
    const result = await appTester(group[step.key].operation.perform, bundle({ inputData: step.input }));
    report.steps[step.key] = result;
  }
  return report;
};

main()
  .then((report) => {
    fs.writeFileSync(reportFile, JSON.stringify(report));
  })
  .catch((error) => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(1);
  });
