// The part of the app that is the same for every manifest: it turns SPEC into the Zapier app.

const API_BASE = '/api/integration/v1';

const apiUrl = (bundle, path) =>
  `${String(bundle.authData.baseUrl || '').replace(/\/+$/, '')}${API_BASE}${path}`;

// A server URL and an API key, tested against `/me`.
const authentication = {
  type: 'custom',
  fields: [
    { key: 'baseUrl', label: 'Server URL', required: true, type: 'string',
      helpText: 'Where your timix server is reached, for example `https://timix.example.com`.' },
    { key: 'apiKey', label: 'API key', required: true, type: 'password',
      helpText: 'A key created in timix (Settings → API keys); it starts with `bbl_`.' },
  ],
  test: async (z, bundle) => (await z.request({ url: apiUrl(bundle, '/me') })).data,
  connectionLabel: (z, bundle) =>
    `${bundle.inputData.organization.name} (${bundle.inputData.user.email})`,
};

const onServer = (bundle, url) => {
  const base = String(bundle.authData.baseUrl || '').replace(/\/+$/, '');
  return Boolean(base) && String(url).startsWith(`${base}${API_BASE}`);
};

// The API key goes to the timix server only, never to another host an HTTP step names.
const addApiKey = (request, z, bundle) => {
  if (onServer(bundle, request.url)) {
    request.headers = request.headers || {};
    request.headers['X-Api-Key'] = bundle.authData.apiKey;
  }
  return request;
};

// The API's error envelope becomes a Zapier error with its message and code.
const explainErrors = (response, z, bundle) => {
  if (response.status >= 400 && !response.skipThrowForStatus) {
    let error = {};
    try {
      error = JSON.parse(response.content || '{}').error || {};
    } catch (e) {
      error = {};
    }
    const details = (error.details || []).map((d) => `${d.field}: ${d.message}`).join('; ');
    const message = `${error.message || response.content || 'request failed'}${details ? ` (${details})` : ''}`;
    if (response.status === 401 && onServer(bundle, response.request && response.request.url)) {
      // Only an OAuth2 token can be refreshed; a refused API key needs the user to reconnect.
      if (authentication.type === 'oauth2') throw new z.errors.RefreshAuthError(message);
      throw new z.errors.ExpiredAuthError(message);
    }
    throw new z.errors.Error(message, error.code || `http_${response.status}`, response.status);
  }
  return response;
};

// `{{input.x}}` templates, the only kind request specs hold. A template that is exactly one
// placeholder keeps the value's type; in paths each value is one encoded segment.
const PLACEHOLDER = /\{\{\s*input\.([A-Za-z0-9_]+)\s*\}\}/g;
const render = (template, input, encode) => {
  const sole = /^\{\{\s*input\.([A-Za-z0-9_]+)\s*\}\}$/.exec(template);
  if (sole && !encode) return input[sole[1]];
  return template.replace(PLACEHOLDER, (_, key) => {
    const value = input[key] === undefined || input[key] === null ? '' : String(input[key]);
    return encode ? encodeURIComponent(value) : value;
  });
};

const present = (value) => value !== undefined && value !== null && value !== '';

const mapped = (mapping, input) => {
  if (mapping === null || mapping === undefined) return undefined;
  if (typeof mapping === 'string') {
    return mapping === 'input' ? input : input[mapping.replace(/^input\./, '')];
  }
  const out = {};
  Object.entries(mapping).forEach(([key, template]) => {
    const value = render(template, input, false);
    if (present(value)) out[key] = value;
  });
  return out;
};

const TRUE_TEXTS = ['true', 'yes', 'y', 'on', '1', 't'];
const FALSE_TEXTS = ['false', 'no', 'n', 'off', '0', 'f'];

// A value mapped from another app arrives as text ("1800", "true") where Zapier did not coerce
// it to the field's type; the API wants the type. Text that is no such value is left for the
// API to refuse with its message.
const coerce = (field, value) => {
  if (typeof value !== 'string') {
    if (field.type === 'boolean' && typeof value === 'number') return value !== 0;
    return value;
  }
  const text = value.trim();
  switch (field.type) {
    case 'integer':
      return /^[+-]?\d+$/.test(text) ? Number(text) : value;
    case 'number':
      return text !== '' && Number.isFinite(Number(text)) ? Number(text) : value;
    case 'boolean':
      if (TRUE_TEXTS.includes(text.toLowerCase())) return true;
      if (FALSE_TEXTS.includes(text.toLowerCase())) return false;
      return value;
    default:
      return value;
  }
};

// Zapier gives every field as entered: drop empty ones, read JSON fields, coerce typed ones.
const cleanInput = (inputData, fields) => {
  const input = {};
  Object.entries(inputData || {}).forEach(([key, value]) => {
    if (!present(value)) return;
    const field = fields.find((f) => f.key === key);
    if (field && field.json && typeof value === 'string') {
      try {
        input[key] = JSON.parse(value);
        return;
      } catch (e) {
        input[key] = value;
        return;
      }
    }
    input[key] = field ? coerce(field, value) : value;
  });
  return input;
};

const perform = (action) => async (z, bundle) => {
  const input = cleanInput(bundle.inputData, action.fields);
  const spec = action.request;
  const request = { method: render(spec.method, input, false).toUpperCase(), params: {}, headers: {} };
  if (spec.path) {
    const [path, query] = render(spec.path, input, true).split('?');
    request.url = apiUrl(bundle, path);
    new URLSearchParams(query || '').forEach((value, key) => { request.params[key] = value; });
  } else {
    request.url = render(spec.url, input, false);
  }
  Object.assign(request.params, mapped(spec.query, input) || {});
  Object.assign(request.headers, mapped(spec.headers, input) || {});
  let body = mapped(spec.body, input);
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    body = { ...body };
    (spec.exclude || []).forEach((key) => delete body[key]);
  }
  if (body !== undefined && request.method !== 'GET') request.body = body;
  const response = await z.request(request);
  const data = response.data;
  switch (action.select) {
    case 'first':
      return data.items && data.items.length ? [data.items[0]] : [];
    case 'items':
      return data.items || [];
    default:
      return spec.url ? { status: response.status, body: data } : data;
  }
};

// A list of this API, newest first; "updated" triggers give each version its own id.
const listRecords = (trigger) => async (z, bundle) => {
  const [path, query] = trigger.list.split('?');
  const params = Object.fromEntries(new URLSearchParams(query || ''));
  // Changes, and records entering a state (a filtered list), by when they changed.
  params.sort = trigger.updated || query ? '-updatedAt' : '-createdAt';
  params.pageSize = bundle.meta && bundle.meta.limit > 0 ? String(Math.min(bundle.meta.limit, 200)) : '100';
  const response = await z.request({ url: apiUrl(bundle, path), params });
  return (response.data.items || []).map((record) => versioned(trigger, record));
};

const versioned = (trigger, record) =>
  (trigger.updated ? { ...record, id: `${record.id}@${record.updatedAt}`, recordId: record.id } : record);

const subscribe = (trigger) => async (z, bundle) => {
  const response = await z.request({
    url: apiUrl(bundle, '/hooks'),
    method: 'POST',
    body: { targetUrl: bundle.targetUrl, event: trigger.event },
  });
  return response.data;
};

const unsubscribe = async (z, bundle) => {
  const response = await z.request({
    url: apiUrl(bundle, `/hooks/${encodeURIComponent(bundle.subscribeData.id)}`),
    method: 'DELETE',
  });
  return response.data || {};
};

// A delivery is `{id, type, data, …}`: the record is its `data`.
const delivered = (trigger) => async (z, bundle) => {
  const event = bundle.cleanedRequest || {};
  const record = event.data || event;
  return [versioned(trigger, record)];
};

const lookupTrigger = (lookup) => ({
  key: lookup.trigger,
  noun: lookup.noun,
  display: { label: `List of ${lookup.noun}`, description: `Choices for ${lookup.noun} fields.`, hidden: true },
  operation: {
    perform: async (z, bundle) => {
      const page = bundle.meta && bundle.meta.page ? bundle.meta.page + 1 : 1;
      const response = await z.request({
        url: apiUrl(bundle, lookup.list),
        params: { sort: lookup.sort, pageSize: '100', page: String(page) },
      });
      return response.data.items || [];
    },
    canPaginate: true,
    sample: { id: 'id_1', name: `A ${lookup.noun}` },
  },
});

const zapierField = (field) => {
  const out = { key: field.key, label: field.label, required: field.required };
  if (field.help) out.helpText = field.help;
  if (field.type) out.type = field.type;
  if (field.dict) out.dict = true;
  if (field.list) out.list = true;
  if (field.choices) out.choices = field.choices;
  if (field.dynamic) out.dynamic = field.dynamic;
  return out;
};

const triggers = {};
const searches = {};
const creates = {};
const searchOrCreates = {};

SPEC.lookups.forEach((lookup) => { triggers[lookup.trigger] = lookupTrigger(lookup); });

SPEC.triggers.forEach((trigger) => {
  triggers[trigger.key] = {
    key: trigger.key,
    noun: trigger.noun,
    display: { label: trigger.label, description: trigger.description },
    operation: { type: 'polling', perform: listRecords(trigger), sample: trigger.sample },
  };
  const hook = `${trigger.key}_instant`;
  triggers[hook] = {
    key: hook,
    noun: trigger.noun,
    display: { label: `${trigger.label} (Instant)`, description: `${trigger.description} Instant: timix calls Zapier.` },
    operation: {
      type: 'hook',
      performSubscribe: subscribe(trigger),
      performUnsubscribe: unsubscribe,
      perform: delivered(trigger),
      performList: listRecords(trigger),
      sample: trigger.sample,
    },
  };
});

SPEC.actions.forEach((action) => {
  const definition = {
    key: action.key,
    noun: action.noun,
    display: { label: action.label, description: action.description },
    operation: {
      inputFields: action.fields.map(zapierField),
      perform: perform(action),
      sample: action.sample,
    },
  };
  if (action.kind === 'search') searches[action.key] = definition;
  else creates[action.key] = definition;
});

SPEC.searchOrCreates.forEach((pair) => {
  searchOrCreates[pair.key] = {
    key: pair.key,
    display: { label: pair.label, description: pair.description },
    search: pair.search,
    create: pair.create,
  };
});

module.exports = {
  version: require('./package.json').version,
  platformVersion: require('zapier-platform-core').version,
  authentication,
  beforeRequest: [addApiKey],
  afterResponse: [explainErrors],
  triggers,
  searches,
  creates,
  searchOrCreates,
};
