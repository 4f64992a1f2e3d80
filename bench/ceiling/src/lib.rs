//! A well-written single-threaded f32 matrix multiply in wasm SIMD128, to measure the ceiling
//! the browser's CPU path could reach on this machine: `C[m×n] += A[m×k] · B[k×n]`, all
//! row-major, B packed once into panels of `NR` columns (our recurrence's weights are constant,
//! so a kernel may pack them ahead), A packed inside the call (it changes at every step),
//! a register-blocked `MR × NR` micro-kernel, and cache blocking over k (`KC`) and m (`MC`).
//!
//! The tile is 4 × 8: eight accumulators, two B vectors and four broadcasts of A fit the 16
//! vector registers V8 maps wasm's v128 values onto on x86-64. Tiles of twelve or more
//! accumulators (6×8, 4×12, 3×16, 5×8) measured about half as fast in Chromium 156 on this
//! machine (LLVM hoists all of a step's A broadcasts, so they spill); 4×8 and 2×16 were best,
//! 8×4 in between.
//!
//! Built twice (scripts/bench-ceiling): with `+simd128` the multiply-add is `f32x4_mul` then
//! `f32x4_add`; with `+simd128,+relaxed-simd` it is `f32x4_relaxed_madd`, which V8 lowers to
//! an FMA instruction where the CPU has one.
//!
//! Exports plain `extern "C"` functions over the module's memory (no wasm-bindgen):
//! `alloc_f32(len) -> ptr`, `packed_b_len(k, n)`, `pack_b(b, k, n, out)`,
//! `matmul(m, k, n, a, packed_b, c, reps)` and `tile() -> MR * 100 + NR`.

#![cfg(target_arch = "wasm32")]

use core::arch::wasm32::*;

/// Rows of the micro-kernel's tile (`CEILING_MR` at build time overrides it, for tuning).
const MR: usize = env_usize(option_env!("CEILING_MR"), 4);
/// v128 vectors per tile row; the tile is `NV * 4` columns wide (`CEILING_NV` overrides it).
const NV: usize = env_usize(option_env!("CEILING_NV"), 2);

const fn env_usize(value: Option<&str>, default: usize) -> usize {
    let Some(value) = value else { return default };
    let (bytes, mut i, mut n) = (value.as_bytes(), 0, 0);
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "CEILING_MR / CEILING_NV: a number");
        n = n * 10 + (bytes[i] - b'0') as usize;
        i += 1;
    }
    n
}
const NR: usize = NV * 4;
/// Depth of one pass over B's panels: a `KC × NR` panel (8 KiB) stays in L1.
const KC: usize = 256;
/// Rows of A per block: an `MC × KC` block of A (up to 96 KiB) stays in L2.
const MC: usize = 96;

#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(f32x4_mul(a, b), c)
    }
}

/// `C[R×NR] += A[R×kc] · Bpanel[kc×NR]`; `a` row stride `lda`, `c` row stride `ldc`, the panel
/// `NR` floats per k.
#[inline(always)]
unsafe fn micro<const R: usize>(kc: usize, a: *const f32, bp: *const f32, c: *mut f32, ldc: usize) {
    unsafe {
        let mut acc = [[f32x4_splat(0.0); NV]; R];
        for p in 0..kc {
            let mut b = [f32x4_splat(0.0); NV];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = v128_load(bp.add(p * NR + v * 4) as *const v128);
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = v128_load32_splat(a.add(p * R + i) as *const u32);
                for (v, av) in row.iter_mut().enumerate() {
                    *av = madd(ai, b[v], *av);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, av) in row.iter().enumerate() {
                let cp = c.add(i * ldc + v * 4) as *mut v128;
                v128_store(cp, f32x4_add(v128_load(cp), *av));
            }
        }
    }
}

/// Rows `i..i + r` (`r < MR`, `MR` at most 8) of one tile column: the remainder of m.
#[inline(never)]
unsafe fn micro_tail(r: usize, kc: usize, a: *const f32, bp: *const f32, c: *mut f32, ldc: usize) {
    unsafe {
        match r {
            1 => micro::<1>(kc, a, bp, c, ldc),
            2 => micro::<2>(kc, a, bp, c, ldc),
            3 => micro::<3>(kc, a, bp, c, ldc),
            4 => micro::<4>(kc, a, bp, c, ldc),
            5 => micro::<5>(kc, a, bp, c, ldc),
            6 => micro::<6>(kc, a, bp, c, ldc),
            7 => micro::<7>(kc, a, bp, c, ldc),
            _ => unreachable!(),
        }
    }
}

/// One `MC × KC` block of A, packed by `pack_a`.
static mut A_PACK: [f32; MC * KC] = [0.0; MC * KC];

/// Packs `mc × kc` of row-major A (row stride `lda`) into micro-panels of `MR` rows (the last
/// one the remainder), each stored k-major (`kc` steps of its rows' values), so the
/// micro-kernel reads A contiguously: panel `i / MR` starts at `out + i * kc`.
#[inline(never)]
unsafe fn pack_a(a: *const f32, lda: usize, mc: usize, kc: usize, out: *mut f32) {
    unsafe {
        let mut i = 0;
        while i < mc {
            let r = MR.min(mc - i);
            let panel = out.add(i * kc);
            for p in 0..kc {
                for q in 0..r {
                    *panel.add(p * r + q) = *a.add((i + q) * lda + p);
                }
            }
            i += r;
        }
    }
}

/// Floats of B packed for `pack_b`: `n / NR` panels of `k × NR`.
#[unsafe(no_mangle)]
pub extern "C" fn packed_b_len(k: usize, n: usize) -> usize {
    k * n
}

/// The tile, `MR * 100 + NR` (the benchmark reports it).
#[unsafe(no_mangle)]
pub extern "C" fn tile() -> usize {
    MR * 100 + NR
}

/// Whether this build multiplies and adds with relaxed-SIMD FMA.
#[unsafe(no_mangle)]
pub extern "C" fn relaxed() -> u32 {
    cfg!(target_feature = "relaxed-simd") as u32
}

/// A zeroed buffer of `len` floats, never freed (the benchmark allocates a few per shape).
#[unsafe(no_mangle)]
pub extern "C" fn alloc_f32(len: usize) -> *mut f32 {
    Box::leak(vec![0f32; len].into_boxed_slice()).as_mut_ptr()
}

/// Packs row-major `b[k×n]` into `n / NR` panels, panel `j` holding columns `j*NR..(j+1)*NR`
/// as `k` rows of `NR` floats. `n` must be a multiple of `NR` (returns 0 otherwise, else 1).
///
/// # Safety
/// `b` holds `k * n` floats and `out` `packed_b_len(k, n)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pack_b(b: *const f32, k: usize, n: usize, out: *mut f32) -> u32 {
    if !n.is_multiple_of(NR) {
        return 0;
    }
    unsafe {
        for j in 0..n / NR {
            for p in 0..k {
                for q in 0..NR {
                    *out.add((j * k + p) * NR + q) = *b.add(p * n + j * NR + q);
                }
            }
        }
    }
    1
}

/// `reps` times `C[m×n] += A[m×k] · B[k×n]`, B packed by `pack_b`. Returns 0 when `n` is not a
/// multiple of `NR`, else 1.
///
/// # Safety
/// `a` holds `m * k` floats, `packed_b` `packed_b_len(k, n)`, `c` `m * n`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn matmul(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    packed_b: *const f32,
    c: *mut f32,
    reps: u32,
) -> u32 {
    if !n.is_multiple_of(NR) {
        return 0;
    }
    unsafe {
        let ap = (&raw mut A_PACK).cast::<f32>();
        for _ in 0..reps {
            let mut k0 = 0;
            while k0 < k {
                let kc = KC.min(k - k0);
                let mut m0 = 0;
                while m0 < m {
                    let mc = MC.min(m - m0);
                    pack_a(a.add(m0 * k + k0), k, mc, kc, ap);
                    for j in 0..n / NR {
                        let bp = packed_b.add((j * k + k0) * NR);
                        let mut i = 0;
                        while i + MR <= mc {
                            micro::<MR>(kc, ap.add(i * kc), bp, c.add((m0 + i) * n + j * NR), n);
                            i += MR;
                        }
                        if i < mc {
                            micro_tail(mc - i, kc, ap.add(i * kc), bp, c.add((m0 + i) * n + j * NR), n);
                        }
                    }
                    m0 += mc;
                }
                k0 += kc;
            }
        }
    }
    1
}
