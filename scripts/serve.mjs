#!/usr/bin/env node
// Serves the built demo (dist/) on 127.0.0.1 with a strict Content-Security-Policy, plus the
// widget test page at /widget-test/. No dependencies: node's http module only.
//
//   node scripts/serve.mjs [--port 8080] [--dist dist] [--cors]
//
// --cors adds `Access-Control-Allow-Origin: *`, so that pages on other origins can import
// widget.js / xinsheng.js and fetch the wasm and the model from it, as from a CDN.
// Prints "serving http://127.0.0.1:PORT/" once listening (port 0 picks a free one).

import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const port = Number(option('port', process.env.PORT ?? 8080));
const cors = args.includes('--cors');
const mounts = [
  ['/widget-test/', resolve(root, 'tests/widget-page')],
  // The build again, with its .wasm served as application/octet-stream, as some hosts do
  // (the browser tests check that the engine still loads).
  ['/octet-stream-wasm/', resolve(root, option('dist', 'dist')), { '.wasm': 'application/octet-stream' }],
  ['/', resolve(root, option('dist', 'dist'))],
];

const CSP =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'";

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.bpk': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
};

async function fileFor(urlPath) {
  for (const [prefix, dir, types = {}] of mounts) {
    if (!urlPath.startsWith(prefix)) continue;
    const relative = normalize(decodeURIComponent(urlPath.slice(prefix.length)));
    const path = join(dir, relative);
    if (path !== dir && !path.startsWith(dir + sep)) return null; // no escaping the mount
    const info = await stat(path).catch(() => null);
    if (info?.isDirectory()) return { path: join(path, 'index.html'), types };
    if (info?.isFile()) return { path, types };
    return null;
  }
  return null;
}

const server = createServer(async (request, response) => {
  const urlPath = new URL(request.url, 'http://localhost').pathname;
  const found = await fileFor(urlPath).catch(() => null);
  const path = found?.path;
  const body = path && (await readFile(path).catch(() => null));
  if (!body) {
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    response.end(`not found: ${urlPath}\n`);
    return;
  }
  response.writeHead(200, {
    'content-type': found.types[extname(path)] ?? TYPES[extname(path)] ?? 'application/octet-stream',
    'content-security-policy': CSP,
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-cache',
    ...(cors ? { 'access-control-allow-origin': '*' } : {}),
  });
  response.end(body);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`serving http://127.0.0.1:${server.address().port}/`);
});
