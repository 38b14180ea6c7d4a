// Signs in through single sign-on in a real browser.
//
//   node tests/browser/sso_login.mjs BASE_URL PROVIDER_ID LOGIN PASSWORD [SCREENSHOT.png]
//
// Opens BASE_URL/login, clicks #sso-PROVIDER_ID ("Sign in with NAME"), and then
// handles whatever page comes, until doorman's signed-in page appears:
//   - the provider's login form (inputs name="login" and name="password", as
//     served by tests/idp/server.mjs): filled and submitted, once;
//   - the provider's consent form (#consent-form / #consent): confirmed;
//   - BASE_URL/ with #username: done.
// Prints one line:
//   {"ok":true,"shown":"<text of #username>","url":"<final URL>","provider_origin":"..."}   exit 0
//   {"ok":false,"error":"...","url":"<last URL>"}                                          exit 1
// Errors name what went wrong: no such button, doorman's error page (its code
// and message), the provider refusing the credentials or showing an error.
// Bounded by BROWSER_TIMEOUT_MS (default 30 s); see lib.mjs.
//
// With SSO_AUTHORIZE_URL set, it skips doorman's login page and starts at that
// URL (a provider authorization URL, for checking the provider pages alone):
// it then stops as soon as the browser is sent to a URL starting with
// SSO_STOP_PREFIX (e.g. the client's redirect_uri) and reports {"ok":true,
// "shown":null,"url":"<that URL>"} (whatever that URL answers).

import { TIMEOUT_MS, failWith, openPage, peek, run, sleep, visible } from './lib.mjs';

const [baseArg, providerId, login, password, screenshot] = process.argv.slice(2);

if (!baseArg || !providerId || login === undefined || password === undefined) {
  const usage = 'usage: sso_login.mjs BASE_URL PROVIDER_ID LOGIN PASSWORD [SCREENSHOT.png]';
  console.error(usage);
  failWith(usage);
} else {
  run(async () => {
    const base = new URL(baseArg);
    const startAt = process.env.SSO_AUTHORIZE_URL;
    const stopPrefix = process.env.SSO_STOP_PREFIX;
    const page = await openPage({ screenshot });

    let stoppedAt;
    if (stopPrefix) {
      // Seen on every hop, redirects included; what the target answers is
      // left alone.
      page.on('request', (request) => {
        if (request.isNavigationRequest() && request.url().startsWith(stopPrefix)) stoppedAt ??= request.url();
      });
    }

    if (startAt) {
      await page.goto(startAt, { waitUntil: 'load' });
    } else {
      const response = await page.goto(new URL('/login', base).href, { waitUntil: 'load' });
      if (!response || response.status() !== 200) throw new Error(`GET /login answered ${response?.status()}`);
      const button = page.locator(`#sso-${providerId}`);
      if (await button.count() === 0) throw new Error(`no #sso-${providerId} button on the login page`);
      await button.click();
    }

    let providerOrigin;
    let loginSubmitted = 0;
    let consentSubmitted = 0;
    const deadline = Date.now() + TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (stoppedAt) return { shown: null, url: stoppedAt, provider_origin: providerOrigin ?? null };
      await page.waitForLoadState('load').catch(() => {});
      const url = new URL(page.url());

      if (url.origin === base.origin) {
        if (url.pathname === '/') {
          const shown = await peek(page, 'strong#username');
          if (shown !== null) return { shown, url: page.url(), provider_origin: providerOrigin ?? null };
        }
        if (url.pathname !== '/login' || loginSubmitted) {
          // doorman's error page (templates/error.html), or a JSON error.
          const code = await page.evaluate(() => document.querySelector('#error')?.dataset.code ?? '').catch(() => '');
          const message = await peek(page, '#error');
          if (message) throw new Error(`doorman error page${code ? ` (${code})` : ''}: ${message}`);
          const text = await peek(page, 'body');
          if (text && text.startsWith('{') && text.includes('"error"')) throw new Error(`doorman answered: ${text.slice(0, 300)}`);
        }
      } else if (url.protocol === 'http:' || url.protocol === 'https:') {
        providerOrigin ??= url.origin;
        if (await visible(page, 'input[name="login"]') && await visible(page, 'input[name="password"]')) {
          if (loginSubmitted) {
            const error = await peek(page, '#error, .error, [role="alert"]');
            throw new Error(`the provider refused the credentials${error ? `: ${error}` : ''}`);
          }
          await page.fill('input[name="login"]', login);
          await page.fill('input[name="password"]', password);
          loginSubmitted += 1;
          const form = page.locator('form:has(input[name="password"])').first();
          await Promise.all([
            page.waitForNavigation({ waitUntil: 'commit' }).catch(() => {}),
            form.locator('[type="submit"]').first().click(),
          ]);
          continue;
        }
        if (await visible(page, '#consent-form, #consent')) {
          if (consentSubmitted >= 3) throw new Error('the provider keeps asking for consent');
          consentSubmitted += 1;
          const button = page.locator('#consent, #consent-form [type="submit"]').first();
          await Promise.all([
            page.waitForNavigation({ waitUntil: 'commit' }).catch(() => {}),
            button.click(),
          ]);
          continue;
        }
        const error = await peek(page, '#error');
        if (error) throw new Error(`the provider shows an error: ${error}`);
      }
      await sleep(150);
    }
    throw new Error('did not get back to the signed-in page');
  });
}
