import { launch, startServer, openPage, ROOT } from './harness.mjs';
import { join } from 'node:path';
const server = await startServer();
const browser = await launch({ webgpu: false });
try {
  const { page } = await openPage(browser, `${server.url}?backend=cpu`);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.waitForSelector('body[data-ready=true]');
  await page.setInputFiles('#file', join(ROOT, 'data/test.tsv'));
  await page.waitForFunction(() => document.body.dataset.classified === '1662', null, { timeout: 0 });
  await page.waitForFunction(() => /200 /.test(document.getElementById('top-tokens-note').textContent), null, { timeout: 0 });
  const o = await page.evaluate(() => ({
    counts: [...document.querySelectorAll('#label-counts li')].map((li) => li.textContent),
    bins: document.getElementById('chart-confidence').dataset.bins,
    tokens: [...document.querySelectorAll('.token-list')].map((d) => d.textContent),
    note: document.getElementById('top-tokens-note').textContent,
    count: document.getElementById('result-count').textContent,
    status: document.getElementById('status').textContent,
  }));
  console.log(JSON.stringify(o, null, 1));
  await page.screenshot({ path: '/tmp/overview.png', fullPage: false });
} finally { await browser.close(); server.close(); }
