// A real OpenID Provider for doorman's integration tests, built on the npm
// package `oidc-provider` (panva). It listens on 127.0.0.1 only and keeps
// everything in memory; each test starts its own.
//
// ## Starting it
//
//   IDP_CONFIG='{"port":0,"clients":[...],"accounts":[...]}' node tests/idp/server.mjs
//
// When it is ready it prints exactly one line on stdout,
//
//   {"issuer":"http://127.0.0.1:PORT"}
//
// and nothing else ever goes to stdout (logs go to stderr). SIGTERM or SIGINT
// stop it at once (exit 0). It also exits by itself when its parent process
// goes away (the parent pid changes; `watch_parent`), after `max_lifetime`
// seconds, and, when `exit_with_stdin` is true, when its standard input is
// closed.
//
// ## IDP_CONFIG (JSON; every key optional)
//
//   {
//     "port": 0,                          // 0 = a free port
//     "clients": [{
//       "client_id": "doorman",
//       "client_secret": "secret",
//       "redirect_uris": ["http://127.0.0.1:8000/oidc/callback"],
//       "post_logout_redirect_uris": ["http://127.0.0.1:8000/login"],   // optional
//       "backchannel_logout_uri": "http://127.0.0.1:8000/oidc/backchannel-logout", // optional
//       "backchannel_logout_session_required": false,   // optional: put `sid` in logout tokens
//       "refresh_tokens": "offline_access", // when to issue refresh tokens: "offline_access"
//                                           // (default: only when offline_access was granted),
//                                           // "always" (every code exchange), "never"
//       "rotate_refresh_tokens": true       // true (default): every refresh returns a new
//                                           // refresh token and the old one is consumed (using
//                                           // a consumed one again revokes the whole grant);
//                                           // false: the same refresh token stays valid
//       // any other client metadata of oidc-provider is passed through as is
//     }],
//     "accounts": [{"sub": "u1", "email": "u1@example.com", "preferred_username": "alice",
//                   "name": "Alice Example", "password": "pw",
//                   "email_verified": true,            // email_verified optional, default true
//                   "groups": ["staff"]}],             // groups optional: a `groups` claim
//                                                      // (ID token and userinfo, scope openid)
//     "ttl": {"AccessToken": 600, "IdToken": 600, "RefreshToken": 86400,
//             "AuthorizationCode": 60, "Interaction": 600, "Session": 86400, "Grant": 86400},
//     "auto_consent": false,   // true: no consent page, scopes are granted right after login
//     "max_lifetime": 3600,    // seconds before it exits by itself (0 = never)
//     "exit_with_stdin": false,// true: exit when stdin reaches EOF (spawn with a piped stdin)
//     "watch_parent": true     // exit when the parent process goes away (false: for a server
//                              // started by hand from a shell that then exits)
//   }
//
// Scopes: openid (sub, groups), offline_access, email (email, email_verified),
// profile (name, preferred_username). An account's `groups` change with
// POST /test/accounts and show in the next ID token (sign-in or refresh) and
// userinfo. ID tokens are RS256 and carry the email and
// profile claims too (not only userinfo). PKCE S256 is required. Clients
// authenticate with client_secret_basic (HTTP Basic) at the token, revocation
// and introspection endpoints.
//
// Endpoints (also in ISSUER/.well-known/openid-configuration):
//   authorization  GET  ISSUER/auth
//   token          POST ISSUER/token
//   userinfo       GET  ISSUER/me             (Authorization: Bearer AT)
//   jwks           GET  ISSUER/jwks
//   revocation     POST ISSUER/token/revocation   (RFC 7009)
//   introspection  POST ISSUER/token/introspection
//   end session    GET  ISSUER/session/end    (RP-initiated logout)
//
// ## Signing in over plain HTTP (a client that keeps cookies, follows no redirects)
//
//  1. GET ISSUER/auth?response_type=code&client_id=C&redirect_uri=R
//         &scope=openid%20email%20profile%20offline_access&state=S&nonce=N
//         &code_challenge=CH&code_challenge_method=S256
//     -> 303, Location: /interaction/UID  (relative; sets cookie _interaction
//        (path /interaction/UID) and _interaction_resume (path /auth/UID))
//  2. GET ISSUER/interaction/UID -> 200 HTML: the login form
//        <form id="login-form" method="post" action="/interaction/UID/login">
//          inputs name="login" (id login) and name="password" (id password),
//          <button id="submit" type="submit">Sign in</button>
//     `login` may be the account's preferred_username, sub or email.
//  3. POST ISSUER/interaction/UID/login, form-urlencoded login=L&password=P
//     -> 303, Location: ISSUER/auth/UID             (bad credentials: 401, the
//        login form again with <p id="error">; the interaction stays usable)
//  4. GET ISSUER/auth/UID -> 303, Location: /interaction/UID2 (the consent step;
//        sets the session cookie _session)
//  5. GET ISSUER/interaction/UID2 -> 200 HTML: the consent form
//        <form id="consent-form" method="post" action="/interaction/UID2/confirm">
//          <button id="consent" type="submit">Continue</button>
//  6. POST ISSUER/interaction/UID2/confirm (empty body is fine)
//     -> 303, Location: ISSUER/auth/UID2
//  7. GET ISSUER/auth/UID2 -> 303, Location: R?code=...&state=S&iss=ISSUER
//  With "auto_consent": true, step 4 leads to GET /interaction/UID2, which
//  answers 303 ISSUER/auth/UID2 directly (no page), then step 7.
//  A second authorization in the same cookie jar (session and grant exist)
//  goes from step 1 straight to the redirect_uri.
//  Cancel: POST /interaction/UID/abort -> 303 ... -> R?error=access_denied&state=S
//
//  Locations may be relative: resolve them against the URL just requested.
//
//  offline_access: a refresh token is issued whenever the authorization request
//  (GET /auth) asked for offline_access, whatever its `prompt` says.
//  (oidc-provider itself drops offline_access unless prompt includes consent,
//  as OpenID Connect Core 11 says; the server remembers the request's PKCE
//  code_challenge and issues the refresh token anyway. The token response's
//  `scope` then lists offline_access only when prompt included consent.)
//
// Token endpoint: POST ISSUER/token, Authorization: Basic base64(C:SECRET),
//   grant_type=authorization_code&code=...&redirect_uri=R&code_verifier=V
//   -> 200 {"access_token","expires_in","id_token","refresh_token"(if issued),
//           "scope","token_type":"Bearer"}
//   grant_type=refresh_token&refresh_token=RT
//   -> 200 the same shape (a new refresh_token when rotating), or
//      400 {"error":"invalid_grant","error_description":"grant request is invalid"}
//
// RP-initiated logout: GET ISSUER/session/end?id_token_hint=IDT
//   &post_logout_redirect_uri=U&state=S -> 200 HTML with
//   <form id="op.logoutForm" method="post" action="ISSUER/session/end/confirm"> (hidden
//   input xsrf) and <button id="logout-yes" name="logout" value="yes">; POST
//   ISSUER/session/end/confirm xsrf=...&logout=yes -> 303 U?state=S, after
//   sending back-channel logout tokens to the session's clients that have a
//   backchannel_logout_uri.
//
// ## Test-control endpoints (same port; JSON answers)
//
//   GET  /test/stats            {"token_requests","refresh_requests","refresh_failures",
//                                "revocation_requests","userinfo_requests",
//                                "backchannel_logouts_sent","backchannel_logout_failures"}
//                                (token_requests counts every POST /token, refresh_requests
//                                those with grant_type=refresh_token, refresh_failures those
//                                of them answered with an error)
//   POST /test/stats/reset      zeroes the counters
//   POST /test/accounts         body: an account object (as in IDP_CONFIG); adds it or
//                               replaces the one with that sub (e.g. a changed email)
//   POST /test/accounts/SUB/delete
//                               removes the account, revokes all its grants (and so its
//                               access and refresh tokens) and ends its sessions: a later
//                               refresh_token grant answers 400 invalid_grant.
//                               {"deleted": true|false, "grants_revoked": N}
//   POST /test/backchannel-logout?sub=SUB[&client_id=C]
//                               sends a back-channel logout token for each of SUB's
//                               sessions to each client (or only C) with a
//                               backchannel_logout_uri, then ends those sessions (grants
//                               and refresh tokens stay valid). {"sent": N, "errors": [...]}
//   POST /test/rotate-keys      adds a new RSA key in front of the JWKS and signs with it
//                               from then on (old keys stay published). {"kid", "kids"}
//
// Only 127.0.0.1 is ever a network target: the server binds to it and the
// back-channel logout requests refuse any other host.

// oidc-provider prints its notices with console.info: keep stdout for the
// single ready line.
console.log = console.info = console.debug = (...args) => console.error(...args);

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const log = (...args) => console.error('[idp]', ...args);

function fail(message) {
  console.error(`idp: ${message}`);
  process.exit(2);
}

let config;
try {
  config = JSON.parse(process.env.IDP_CONFIG || '{}');
} catch (e) {
  fail(`IDP_CONFIG is not JSON: ${e.message}`);
}
if (config === null || typeof config !== 'object' || Array.isArray(config)) fail('IDP_CONFIG must be a JSON object');

const port = Number(config.port ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port ${config.port}`);

const accounts = new Map();
function putAccount(a) {
  if (!a || typeof a.sub !== 'string' || !a.sub) throw new Error('an account needs a non-empty string "sub"');
  accounts.set(a.sub, { ...a });
}
try {
  for (const a of config.accounts ?? []) putAccount(a);
} catch (e) {
  fail(e.message);
}

const clientOptions = new Map(); // client_id -> {refreshTokens, rotate}
const clientMetadata = (config.clients ?? []).map((c) => {
  if (!c || typeof c.client_id !== 'string') fail('every client needs a client_id');
  const { refresh_tokens: refreshTokens = 'offline_access', rotate_refresh_tokens: rotate = true, ...meta } = c;
  if (!['offline_access', 'always', 'never'].includes(refreshTokens)) {
    fail(`client ${c.client_id}: refresh_tokens must be "offline_access", "always" or "never"`);
  }
  clientOptions.set(c.client_id, { refreshTokens, rotate: rotate !== false });
  return {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...meta,
  };
});

const ttl = {
  AccessToken: 600,
  IdToken: 600,
  RefreshToken: 86400,
  AuthorizationCode: 60,
  Interaction: 600,
  Session: 86400,
  Grant: 86400,
  ...(config.ttl ?? {}),
};

const stats = {};
function resetStats() {
  Object.assign(stats, {
    token_requests: 0,
    refresh_requests: 0,
    refresh_failures: 0,
    revocation_requests: 0,
    userinfo_requests: 0,
    backchannel_logouts_sent: 0,
    backchannel_logout_failures: 0,
  });
}
resetStats();

// ---------------------------------------------------------------------------
// Storage: one Map for every model, so that the test endpoints can look into
// it and a provider re-created for a key rotation keeps everything.

const store = new Map(); // `${model}:${id}` -> {model, payload, exp (ms)}
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);

function liveEntries(model) {
  const now = Date.now();
  const out = [];
  for (const [key, entry] of store) {
    if (entry.exp <= now) {
      store.delete(key);
    } else if (!model || entry.model === model) {
      out.push([key, entry]);
    }
  }
  return out;
}

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const exp = typeof expiresIn === 'number' ? Date.now() + (expiresIn + 15) * 1000 : Infinity;
    store.set(this.key(id), { model: this.model, payload, exp });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.exp <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid) {
    return liveEntries(this.model).find(([, e]) => e.payload.uid === uid)?.[1].payload;
  }

  async findByUserCode(userCode) {
    return liveEntries(this.model).find(([, e]) => e.payload.userCode === userCode)?.[1].payload;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of liveEntries()) {
      if (GRANTABLE.has(entry.model) && entry.payload.grantId === grantId) store.delete(key);
    }
  }
}

// ---------------------------------------------------------------------------
// Keys.

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `k-${crypto.randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}
const signingKeys = [newSigningKey()];
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

// ---------------------------------------------------------------------------
// Pages.

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · Test IdP</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
label{display:block;margin:.75rem 0 .25rem}input{width:100%;padding:.45rem;box-sizing:border-box}
button{display:block;width:100%;margin-top:1rem;padding:.55rem;font-size:1rem}
.error{color:#b00020}.muted{color:#666;font-size:.9rem}</style></head>
<body><h1>${esc(title)}</h1>
${body}
</body></html>`;
}

function loginPage(uid, { clientId, login = '', error = '' }) {
  return page('Test IdP sign-in', `<p class="muted">to continue to <strong id="client">${esc(clientId)}</strong></p>
${error ? `<p class="error" id="error" role="alert">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label for="login">Username</label>
  <input id="login" name="login" value="${esc(login)}" autocomplete="username" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button id="submit" type="submit">Sign in</button>
</form>
<form id="abort-form" method="post" action="/interaction/${esc(uid)}/abort">
  <button id="abort" type="submit">Cancel</button>
</form>`);
}

function consentPage(uid, { clientId, scopes, claims }) {
  return page('Authorize', `<p><strong id="client">${esc(clientId)}</strong> asks for:</p>
<ul id="scopes">${scopes.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
${claims.length ? `<p class="muted">claims: ${claims.map(esc).join(', ')}</p>` : ''}
<form id="consent-form" method="post" action="/interaction/${esc(uid)}/confirm">
  <button id="consent" name="consent" value="yes" type="submit" autofocus>Continue</button>
</form>
<form id="abort-form" method="post" action="/interaction/${esc(uid)}/abort">
  <button id="abort" type="submit">Cancel</button>
</form>`);
}

// ---------------------------------------------------------------------------
// The provider (re-created with the same storage on key rotation).

function findAccountByLogin(login) {
  for (const a of accounts.values()) {
    if (a.sub === login || a.preferred_username === login || (a.email && a.email === login)) return a;
  }
  return undefined;
}

async function findAccount(_ctx, sub) {
  const a = accounts.get(sub);
  if (!a) return undefined;
  return {
    accountId: sub,
    async claims() {
      const current = accounts.get(sub) ?? a;
      const out = { sub };
      if (current.email !== undefined) {
        out.email = current.email;
        out.email_verified = current.email_verified ?? true;
      }
      if (current.preferred_username !== undefined) out.preferred_username = current.preferred_username;
      if (current.name !== undefined) out.name = current.name;
      if (current.groups !== undefined) out.groups = current.groups;
      return out;
    },
  };
}

function loopbackOnly(url) {
  const { hostname } = new URL(url);
  if (!/^127\.\d+\.\d+\.\d+$/.test(hostname) && hostname !== 'localhost') {
    throw new Error(`refusing a request to ${hostname}: only 127.0.0.1 may be a target`);
  }
}

// oidc-provider drops offline_access from an authorization request unless its
// `prompt` includes `consent` (OpenID Connect Core 11). Tests want a refresh
// token whenever the client asked for offline_access, so the requests' PKCE
// challenges are remembered here and the code is matched back to them.
const offlineChallenges = new Map(); // code_challenge -> ms timestamp
function rememberOfflineRequest(url) {
  const scope = url.searchParams.get('scope') ?? '';
  const challenge = url.searchParams.get('code_challenge');
  if (!challenge || !scope.split(' ').includes('offline_access')) return;
  const now = Date.now();
  for (const [k, t] of offlineChallenges) if (now - t > 3_600_000) offlineChallenges.delete(k);
  offlineChallenges.set(challenge, now);
}
function wantsOffline(code) {
  return code.scopes.has('offline_access') || (!!code.codeChallenge && offlineChallenges.has(code.codeChallenge));
}

let issuer;

function makeProvider() {
  const provider = new Provider(issuer, {
    adapter: MapAdapter,
    clients: clientMetadata,
    jwks: { keys: signingKeys },
    cookies: { keys: cookieKeys },
    findAccount,
    claims: {
      openid: ['sub', 'groups'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.type = 'html';
          ctx.body = page('Sign out', `<p>Sign out of the test IdP?</p>
${form}
<button id="logout-yes" type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out</button>
<button id="logout-no" type="submit" form="op.logoutForm">No, stay signed in</button>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = page('Signed out', '<p id="signed-out">You are signed out.</p>');
        },
      },
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    pkce: { required: () => true },
    async issueRefreshToken(_ctx, client, code) {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      const policy = clientOptions.get(client.clientId)?.refreshTokens ?? 'offline_access';
      if (policy === 'never') return false;
      if (policy === 'always') return true;
      return wantsOffline(code);
    },
    async expiresWithSession(_ctx, code) {
      return !wantsOffline(code);
    },
    rotateRefreshToken(ctx) {
      return clientOptions.get(ctx.oidc.client.clientId)?.rotate ?? true;
    },
    ttl,
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<p class="error" id="error" data-code="${esc(out.error)}">${esc(out.error)}: ${esc(out.error_description)}</p>`);
    },
    async fetch(url, options) {
      loopbackOnly(url);
      // oidc-provider's SSRF guard refuses loopback addresses, the only ones
      // allowed here.
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
  });
  provider.proxy = false;

  provider.use(async (ctx, next) => {
    const isToken = ctx.method === 'POST' && ctx.path === '/token';
    await next();
    const route = ctx.oidc?.route;
    if (isToken) {
      stats.token_requests += 1;
      const grantType = ctx.oidc?.params?.grant_type ?? ctx.oidc?.body?.grant_type;
      if (grantType === 'refresh_token') {
        stats.refresh_requests += 1;
        if (ctx.status >= 400) stats.refresh_failures += 1;
      }
    } else if (route === 'revocation') {
      stats.revocation_requests += 1;
    } else if (route === 'userinfo') {
      stats.userinfo_requests += 1;
    }
  });

  provider.on('backchannel.success', () => { stats.backchannel_logouts_sent += 1; });
  provider.on('backchannel.error', (_ctx, err) => {
    stats.backchannel_logout_failures += 1;
    log('back-channel logout failed:', err.message);
  });
  provider.on('server_error', (_ctx, err) => log('server_error:', err));
  provider.on('grant.error', (_ctx, err) => log('grant.error:', err.error, err.error_description, err.error_detail ?? ''));
  return { provider, callback: provider.callback() };
}

let current; // {provider, callback}

// ---------------------------------------------------------------------------
// HTTP helpers.

const MAX_BODY = 64 * 1024;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'application/json') {
  const text = type === 'application/json' ? JSON.stringify(body) : body;
  res.writeHead(status, {
    'content-type': `${type}; charset=utf-8`,
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

// ---------------------------------------------------------------------------
// Interactions: login and consent.

async function grantConsent(provider, details) {
  const { prompt: { details: missing }, params, session, grantId } = details;
  let grant;
  if (grantId) grant = await provider.Grant.find(grantId);
  if (!grant) grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scope] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
  }
  return grant.save();
}

async function interaction(req, res, uid, action) {
  const { provider } = current;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (e) {
    send(res, 400, page('Error', `<p class="error" id="error">${esc(e.message)}: the sign-in request expired or its cookie is missing; start again.</p>`), 'text/html');
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<p class="error" id="error">interaction mismatch; start again.</p>'), 'text/html');
    return;
  }
  const clientId = details.params.client_id;
  const prompt = details.prompt.name;

  if (action === 'abort' && req.method === 'POST') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (action === '' && req.method === 'GET') {
    if (prompt === 'login') {
      send(res, 200, loginPage(uid, { clientId, login: details.params.login_hint ?? '' }), 'text/html');
    } else if (prompt === 'consent') {
      if (config.auto_consent) {
        const grantId = await grantConsent(provider, details);
        await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
        return;
      }
      const scopes = details.prompt.details.missingOIDCScope ?? [];
      const claims = details.prompt.details.missingOIDCClaims ?? [];
      send(res, 200, consentPage(uid, { clientId, scopes, claims }), 'text/html');
    } else {
      send(res, 501, page('Error', `<p class="error" id="error">unsupported prompt ${esc(prompt)}</p>`), 'text/html');
    }
    return;
  }

  if (action === 'login' && req.method === 'POST') {
    if (prompt !== 'login') {
      send(res, 400, page('Error', '<p class="error" id="error">not a login step</p>'), 'text/html');
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    const login = form.get('login') ?? '';
    const account = findAccountByLogin(login);
    if (!account || typeof account.password !== 'string' || account.password !== (form.get('password') ?? '')) {
      send(res, 401, loginPage(uid, { clientId, login, error: 'Wrong username or password.' }), 'text/html');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
    return;
  }

  if (action === 'confirm' && req.method === 'POST') {
    if (prompt !== 'consent') {
      send(res, 400, page('Error', '<p class="error" id="error">not a consent step</p>'), 'text/html');
      return;
    }
    await readBody(req);
    const grantId = await grantConsent(provider, details);
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  send(res, 405, page('Error', '<p class="error" id="error">method not allowed</p>'), 'text/html');
}

// ---------------------------------------------------------------------------
// Test control.

async function revokeAccount(sub) {
  let grants = 0;
  for (const [key, entry] of liveEntries('Grant')) {
    if (entry.payload.accountId === sub) {
      const grantId = key.slice('Grant:'.length);
      await new MapAdapter('Grant').revokeByGrantId(grantId);
      store.delete(key);
      grants += 1;
    }
  }
  // Tokens whose grant is already gone.
  for (const [key, entry] of liveEntries()) {
    if (GRANTABLE.has(entry.model) && entry.payload.accountId === sub) store.delete(key);
  }
  return grants;
}

function sessionsOf(sub) {
  return liveEntries('Session').filter(([, e]) => e.payload.accountId === sub);
}

async function control(req, res, url) {
  const path = url.pathname;
  if (req.method === 'GET' && path === '/test/stats') {
    send(res, 200, stats);
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, { error: 'method_not_allowed' });
    return;
  }
  const body = await readBody(req);
  if (path === '/test/stats/reset') {
    resetStats();
    send(res, 200, stats);
    return;
  }
  if (path === '/test/accounts') {
    try {
      putAccount(JSON.parse(body));
    } catch (e) {
      send(res, 400, { error: 'bad_request', message: e.message });
      return;
    }
    send(res, 200, { ok: true });
    return;
  }
  const del = path.match(/^\/test\/accounts\/([^/]+)\/delete$/);
  if (del) {
    const sub = decodeURIComponent(del[1]);
    const deleted = accounts.delete(sub);
    const grantsRevoked = await revokeAccount(sub);
    for (const [key] of sessionsOf(sub)) store.delete(key);
    log(`account ${sub} deleted (${grantsRevoked} grants revoked)`);
    send(res, 200, { deleted, grants_revoked: grantsRevoked });
    return;
  }
  if (path === '/test/backchannel-logout') {
    const sub = url.searchParams.get('sub');
    const only = url.searchParams.get('client_id');
    if (!sub) {
      send(res, 400, { error: 'bad_request', message: 'sub is required' });
      return;
    }
    let sent = 0;
    const errors = [];
    for (const [key, entry] of sessionsOf(sub)) {
      for (const [clientId, auth] of Object.entries(entry.payload.authorizations ?? {})) {
        if (only && clientId !== only) continue;
        const client = await current.provider.Client.find(clientId);
        if (!client?.backchannelLogoutUri) continue;
        try {
          await client.backchannelLogout(sub, auth.sid);
          sent += 1;
          stats.backchannel_logouts_sent += 1;
        } catch (e) {
          stats.backchannel_logout_failures += 1;
          errors.push(`${clientId}: ${e.message}`);
        }
      }
      store.delete(key);
    }
    send(res, 200, { sent, errors });
    return;
  }
  if (path === '/test/rotate-keys') {
    const key = newSigningKey();
    signingKeys.unshift(key);
    current = makeProvider();
    log(`signing key rotated to ${key.kid}`);
    send(res, 200, { kid: key.kid, kids: signingKeys.map((k) => k.kid) });
    return;
  }
  send(res, 404, { error: 'not_found' });
}

// ---------------------------------------------------------------------------
// Server.

const server = http.createServer(async (req, res) => {
  try {
    if (!current) {
      send(res, 503, { error: 'starting' });
      return;
    }
    const url = new URL(req.url, issuer);
    if (url.pathname.startsWith('/test/')) {
      await control(req, res, url);
      return;
    }
    const m = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?\/?$/);
    if (m) {
      await interaction(req, res, m[1], m[2] ?? '');
      return;
    }
    if (url.pathname === '/auth') rememberOfflineRequest(url);
    current.callback(req, res);
  } catch (e) {
    log('request failed:', e);
    if (!res.headersSent) send(res, 500, { error: 'server_error', message: e.message });
    else res.destroy();
  }
});
server.keepAliveTimeout = 5000;
server.headersTimeout = 10000;
server.requestTimeout = 15000;

function shutdown(code = 0) {
  server.close();
  server.closeAllConnections?.();
  process.exit(code);
}
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.on('SIGHUP', () => shutdown(0));

if (config.watch_parent !== false) {
  const parentPid = process.ppid;
  setInterval(() => {
    if (process.ppid !== parentPid) {
      log('parent process gone, exiting');
      shutdown(0);
    }
  }, 1000).unref();
}
const maxLifetime = Number(config.max_lifetime ?? 3600);
if (maxLifetime > 0) {
  setTimeout(() => {
    log(`max_lifetime ${maxLifetime}s reached, exiting`);
    shutdown(0);
  }, maxLifetime * 1000).unref();
}
if (config.exit_with_stdin) {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}

server.on('error', (e) => fail(`cannot listen: ${e.message}`));
server.listen(port, '127.0.0.1', async () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  try {
    const made = makeProvider();
    // Static clients are checked lazily by oidc-provider: check them now.
    for (const { client_id: id } of clientMetadata) {
      if (!(await made.provider.Client.find(id))) throw new Error(`client ${id} not found`);
    }
    current = made;
  } catch (e) {
    fail(`bad configuration: ${e.error_description ?? e.message}`);
  }
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
  log(`listening at ${issuer}`);
});
