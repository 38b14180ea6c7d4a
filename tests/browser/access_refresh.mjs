// The signed-in page's API calls once the access cookie has run out while
// the session lives: the 401 `access_expired` is answered by one POST
// /me/refresh and one retry, and the person stays on the page.
//
//   node tests/browser/access_refresh.mjs BASE_URL USERNAME PASSWORD
//
// Signs in at BASE_URL/login, then prints `signed in` on stderr and waits for
// a line on stdin (the test moves doorman's clock past the access cookie's
// lifetime meanwhile), then calls the page's own API helper for /me and
// records what went over the wire. Prints one line:
//   {"ok":true,"status":200,"calls":["GET /me 401 access_expired",...],"path":"/"}   exit 0
//   {"ok":false,"error":"...","url":"<last URL>"}                                   exit 1

import * as readline from 'node:readline';

import { openPage, run } from './lib.mjs';

const [baseArg, username, password] = process.argv.slice(2);
run(async () => {
  if (!baseArg || username === undefined || password === undefined) {
    throw new Error('usage: access_refresh.mjs BASE_URL USERNAME PASSWORD');
  }
  const base = new URL(baseArg);
  const page = await openPage();
  await page.goto(new URL('/login', base).href, { waitUntil: 'load' });
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#sign-in');
  await page.waitForSelector('#sessions', { timeout: 10_000 });
  await page.waitForLoadState('networkidle');

  const calls = [];
  page.on('response', async (response) => {
    const url = new URL(response.url());
    if (!url.pathname.startsWith('/me')) return;
    let code = '';
    if (response.status() === 401) code = ` ${(await response.json().catch(() => ({}))).error}`;
    calls.push(`${response.request().method()} ${url.pathname} ${response.status()}${code}`);
  });
  console.error('signed in');
  const lines = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once('line', resolve));
  lines.close();

  const status = await page.evaluate(async () => (await window.doormanApi('/me')).status);
  await page.waitForLoadState('networkidle');
  return { status, calls, path: new URL(page.url()).pathname };
});
