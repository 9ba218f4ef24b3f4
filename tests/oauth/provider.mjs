// A real OAuth2 / OpenID Connect provider (the certified `oidc-provider`) for the connection
// tests, with:
// - one confidential client `timix` whose redirect URI is argv[2], PKCE required;
// - an interaction that signs in `user-1` and grants what was asked at once (no forms);
// - `/api/me`: a protected resource that accepts the provider's access tokens;
// - test switches: `/test/reject-next` (the next `/api/me` answers 401), `/test/fail-refresh`
//   (every token request fails with invalid_grant), and `/test/stats`.
// Prints `issuer <url>` once listening.
import http from 'node:http';
import Provider from 'oidc-provider';

const redirect = process.argv[2];
if (!redirect) {
  console.error('usage: node provider.mjs <redirect uri>');
  process.exit(2);
}

const stats = { refreshes: 0, codes: 0, lastAccessToken: null };
let rejectNext = false;
let failRefresh = false;

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'timix',
      client_secret: 'timix-client-secret',
      redirect_uris: [redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    // Just over the minute within which timix refreshes before expiry: "expiring" after 5 s.
    ttl: { AccessToken: 65, AuthorizationCode: 60, Grant: 3600, Interaction: 600, Session: 3600, RefreshToken: 3600 },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    issueRefreshToken: async () => true,
    scopes: ['openid', 'offline_access', 'api'],
    findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
    cookies: { keys: ['timix-test-cookie-key'] },
  });
  provider.on('grant.success', (ctx) => {
    const grantType = ctx.oidc.params.grant_type;
    if (grantType === 'refresh_token') stats.refreshes += 1;
    if (grantType === 'authorization_code') stats.codes += 1;
    const body = ctx.body || {};
    if (body.access_token) stats.lastAccessToken = body.access_token;
  });
  const callback = provider.callback();

  server.on('request', async (req, res) => {
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.url.startsWith('/interaction/')) {
        const details = await provider.interactionDetails(req, res);
        const grant = new provider.Grant({ accountId: 'user-1', clientId: details.params.client_id });
        grant.addOIDCScope(details.params.scope);
        const grantId = await grant.save();
        await provider.interactionFinished(req, res, {
          login: { accountId: 'user-1' },
          consent: { grantId },
        }, { mergeWithLastSubmission: false });
        return;
      }
      if (req.url.startsWith('/api/me')) {
        const token = (req.headers.authorization || '').replace(/^Bearer /, '');
        const found = token && await provider.AccessToken.find(token);
        if (!found || rejectNext) {
          rejectNext = false;
          json(401, { error: 'invalid_token' });
          return;
        }
        json(200, { sub: found.accountId, scope: found.scope });
        return;
      }
      if (req.url === '/test/reject-next') { rejectNext = true; json(200, {}); return; }
      if (req.url === '/test/fail-refresh') { failRefresh = true; json(200, {}); return; }
      if (req.url === '/test/stats') { json(200, stats); return; }
      if (failRefresh && req.url.startsWith('/token')) {
        json(400, { error: 'invalid_grant', error_description: 'the refresh token was revoked' });
        return;
      }
      callback(req, res);
    } catch (error) {
      json(500, { error: 'server_error', error_description: String(error) });
    }
  });
  console.log(`issuer ${issuer}`);
});
