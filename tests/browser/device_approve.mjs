// Approves a command-line tool's code on doorman's /device page, signing in
// through single sign-on on the way, in a real browser.
//
//   node tests/browser/device_approve.mjs VERIFICATION_URL PROVIDER_ID LOGIN PASSWORD [SCREENSHOT.png]
//
// Opens VERIFICATION_URL (verification_uri_complete: /device?user_code=...),
// which sends a stranger to /login?next=...; clicks #sso-PROVIDER_ID, fills
// the provider's login form (inputs name="login"/"password") and consent, and
// expects to come back to the same /device page, which must show the code of
// the URL, the tool (#client) and the warning (#warning); then clicks
// #approve and waits for #outcome.
// Prints one line:
//   {"ok":true,"client":"<tool label>","code":"XXXX-XXXX","outcome":"approved","went_through_login":true}
//   {"ok":false,"error":"...","url":"<last URL>"}
// Bounded by BROWSER_TIMEOUT_MS (default 30 s); see lib.mjs.

import { TIMEOUT_MS, failWith, openPage, peek, run, sleep, visible } from './lib.mjs';

const [verificationUrl, providerId, login, password, screenshot] = process.argv.slice(2);

if (!verificationUrl || !providerId || login === undefined || password === undefined) {
  const usage = 'usage: device_approve.mjs VERIFICATION_URL PROVIDER_ID LOGIN PASSWORD [SCREENSHOT.png]';
  console.error(usage);
  failWith(usage);
} else {
  run(async () => {
    const target = new URL(verificationUrl);
    const page = await openPage({ screenshot });
    await page.goto(target.href, { waitUntil: 'load' });
    let wentThroughLogin = false;
    let loginSubmitted = 0;
    let consentSubmitted = 0;
    const deadline = Date.now() + TIMEOUT_MS;
    while (Date.now() < deadline) {
      await page.waitForLoadState('load').catch(() => {});
      const url = new URL(page.url());
      if (url.origin === target.origin) {
        if (url.pathname === '/login') {
          if (wentThroughLogin) throw new Error('sent back to /login after signing in');
          wentThroughLogin = true;
          const button = page.locator(`#sso-${providerId}`);
          if (await button.count() === 0) throw new Error(`no #sso-${providerId} button on the login page`);
          await Promise.all([page.waitForNavigation({ waitUntil: 'commit' }).catch(() => {}), button.click()]);
          continue;
        }
        if (url.pathname === '/device') {
          if (url.search !== target.search) throw new Error(`came back to ${url.pathname}${url.search}, not to the same code`);
          if (await visible(page, '#approve')) {
            const code = await peek(page, '#code');
            const client = await peek(page, '#client');
            const warning = await peek(page, '#warning');
            if (!warning || !warning.includes('started yourself')) throw new Error('no warning on the device page');
            if (!target.search.includes(code)) throw new Error(`the page shows code ${code}`);
            await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#approve')]);
            const outcome = await page.evaluate(() => document.querySelector('#outcome')?.dataset.outcome ?? null);
            if (outcome === null) throw new Error(`no outcome: ${await peek(page, '#error')}`);
            return { client, code, outcome, went_through_login: wentThroughLogin };
          }
          const error = await peek(page, '#error');
          if (error) throw new Error(`device page error: ${error}`);
        } else if (url.pathname !== '/oidc/callback') {
          const message = await peek(page, '#error');
          if (message) throw new Error(`doorman error page: ${message}`);
        }
      } else if (url.protocol === 'http:' || url.protocol === 'https:') {
        if (await visible(page, 'input[name="login"]') && await visible(page, 'input[name="password"]')) {
          if (loginSubmitted) throw new Error('the provider refused the credentials');
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
          await Promise.all([
            page.waitForNavigation({ waitUntil: 'commit' }).catch(() => {}),
            page.locator('#consent, #consent-form [type="submit"]').first().click(),
          ]);
          continue;
        }
      }
      await sleep(150);
    }
    throw new Error('did not reach the approval');
  });
}
