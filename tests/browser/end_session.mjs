// Ends another browser session from the signed-in page, the way a person does.
//
//   node tests/browser/end_session.mjs BASE_URL USERNAME PASSWORD [SCREENSHOT.png]
//
// Signs in at BASE_URL/login, counts the sessions listed on the signed-in
// page (#sessions li), clicks "End session" on the first one that is not
// this browser's, and waits until it leaves the list. Prints one line:
//   {"ok":true,"before":N,"after":M,"ended":"<session id>","cspViolations":K}   exit 0
//   {"ok":false,"error":"...","url":"<last URL>"}                              exit 1
// The screenshot, when asked for, is taken of the page before the click.

import { openPage, run, sleep, TIMEOUT_MS } from './lib.mjs';

const [baseArg, username, password, screenshot] = process.argv.slice(2);
run(async () => {
  if (!baseArg || username === undefined || password === undefined) {
    throw new Error('usage: end_session.mjs BASE_URL USERNAME PASSWORD [SCREENSHOT.png]');
  }
  const base = new URL(baseArg);
  const page = await openPage();
  let cspViolations = 0;
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) cspViolations += 1;
  });
  await page.goto(new URL('/login', base).href, { waitUntil: 'load' });
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#sign-in');
  await page.waitForSelector('#sessions', { timeout: TIMEOUT_MS });
  await page.waitForLoadState('load');
  const count = () => page.locator('#sessions li').count();
  const before = await count();
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  const other = page.locator('#sessions li:not([data-current]) button.end').first();
  if ((await other.count()) === 0) throw new Error(`no other session listed (${before} listed)`);
  const ended = await other.getAttribute('data-session');
  await other.click();
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline && (await count()) === before) await sleep(100);
  const after = await count();
  const error = (await page.locator('#sessions-error').textContent()) ?? '';
  if (error.trim()) throw new Error(`the page says: ${error.trim()}`);
  return { before, after, ended, cspViolations };
});
