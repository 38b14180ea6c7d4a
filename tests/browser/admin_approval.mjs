// The administrator's page in a real browser: sign in with a password, open
// /admin, approve one pending user and reject another with the page's buttons.
//
//   node tests/browser/admin_approval.mjs BASE_URL USERNAME PASSWORD APPROVE REJECT [SCREENSHOT.png]
//
// With SCREENSHOT.png, the page with the pending users is also kept as SCREENSHOT-before.png.
// Prints one line:
//   {"ok":true,"before":[pending usernames],"after_approve":[...],"after_reject":[...],
//    "notices":["<#done text after approve>","<after reject>"],"csp_errors":N}      exit 0
//   {"ok":false,"error":"...","url":"<last URL>"}                                     exit 1
// Bounded by BROWSER_TIMEOUT_MS (default 30 s); see lib.mjs.

import { failWith, openPage, peek, run, sleep, TIMEOUT_MS } from './lib.mjs';

const [baseArg, username, password, approve, reject, screenshot] = process.argv.slice(2);
if (!baseArg || !username || !password || !approve || !reject) {
  failWith('usage: admin_approval.mjs BASE_URL USERNAME PASSWORD APPROVE REJECT [SCREENSHOT.png]');
} else {
  run(async () => {
    const base = new URL(baseArg);
    const page = await openPage({ screenshot });
    let cspErrors = 0;
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspErrors += 1;
    });
    await page.goto(new URL('/login', base).href, { waitUntil: 'load' });
    await page.fill('#username', username);
    await page.fill('#password', password);
    await page.click('#sign-in');
    const deadline = Date.now() + TIMEOUT_MS;
    while (new URL(page.url()).pathname !== '/' || (await peek(page, 'strong#username')) === null) {
      const error = await peek(page, '#error');
      if (error) throw new Error(`login refused: ${error}`);
      if (Date.now() > deadline) throw new Error('the signed-in page did not appear');
      await sleep(100);
    }

    const pending = () => page.$$eval('li.pending-user', (items) => items.map((li) => li.dataset.username));
    const response = await page.goto(new URL('/admin', base).href, { waitUntil: 'load' });
    if (!response || response.status() !== 200) throw new Error(`GET /admin answered ${response?.status()}`);
    const before = await pending();
    if (screenshot) await page.screenshot({ path: screenshot.replace(/\.png$/, '-before.png'), fullPage: true });

    await Promise.all([page.waitForURL(/\/admin\?done=/), page.click(`[id="approve-${approve}"]`)]);
    await page.waitForLoadState('load');
    const afterApprove = await pending();
    const approvedNotice = await peek(page, '#done');

    await Promise.all([page.waitForURL(/\/admin\?done=rejected/), page.click(`[id="reject-${reject}"]`)]);
    await page.waitForLoadState('load');
    const afterReject = await pending();
    const rejectedNotice = await peek(page, '#done');
    return {
      before,
      after_approve: afterApprove,
      after_reject: afterReject,
      notices: [approvedNotice, rejectedNotice],
      csp_errors: cspErrors,
      url: page.url(),
    };
  });
}
