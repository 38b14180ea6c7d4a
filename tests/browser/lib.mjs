// Shared by the browser scripts: launching Debian's Chromium through
// playwright-core, the one-line JSON result contract, and the time limit.
//
// Every script prints exactly one line on stdout, {"ok":true,...} (exit 0) or
// {"ok":false,"error":"...","url":"<last page URL>"} (exit 1); diagnostics go
// to stderr. The whole run is bounded by BROWSER_TIMEOUT_MS (default 30000);
// SIGTERM/SIGINT end it with {"ok":false} too. Requests to any host other than
// 127.0.0.1/localhost are aborted inside the browser.
//
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), BROWSER_TIMEOUT_MS.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const TIMEOUT_MS = Math.max(1000, Number(process.env.BROWSER_TIMEOUT_MS) || 30_000);

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let finished = false;
let browser;
let page;
let screenshotPath;
let userDataDir;

function cleanupProfile() {
  if (userDataDir) {
    try {
      fs.rmSync(userDataDir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
}

// Prints the result line once and exits; the browser is killed with us.
export async function finish(result) {
  if (finished) return;
  finished = true;
  if (!result.ok) {
    try {
      result.url ??= page?.url();
    } catch {
      // no page
    }
  }
  if (screenshotPath && page) {
    try {
      await page.screenshot({ path: screenshotPath, fullPage: true, timeout: 3000 });
    } catch (e) {
      console.error(`screenshot failed: ${e.message}`);
    }
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  try {
    await Promise.race([browser?.close(), new Promise((r) => { setTimeout(r, 3000).unref(); })]);
  } catch {
    // killed on exit anyway
  }
  cleanupProfile();
  process.exit(result.ok ? 0 : 1);
}

export function failWith(message) {
  return finish({ ok: false, error: message });
}

const hardStop = setTimeout(() => {
  failWith(`timed out after ${TIMEOUT_MS} ms`);
  // If even that hangs, go.
  setTimeout(() => {
    cleanupProfile();
    process.exit(1);
  }, 5000).unref();
}, TIMEOUT_MS);
hardStop.unref();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => failWith(`stopped by ${signal}`));
}
process.on('unhandledRejection', (e) => failWith(`unhandled: ${e?.message ?? e}`));

export function isLoopback(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (['data:', 'blob:', 'about:'].includes(u.protocol)) return true;
  return /^127\.\d+\.\d+\.\d+$/.test(u.hostname) || u.hostname === 'localhost';
}

// A new browser with a fresh, empty profile, and one page in it.
export async function openPage({ screenshot } = {}) {
  screenshotPath = screenshot;
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'doorman-chromium-'));
  // launchPersistentContext takes our empty profile directory.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    timeout: TIMEOUT_MS,
    viewport: { width: 900, height: 700 },
    env: { ...process.env, CHROME_DEVEL_SANDBOX: '' },
  });
  browser = context;
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (isLoopback(url)) return route.continue();
    console.error(`blocked request to ${url}`);
    return route.abort('blockedbyclient');
  });
  page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.setDefaultNavigationTimeout(TIMEOUT_MS);
  page.on('console', (m) => console.error(`[console ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  return page;
}

// Runs `body` and turns its result or exception into the result line.
export function run(body) {
  body().then(
    (result) => finish({ ok: true, ...result }),
    (e) => failWith(e?.message?.split('\n')[0] ?? String(e)),
  );
}

// The text of the first element matching `selector` right now, or null; never
// waits (a page navigating away just gives null).
export async function peek(page, selector) {
  try {
    return await page.evaluate((sel) => {
      const el = document.querySelector(sel);
      return el ? (el.textContent ?? '').trim() : null;
    }, selector);
  } catch {
    return null;
  }
}

export const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

/** Whether `selector` matches a visible element now (waits at most 200 ms). */
export async function visible(page, selector) {
  try {
    return await page.locator(selector).first().isVisible({ timeout: 200 });
  } catch {
    return false;
  }
}
