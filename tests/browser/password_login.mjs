// Signs in with a password in a real browser, the way a person does.
//
//   node tests/browser/password_login.mjs BASE_URL USERNAME PASSWORD [SCREENSHOT.png]
//
// Opens BASE_URL/login, fills #username and #password, clicks #sign-in, and
// waits for the signed-in page (BASE_URL/ showing #username). Prints one line:
//   {"ok":true,"shown":"<text of #username>","url":"<final URL>"}            exit 0
//   {"ok":false,"error":"...","url":"<last URL>"}                             exit 1
// (e.g. error "login refused: <the page's #error text>" for bad credentials).
// The screenshot, when asked for, is taken of the last page either way.
// Bounded by BROWSER_TIMEOUT_MS (default 30 s); see lib.mjs.

import { failWith, openPage, peek, run, sleep, TIMEOUT_MS } from './lib.mjs';

const [baseArg, username, password, screenshot] = process.argv.slice(2);
if (!baseArg || username === undefined || password === undefined) {
  console.error('usage: password_login.mjs BASE_URL USERNAME PASSWORD [SCREENSHOT.png]');
  failWith('usage: password_login.mjs BASE_URL USERNAME PASSWORD [SCREENSHOT.png]');
} else {
  run(async () => {
    const base = new URL(baseArg);
    const page = await openPage({ screenshot });
    const response = await page.goto(new URL('/login', base).href, { waitUntil: 'load' });
    if (!response || response.status() !== 200) throw new Error(`GET /login answered ${response?.status()}`);
    await page.fill('#username', username);
    await page.fill('#password', password);
    await page.click('#sign-in');

    // Either the browser goes to the signed-in page, or the form shows an error.
    const deadline = Date.now() + TIMEOUT_MS;
    while (Date.now() < deadline) {
      const url = new URL(page.url());
      if (url.origin === base.origin && url.pathname === '/') {
        await page.waitForLoadState('load');
        const shown = await peek(page, 'strong#username');
        if (shown !== null) return { shown, url: page.url() };
      } else {
        const error = await peek(page, '#error');
        if (error) throw new Error(`login refused: ${error}`);
      }
      await sleep(100);
    }
    throw new Error('the signed-in page did not appear');
  });
}
