// TEMPORARY: gemm timings for the model's matmul shapes.
use std::time::Instant;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let threads: usize = a.get(1).map(|s| s.parse().unwrap()).unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
    // (m, k, n, ta, tb)
    let shapes = [
        (1088, 128, 384, false, false), (1088, 128, 128, false, false), (1088, 128, 512, false, false), (1088, 512, 128, false, false),
        (1088, 128, 100, false, false),
        (128, 1088, 512, true, false), (512, 1088, 128, true, false), (1088, 128, 512, false, true), (1088, 512, 128, false, true),
        (4096, 256, 768, false, false), (4096, 256, 1024, false, false), (4096, 1024, 256, false, false),
        (256, 4096, 1024, true, false), (1024, 4096, 256, true, false), (4096, 1024, 256, false, true), (4096, 256, 1024, false, true),
        (2048, 2048, 2048, false, false),
    ];
    for (m, k, n, ta, tb) in shapes {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.01).collect();
        let y: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.01).collect();
        let mut c = vec![0.0f32; m * n];
        let reps = (2e9 / (2.0 * (m * k * n) as f64)).max(3.0) as usize;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t0 = Instant::now();
            for _ in 0..reps { rewind::bench::tmp_matmul(&mut c, &x, &y, (m, k, n), (ta, tb)); }
            best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
        }
        println!("{m}x{k}x{n} ta={ta} tb={tb}: {:.3} ms {:.1} GFLOP/s", best * 1e3, 2.0 * (m * k * n) as f64 / best * 1e-9);
    }
    });
}
