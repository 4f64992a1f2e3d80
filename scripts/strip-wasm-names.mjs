#!/usr/bin/env node
// Drops the `name` custom section (function names for stack traces, about a quarter of the
// gzipped download) from a .wasm file, in place; every other byte stays as it was.
// binaryen's wasm-opt would strip it too, but Debian's version 108 breaks wasm-bindgen's
// externref table. Usage: node scripts/strip-wasm-names.mjs FILE.wasm

import { readFileSync, writeFileSync } from 'node:fs';

const file = process.argv[2];
const wasm = readFileSync(file);
if (wasm.readUInt32LE(0) !== 0x6d736100) throw new Error(`${file}: not a WebAssembly module`);

function leb128(at) {
  let value = 0;
  let shift = 0;
  let byte;
  do {
    byte = wasm[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, at];
}

const kept = [wasm.subarray(0, 8)];
let dropped = 0;
for (let at = 8; at < wasm.length; ) {
  const start = at;
  const id = wasm[at++];
  const [size, body] = leb128(at);
  const end = body + size;
  let name = null;
  if (id === 0) {
    const [length, text] = leb128(body);
    name = wasm.subarray(text, text + length).toString('utf8');
  }
  if (name === 'name') dropped += end - start;
  else kept.push(wasm.subarray(start, end));
  at = end;
}
writeFileSync(file, Buffer.concat(kept));
console.log(`strip-wasm-names: ${file}: removed ${(dropped / 1048576).toFixed(2)} MB of function names`);
