//! The native side of the ceiling benchmark: GFLOP/s of the `gemm` crate (the version the
//! main workspace uses) for `C[m×n] += A[m×k] · B[k×n]`, row-major, on one thread
//! (`Parallelism::None`, as our recurrence calls it) and on all cores (`Parallelism::Rayon(0)`).
//! Each shape is checked against a naive triple loop first; timing is the median of 7 samples of
//! at least 0.1 s each, after 0.2 s of warm-up. Prints one JSON object to stdout.
//!
//!   ceiling-native [--shapes 64x128x384,16x128x384,...]   (m×k×n)

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use gemm::Parallelism;
    use std::time::Instant;

    const DEFAULT_SHAPES: &str = "64x128x384,16x128x384,4096x128x384,512x512x512";
    const SAMPLES: usize = 7;
    const SAMPLE_S: f64 = 0.1;
    const WARMUP_S: f64 = 0.2;

    /// Deterministic values in [-1, 1).
    fn fill(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn run(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], par: Parallelism) {
        // SAFETY: a is m×k, b k×n, c m×n, all row-major and contiguous.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                true,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                par,
            )
        }
    }

    /// Max |c - naive| / max |naive|, naive = c0 + a·b accumulated in f64.
    fn check(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c0: &[f32], c: &[f32]) -> f64 {
        let (mut err, mut scale) = (0f64, 0f64);
        for i in 0..m {
            for j in 0..n {
                let mut s = c0[i * n + j] as f64;
                for p in 0..k {
                    s += a[i * k + p] as f64 * b[p * n + j] as f64;
                }
                err = err.max((c[i * n + j] as f64 - s).abs());
                scale = scale.max(s.abs());
            }
        }
        err / scale
    }

    fn gflops(m: usize, k: usize, n: usize, par: Parallelism) -> f64 {
        let a = fill(m * k, 1);
        let b = fill(k * n, 2);
        let c0 = fill(m * n, 3);
        let mut c = c0.clone();
        run(m, k, n, &a, &b, &mut c, par);
        let err = check(m, k, n, &a, &b, &c0, &c);
        if err.is_nan() || err > 1e-4 {
            eprintln!("gemm {m}×{k}×{n}: relative error {err:e} against the naive triple loop (limit 1e-4)");
            std::process::exit(1);
        }
        let time = |reps: u64, c: &mut [f32]| {
            let t = Instant::now();
            for _ in 0..reps {
                run(m, k, n, &a, &b, c, par);
            }
            t.elapsed().as_secs_f64()
        };
        // Warm-up, and the repetitions that make one sample last SAMPLE_S.
        let mut reps = 1u64;
        let start = Instant::now();
        loop {
            let s = time(reps, &mut c);
            if start.elapsed().as_secs_f64() >= WARMUP_S && s >= SAMPLE_S / 4.0 {
                reps = ((reps as f64 * SAMPLE_S / s).ceil() as u64).max(1);
                break;
            }
            reps *= 2;
        }
        let mut rates: Vec<f64> =
            (0..SAMPLES).map(|_| 2.0 * (m * n * k) as f64 * reps as f64 / time(reps, &mut c) / 1e9).collect();
        rates.sort_by(|x, y| x.total_cmp(y));
        std::hint::black_box(&c);
        rates[SAMPLES / 2]
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        let shapes = args
            .iter()
            .position(|a| a == "--shapes")
            .map(|i| args[i + 1].clone())
            .unwrap_or_else(|| DEFAULT_SHAPES.into());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut rows = Vec::new();
        for shape in shapes.split(',') {
            let dims: Vec<usize> = shape.split('x').map(|d| d.parse().expect("shape m×k×n")).collect();
            let [m, k, n] = dims[..] else { panic!("shape {shape}: want MxKxN") };
            let one = gflops(m, k, n, Parallelism::None);
            let all = gflops(m, k, n, Parallelism::Rayon(0));
            rows.push(format!(r#"{{"m":{m},"k":{k},"n":{n},"gemm_1_thread":{one:.2},"gemm_all_threads":{all:.2}}}"#));
        }
        println!(
            r#"{{"gemm":"0.19.0","threads":{threads},"samples":{SAMPLES},"sample_s":{SAMPLE_S},"shapes":[{}]}}"#,
            rows.join(",")
        );
    }
}
