#!/usr/bin/env node
// The machine's matmul ceiling (issue 13): the f32 GFLOP/s a well-written wasm SIMD128 matrix
// multiply (bench/ceiling/src/lib.rs, register-blocked 4×8 tile, B packed once) reaches on one
// core in headless Chromium, with plain SIMD (f32x4 mul + add) and with relaxed-SIMD FMA
// (f32x4.relaxed_madd, used where Chromium validates it), and natively the same for the gemm
// crate on one thread and on all cores (bench/ceiling/src/bin/ceiling-native.rs), on the shapes
// our recurrence uses. Each shape is checked against a naive triple loop before it is timed;
// figures are medians of 7 samples of at least 0.1 s after 0.2 s of warm-up.
// Prints a Markdown table, then one JSON line with all figures.
//
//   scripts/bench-ceiling [--shapes 64x128x384,16x128x384,4096x128x384,512x512x512]
//
// builds the two .wasm files and the native binary, then runs this script, which builds nothing:
//
//   cd bench/ceiling
//   RUSTFLAGS='-C target-feature=+simd128' cargo build --release --target wasm32-unknown-unknown \
//     --lib --target-dir ~/.cache/xinsheng/ceiling-target/simd128
//   RUSTFLAGS='-C target-feature=+simd128,+relaxed-simd' cargo build --release \
//     --target wasm32-unknown-unknown --lib --target-dir ~/.cache/xinsheng/ceiling-target/relaxed
//   cargo build --release --bin ceiling-native --target-dir ~/.cache/xinsheng/ceiling-target/native
//
// (CEILING_TARGET overrides ~/.cache/xinsheng/ceiling-target.)

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import { launch } from '../tests/browser/harness.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const shapesArg = option('shapes', '64x128x384,16x128x384,4096x128x384,512x512x512');
const shapes = shapesArg.split(',').map((s) => {
  const [m, k, n] = s.split('x').map(Number);
  return { m, k, n };
});
const WHAT = {
  '64x128x384': 'recurrent step, batch 64',
  '16x128x384': 'recurrent step, 16 active rows',
  '4096x128x384': 'input projection, 64 reviews × 64 tokens',
  '512x512x512': 'large square (peak)',
};

const TARGET = process.env.CEILING_TARGET ?? join(homedir(), '.cache/xinsheng/ceiling-target');
const WASM = {
  simd128: join(TARGET, 'simd128/wasm32-unknown-unknown/release/xinsheng_ceiling.wasm'),
  relaxed: join(TARGET, 'relaxed/wasm32-unknown-unknown/release/xinsheng_ceiling.wasm'),
};
const NATIVE = join(TARGET, 'native/release/ceiling-native');
for (const file of [...Object.values(WASM), NATIVE]) {
  if (!existsSync(file)) {
    console.error(`${file} is not built: run scripts/bench-ceiling (it builds bench/ceiling, then runs this script)`);
    process.exit(1);
  }
}

/** Runs in the page, on its main thread (one core, no workers). */
async function inPage({ modules, shapes, samples, sampleS, warmupS }) {
  // A module whose one function takes three v128 and returns `op` applied to them: the relaxed
  // probe uses f32x4.relaxed_madd (0xfd 0x105), the control v128.bitselect (0xfd 0x52).
  const probe = (op) => {
    const body = [0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, ...op, 0x0b];
    return new Uint8Array([
      ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
      ...[0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b],
      ...[0x03, 0x02, 0x01, 0x00],
      ...[0x0a, body.length + 2, 0x01, body.length, ...body],
    ]);
  };
  // Let Chromium finish starting up first: without this pause the first shape measured in a
  // fresh page moved between 22 and 44 GFLOP/s from run to run, the later ones did not.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const simd = WebAssembly.validate(probe([0xfd, 0x52]));
  const relaxed = WebAssembly.validate(probe([0xfd, 0x85, 0x02]));
  if (!simd) throw new Error('this browser does not validate wasm SIMD128');

  const bytes = (b64) => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  // Deterministic values in [-1, 1).
  let seed = 1;
  const fill = (view) => {
    for (let i = 0; i < view.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      view[i] = (seed / 2 ** 32) * 2 - 1;
    }
  };
  const results = { simd, relaxed, userAgent: navigator.userAgent, cores: navigator.hardwareConcurrency, variants: {} };
  for (const variant of relaxed ? ['simd128', 'relaxed'] : ['simd128']) {
    const { instance } = await WebAssembly.instantiate(bytes(modules[variant]));
    const x = instance.exports;
    if (x.relaxed() !== (variant === 'relaxed' ? 1 : 0)) throw new Error(`${variant}: the module built the wrong way`);
    const rows = [];
    for (const { m, k, n } of shapes) {
      const [a, b, pb, c] = [m * k, k * n, x.packed_b_len(k, n), m * n].map((len) => [x.alloc_f32(len), len]);
      // Views after the allocations (growing memory detaches earlier ones).
      const view = ([ptr, len]) => new Float32Array(x.memory.buffer, ptr, len);
      const [A, B, C] = [view(a), view(b), view(c)];
      fill(A);
      fill(B);
      fill(C);
      if (!x.pack_b(b[0], k, n, pb[0])) throw new Error(`${m}×${k}×${n}: n must be a multiple of the tile width`);
      // Correctness: C += A·B once, against a naive triple loop in f64.
      const c0 = Float64Array.from(C);
      x.matmul(m, k, n, a[0], pb[0], c[0], 1);
      let err = 0;
      let scale = 0;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = c0[i * n + j];
          for (let p = 0; p < k; p++) s += A[i * k + p] * B[p * n + j];
          err = Math.max(err, Math.abs(C[i * n + j] - s));
          scale = Math.max(scale, Math.abs(s));
        }
      }
      const relErr = err / scale;
      if (!(relErr <= 1e-4)) {
        throw new Error(`wasm ${variant} ${m}×${k}×${n}: relative error ${relErr} against the naive triple loop (limit 1e-4)`);
      }
      const time = (reps) => {
        const t = performance.now();
        x.matmul(m, k, n, a[0], pb[0], c[0], reps);
        return (performance.now() - t) / 1000;
      };
      // Warm-up (also lets V8 tier the module up from Liftoff to TurboFan: a call's loop never
      // switches tiers, later calls do), then the repetitions that make one sample last sampleS.
      let reps = 1;
      const start = performance.now();
      for (;;) {
        const s = time(reps);
        if ((performance.now() - start) / 1000 >= warmupS && s >= sampleS / 4) {
          reps = Math.max(1, Math.ceil((reps * sampleS) / s));
          break;
        }
        if (s < sampleS / 4) reps *= 2;
      }
      const rates = [];
      for (let i = 0; i < samples; i++) rates.push((2 * m * n * k * reps) / time(reps) / 1e9);
      rates.sort((p, q) => p - q);
      rows.push({ m, k, n, gflops: rates[Math.floor(samples / 2)], min: rates[0], max: rates[samples - 1], relErr });
    }
    results.variants[variant] = { tile: x.tile(), shapes: rows };
  }
  return results;
}

// Other work on the machine lowers every figure: the 1-minute load average before and after.
const loadBefore = loadavg()[0];
const browser = await launch({ webgpu: false });
let wasm;
try {
  const page = await browser.newPage();
  await page.setContent('<!doctype html><meta charset="utf-8"><title>ceiling</title>');
  const modules = Object.fromEntries(Object.entries(WASM).map(([k, f]) => [k, readFileSync(f).toString('base64')]));
  wasm = await page.evaluate(inPage, { modules, shapes, samples: 7, sampleS: 0.1, warmupS: 0.2 });
  wasm.chromium = browser.version();
} finally {
  await browser.close();
}
const native = JSON.parse(execFileSync(NATIVE, ['--shapes', shapesArg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));

const loadAfter = loadavg()[0];
const fmt = (x) => (x === undefined ? '—' : x.toFixed(1));
const key = ({ m, k, n }) => `${m}x${k}x${n}`;
const find = (rows, s) => rows?.find((r) => key(r) === key(s));
console.log(
  `Chromium ${wasm.chromium}, ${wasm.cores} cores; wasm tile ${Math.floor(wasm.variants.simd128.tile / 100)}×${wasm.variants.simd128.tile % 100}; relaxed SIMD ${wasm.relaxed ? 'validated' : 'not validated (plain SIMD only)'}; gemm ${native.gemm}, ${native.threads} threads; load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after\n`,
);
console.log(`| m×k×n | what | wasm SIMD128, 1 core | wasm relaxed SIMD (FMA), 1 core | native gemm, 1 thread | native gemm, ${native.threads} threads |`);
console.log('|---|---|---|---|---|---|');
for (const s of shapes) {
  const n = find(native.shapes, s);
  console.log(
    `| ${s.m}×${s.k}×${s.n} | ${WHAT[key(s)] ?? ''} | ${fmt(find(wasm.variants.simd128.shapes, s)?.gflops)} | ${fmt(find(wasm.variants.relaxed?.shapes, s)?.gflops)} | ${fmt(n?.gemm_1_thread)} | ${fmt(n?.gemm_all_threads)} |`,
  );
}
console.log('\n(GFLOP/s = 2·m·n·k / s, medians)\n');
console.log(JSON.stringify({ date: new Date().toISOString(), load: [loadBefore, loadAfter], wasm, native }));
