// Self-test of the test OpenID Provider (server.mjs), over plain HTTP, the
// way the Rust tests drive it: node's fetch, redirects followed by hand, a
// small cookie jar. It starts its own server, runs every flow, prints one
// line per check and "N passed, N failed", and exits non-zero on any failure.
//
//   node tests/idp/selftest.mjs
//
// It doubles as the reference for the sign-in steps: see `signIn` below.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('./server.mjs', import.meta.url));
const DEADLINE = setTimeout(() => {
  console.error('selftest: timed out after 60 s');
  process.exit(1);
}, 60_000);

let passed = 0;
let failed = 0;
function check(name, condition, detail = '') {
  if (condition) {
    passed += 1;
    console.log(`ok   ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}${detail ? `: ${detail}` : ''}`);
  }
}
class Fatal extends Error {}
function must(name, condition, detail) {
  check(name, condition, detail);
  if (!condition) throw new Fatal(name);
}

// --- a cookie jar -----------------------------------------------------------

class Jar {
  cookies = new Map(); // `${name};${path}` -> {name, value, path}

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const key = `${name};${path}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

async function request(jar, url, { method = 'GET', form, headers = {} } = {}) {
  const h = { ...headers };
  const cookie = jar?.header(url);
  if (cookie) h.cookie = cookie;
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    h['content-type'] = 'application/x-www-form-urlencoded';
  }
  const response = await fetch(url, { method, headers: h, body, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  jar?.store(response);
  return response;
}

// --- helpers ------------------------------------------------------------------

const b64url = (buf) => Buffer.from(buf).toString('base64url');
function pkce() {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

async function verifyJwt(jwt, jwksUri) {
  const { keys } = await (await fetch(jwksUri)).json();
  const [h, p, s] = jwt.split('.');
  const { header, payload } = decodeJwt(jwt);
  const jwk = keys.find((k) => k.kid === header.kid);
  if (!jwk || header.alg !== 'RS256') return { ok: false, header, payload };
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
  return { ok, header, payload };
}

const absolute = (base, location) => new URL(location, base).href;

// The sign-in steps, documented in server.mjs. Returns the final redirect to
// the client's redirect_uri as a URL.
async function signIn(jar, issuer, { clientId, redirectUri, scope, login, password, prompt, expectLoginForm = true }) {
  const { verifier, challenge } = pkce();
  const state = b64url(crypto.randomBytes(12));
  const nonce = b64url(crypto.randomBytes(12));
  const auth = new URL(`${issuer}/auth`);
  auth.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...(prompt ? { prompt } : {}),
  }).toString();

  // Follow redirects within the issuer; stop at the login form, the consent
  // form or the redirect_uri. Bounded.
  let url = auth.href;
  for (let hop = 0; hop < 12; hop += 1) {
    if (url.startsWith(redirectUri)) {
      return { callback: new URL(url), state, nonce, verifier };
    }
    const r = await request(jar, url);
    if (r.status === 303 || r.status === 302) {
      url = absolute(url, r.headers.get('location'));
      continue;
    }
    const html = await r.text();
    must(`GET ${new URL(url).pathname} is 200`, r.status === 200, `${r.status} ${html.slice(0, 300)}`);
    if (html.includes('id="login-form"')) {
      must('login form expected here', expectLoginForm);
      const action = html.match(/id="login-form" method="post" action="([^"]+)"/)[1];
      const post = await request(jar, absolute(url, action), { method: 'POST', form: { login, password } });
      if (post.status === 401) {
        return { loginRefused: true, html: await post.text() };
      }
      must('POST login answers 303', post.status === 303, `${post.status}`);
      url = absolute(url, post.headers.get('location'));
    } else if (html.includes('id="consent-form"')) {
      const action = html.match(/id="consent-form" method="post" action="([^"]+)"/)[1];
      const post = await request(jar, absolute(url, action), { method: 'POST', form: {} });
      must('POST consent answers 303', post.status === 303, `${post.status}`);
      url = absolute(url, post.headers.get('location'));
    } else {
      throw new Fatal(`unexpected page at ${url}: ${html.slice(0, 300)}`);
    }
  }
  throw new Fatal('too many redirects');
}

function basic(id, secret) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function tokenRequest(issuer, client, params) {
  const r = await request(null, `${issuer}/token`, {
    method: 'POST',
    form: params,
    headers: { authorization: basic(client.client_id, client.client_secret) },
  });
  return { status: r.status, body: await r.json() };
}

async function stats(issuer) {
  return (await fetch(`${issuer}/test/stats`)).json();
}

// --- the run ------------------------------------------------------------------

async function main() {
  // A stand-in for doorman's back-channel logout endpoint.
  const logoutTokens = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      logoutTokens.push(new URLSearchParams(body).get('logout_token'));
      res.writeHead(200).end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const bclUri = `http://127.0.0.1:${receiver.address().port}/oidc/backchannel-logout`;

  const redirectUri = 'http://127.0.0.1:1/oidc/callback';
  const client = {
    client_id: 'doorman',
    client_secret: 'doorman-secret',
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: ['http://127.0.0.1:1/login'],
    backchannel_logout_uri: bclUri,
    backchannel_logout_session_required: true,
  };
  const always = {
    client_id: 'always', client_secret: 'always-secret', redirect_uris: [redirectUri], refresh_tokens: 'always', rotate_refresh_tokens: false,
  };
  const config = {
    port: 0,
    clients: [client, always],
    accounts: [
      { sub: 'sub-alice', email: 'alice@example.com', preferred_username: 'alice', name: 'Alice Example', password: 'alice-pw' },
      { sub: 'sub-bob', email: 'bob@example.com', preferred_username: 'bob', name: 'Bob Example', password: 'bob-pw' },
    ],
    ttl: { AccessToken: 60, IdToken: 60, RefreshToken: 86400 },
    exit_with_stdin: true,
  };

  const child = spawn(process.execPath, [SERVER], {
    env: { ...process.env, IDP_CONFIG: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const cleanup = () => {
    child.kill('SIGTERM');
    receiver.close();
  };
  try {
    const line = await new Promise((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    const { issuer } = JSON.parse(line);
    must('ready line names the issuer', /^http:\/\/127\.0\.0\.1:\d+$/.test(issuer), line);
    let extra = '';
    child.stdout.on('data', (d) => { extra += d; });

    // Discovery.
    const disco = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
    check('discovery issuer', disco.issuer === issuer);
    for (const k of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'revocation_endpoint', 'end_session_endpoint']) {
      check(`discovery has ${k}`, typeof disco[k] === 'string' && disco[k].startsWith(issuer), disco[k]);
    }
    check('discovery: backchannel logout supported', disco.backchannel_logout_supported === true);
    check('discovery: S256 only', JSON.stringify(disco.code_challenge_methods_supported) === '["S256"]');

    // PKCE is required.
    {
      const u = new URL(`${issuer}/auth`);
      u.search = new URLSearchParams({ response_type: 'code', client_id: 'doorman', redirect_uri: redirectUri, scope: 'openid', state: 'x' }).toString();
      const r = await request(new Jar(), u.href);
      const loc = r.headers.get('location') ?? '';
      check('authorization without PKCE is refused', r.status === 303 && loc.startsWith(redirectUri) && loc.includes('error=invalid_request'), `${r.status} ${loc}`);
    }

    // Wrong password.
    {
      const res = await signIn(new Jar(), issuer, { clientId: 'doorman', redirectUri, scope: 'openid', login: 'alice', password: 'nope' });
      check('wrong password: 401 with the form again', res.loginRefused && res.html.includes('id="error"') && res.html.includes('id="login-form"'));
    }

    // The full flow with offline_access.
    const jar = new Jar();
    const scope = 'openid email profile offline_access';
    const s1 = await signIn(jar, issuer, { clientId: 'doorman', redirectUri, scope, login: 'alice', password: 'alice-pw' });
    const code = s1.callback.searchParams.get('code');
    must('redirect to redirect_uri with a code', !!code, s1.callback.href);
    check('state is returned', s1.callback.searchParams.get('state') === s1.state);
    check('iss is returned', s1.callback.searchParams.get('iss') === issuer);

    const bad = await tokenRequest(issuer, client, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: pkce().verifier });
    check('wrong code_verifier: 400 invalid_grant', bad.status === 400 && bad.body.error === 'invalid_grant', JSON.stringify(bad));

    // (the failed attempt above consumed nothing? a code can be used once: sign in again)
    const s1b = await signIn(jar, issuer, { clientId: 'doorman', redirectUri, scope, login: 'alice', password: 'alice-pw', expectLoginForm: false });
    check('second authorization in the same jar goes straight to the redirect_uri', !!s1b.callback?.searchParams.get('code'));
    const t1 = await tokenRequest(issuer, client, {
      grant_type: 'authorization_code', code: s1b.callback.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: s1b.verifier,
    });
    must('code exchange: 200', t1.status === 200, JSON.stringify(t1));
    console.log(`     token response keys: ${Object.keys(t1.body).sort().join(', ')}`);
    check('code exchange: access_token, id_token, refresh_token, Bearer', !!t1.body.access_token && !!t1.body.id_token && !!t1.body.refresh_token && t1.body.token_type === 'Bearer');
    check('code exchange: expires_in 60', t1.body.expires_in === 60, `${t1.body.expires_in}`);
    const idt = await verifyJwt(t1.body.id_token, disco.jwks_uri);
    check('id_token: RS256 signature verifies against the JWKS', idt.ok, JSON.stringify(idt.header));
    const c = idt.payload;
    check('id_token: iss, aud, sub, nonce', c.iss === issuer && c.aud === 'doorman' && c.sub === 'sub-alice' && c.nonce === s1b.nonce, JSON.stringify(c));
    check('id_token: email, preferred_username, name', c.email === 'alice@example.com' && c.preferred_username === 'alice' && c.name === 'Alice Example', JSON.stringify(c));
    check('id_token: sid present', typeof c.sid === 'string');

    const ui = await fetch(disco.userinfo_endpoint, { headers: { authorization: `Bearer ${t1.body.access_token}` } });
    const uiBody = await ui.json();
    check('userinfo: 200 with the claims', ui.status === 200 && uiBody.sub === 'sub-alice' && uiBody.email === 'alice@example.com' && uiBody.preferred_username === 'alice', JSON.stringify(uiBody));

    // Refresh, with rotation.
    const r1 = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: t1.body.refresh_token });
    must('refresh: 200', r1.status === 200, JSON.stringify(r1));
    check('refresh: new access, id and refresh tokens', !!r1.body.access_token && !!r1.body.id_token && !!r1.body.refresh_token);
    check('refresh: the refresh token is rotated', r1.body.refresh_token !== t1.body.refresh_token);
    const r2 = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: r1.body.refresh_token });
    check('refresh with the rotated token: 200', r2.status === 200, JSON.stringify(r2));

    // Email change at the provider is seen on the next refresh.
    await fetch(`${issuer}/test/accounts`, { method: 'POST', body: JSON.stringify({ sub: 'sub-alice', email: 'alice2@example.com', preferred_username: 'alice', name: 'Alice Example', password: 'alice-pw' }) });
    const r3 = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: r2.body.refresh_token });
    check('changed email shows in the refreshed id_token', r3.status === 200 && decodeJwt(r3.body.id_token).payload.email === 'alice2@example.com', JSON.stringify(r3.body).slice(0, 200));

    // Stats.
    let st = await stats(issuer);
    check('stats: token_requests 5 (1 bad code + 1 code + 3 refresh)', st.token_requests === 5, JSON.stringify(st));
    check('stats: refresh_requests 3', st.refresh_requests === 3, JSON.stringify(st));

    // Key rotation.
    const rot = await (await fetch(`${issuer}/test/rotate-keys`, { method: 'POST' })).json();
    check('rotate-keys: two kids, new one first', rot.kids?.length === 2 && rot.kids[0] === rot.kid, JSON.stringify(rot));
    const r4 = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: r3.body.refresh_token });
    const idt4 = r4.status === 200 ? await verifyJwt(r4.body.id_token, disco.jwks_uri) : { ok: false, header: {} };
    check('after rotation: refresh works and id_token is signed with the new key', idt4.ok && idt4.header.kid === rot.kid, JSON.stringify(r4).slice(0, 200));
    const jwks = await (await fetch(disco.jwks_uri)).json();
    check('after rotation: JWKS publishes both keys', jwks.keys.length === 2);
    let latestRefresh = r4.body.refresh_token;

    // Back-channel logout triggered by the test endpoint.
    const bcl = await (await fetch(`${issuer}/test/backchannel-logout?sub=sub-alice`, { method: 'POST' })).json();
    check('test backchannel-logout: one token sent', bcl.sent === 1 && bcl.errors.length === 0, JSON.stringify(bcl));
    if (logoutTokens.length === 1) {
      const lt = await verifyJwt(logoutTokens[0], disco.jwks_uri);
      const p = lt.payload;
      check('logout token: signed, iss, aud, sub, sid, events', lt.ok && p.iss === issuer && p.aud === 'doorman' && p.sub === 'sub-alice'
        && p.sid === c.sid && !!p.events?.['http://schemas.openid.net/event/backchannel-logout'] && !p.nonce, JSON.stringify(p));
    } else {
      check('logout token received', false, `${logoutTokens.length}`);
    }
    const r5 = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: latestRefresh });
    check('refresh still works after a back-channel logout (offline_access)', r5.status === 200, JSON.stringify(r5));
    latestRefresh = r5.body.refresh_token;

    // RP-initiated logout in a new session.
    const jar2 = new Jar();
    const s2 = await signIn(jar2, issuer, { clientId: 'doorman', redirectUri, scope: 'openid email profile', login: 'alice', password: 'alice-pw' });
    const t2 = await tokenRequest(issuer, client, { grant_type: 'authorization_code', code: s2.callback.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: s2.verifier });
    check('without offline_access: no refresh_token', t2.status === 200 && !t2.body.refresh_token, JSON.stringify(t2.body).slice(0, 100));
    {
      const end = new URL(disco.end_session_endpoint);
      end.search = new URLSearchParams({ id_token_hint: t2.body.id_token, post_logout_redirect_uri: 'http://127.0.0.1:1/login', state: 'bye' }).toString();
      const page = await request(jar2, end.href);
      const html = await page.text();
      const xsrf = html.match(/name="xsrf" value="([^"]+)"/)?.[1];
      const action = html.match(/id="op.logoutForm"[^>]*action="([^"]+)"/)?.[1] ?? html.match(/action="([^"]+)"[^>]*id="op.logoutForm"/)?.[1];
      check('end_session: 200 with the logout form', page.status === 200 && !!xsrf && !!action, html.slice(0, 400));
      const before = logoutTokens.length;
      const confirm = await request(jar2, absolute(end.href, action), { method: 'POST', form: { xsrf, logout: 'yes' } });
      check('end_session confirm: 303 to post_logout_redirect_uri with state', confirm.status === 303 && confirm.headers.get('location') === 'http://127.0.0.1:1/login?state=bye', `${confirm.status} ${confirm.headers.get('location')}`);
      check('end_session confirm: a back-channel logout token was sent', logoutTokens.length === before + 1);
    }

    // Revocation (RFC 7009).
    {
      const jar3 = new Jar();
      const s3 = await signIn(jar3, issuer, { clientId: 'doorman', redirectUri, scope, login: 'bob', password: 'bob-pw' });
      const t3 = await tokenRequest(issuer, client, { grant_type: 'authorization_code', code: s3.callback.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: s3.verifier });
      const rv = await request(null, disco.revocation_endpoint, {
        method: 'POST', form: { token: t3.body.refresh_token, token_type_hint: 'refresh_token' }, headers: { authorization: basic('doorman', 'doorman-secret') },
      });
      check('revocation: 200', rv.status === 200, `${rv.status}`);
      const after = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: t3.body.refresh_token });
      check('refresh after revocation: 400 invalid_grant', after.status === 400 && after.body.error === 'invalid_grant', JSON.stringify(after));
    }

    // Refresh-token reuse revokes the grant.
    {
      const s4 = await signIn(new Jar(), issuer, { clientId: 'doorman', redirectUri, scope, login: 'bob', password: 'bob-pw' });
      const t4 = await tokenRequest(issuer, client, { grant_type: 'authorization_code', code: s4.callback.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: s4.verifier });
      const a = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: t4.body.refresh_token });
      const b = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: t4.body.refresh_token });
      const c2 = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: a.body.refresh_token });
      check('reuse of a rotated refresh token: 400 invalid_grant, and the newer one is revoked too', a.status === 200 && b.status === 400 && b.body.error === 'invalid_grant' && c2.status === 400, `${a.status} ${b.status} ${c2.status}`);
    }

    // offline_access yields a refresh token whatever `prompt` says.
    {
      const s5 = await signIn(new Jar(), issuer, { clientId: 'doorman', redirectUri, scope, login: 'bob', password: 'bob-pw', prompt: 'login' });
      const t5 = await tokenRequest(issuer, client, { grant_type: 'authorization_code', code: s5.callback.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: s5.verifier });
      check('prompt=login with offline_access: refresh_token issued', t5.status === 200 && !!t5.body.refresh_token, JSON.stringify(t5.body).slice(0, 120));
      const s6 = await signIn(new Jar(), issuer, { clientId: 'doorman', redirectUri, scope, login: 'bob', password: 'bob-pw', prompt: 'login consent' });
      const t6 = await tokenRequest(issuer, client, { grant_type: 'authorization_code', code: s6.callback.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: s6.verifier });
      check('prompt=login consent: refresh_token issued', t6.status === 200 && !!t6.body.refresh_token, JSON.stringify(t6.body).slice(0, 120));
    }

    // A client with refresh_tokens "always" and no rotation.
    {
      const s7 = await signIn(new Jar(), issuer, { clientId: 'always', redirectUri, scope: 'openid email', login: 'bob', password: 'bob-pw' });
      const t7 = await tokenRequest(issuer, always, { grant_type: 'authorization_code', code: s7.callback.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: s7.verifier });
      check('refresh_tokens "always": refresh_token without offline_access', t7.status === 200 && !!t7.body.refresh_token, JSON.stringify(t7.body).slice(0, 120));
      const a = await tokenRequest(issuer, always, { grant_type: 'refresh_token', refresh_token: t7.body.refresh_token });
      const b = await tokenRequest(issuer, always, { grant_type: 'refresh_token', refresh_token: t7.body.refresh_token });
      check('rotate_refresh_tokens false: the same refresh token works twice', a.status === 200 && b.status === 200 && a.body.refresh_token === t7.body.refresh_token, `${a.status} ${b.status}`);
    }

    // Deleting the account makes its refresh tokens fail.
    {
      const del = await (await fetch(`${issuer}/test/accounts/sub-alice/delete`, { method: 'POST' })).json();
      check('delete: deleted', del.deleted === true && del.grants_revoked >= 1, JSON.stringify(del));
      const before = await stats(issuer);
      const after = await tokenRequest(issuer, client, { grant_type: 'refresh_token', refresh_token: latestRefresh });
      check('refresh after delete: 400 invalid_grant', after.status === 400 && after.body.error === 'invalid_grant', JSON.stringify(after));
      console.log(`     refresh after delete answers ${after.status} ${JSON.stringify(after.body)}`);
      const st2 = await stats(issuer);
      check('stats: the failed refresh is counted', st2.refresh_requests === before.refresh_requests + 1 && st2.refresh_failures === before.refresh_failures + 1, JSON.stringify(st2));
      const again = await signIn(new Jar(), issuer, { clientId: 'doorman', redirectUri, scope, login: 'alice', password: 'alice-pw' });
      check('a deleted account cannot sign in', again.loginRefused === true);
    }

    st = await stats(issuer);
    console.log(`     stats: ${JSON.stringify(st)}`);
    check('nothing but the ready line on stdout', extra === '', extra);
  } finally {
    cleanup();
  }
}

main()
  .catch((e) => {
    failed += 1;
    console.log(`FAIL ${e instanceof Fatal ? `stopped at: ${e.message}` : e.stack}`);
  })
  .finally(() => {
    clearTimeout(DEADLINE);
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
  });
