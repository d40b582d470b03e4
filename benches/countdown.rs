//! Countdown / Game-of-24 benchmarks.
//!
//! - `countdown_solver/countdown_random_1000`: the exact solver on 1000
//!   random Countdown instances (4 numbers in 1..=99, target 10..=100,
//!   solvable or not), drawn with SplitMix64 from seed 2024 exactly as
//!   `benches/python/countdown_bench.py` draws them.
//! - `countdown_solver/game24_all_1820`: the solver on all 1820 Game-of-24
//!   multisets (exact rationals).
//! - `countdown_trace/search_mix_1000`: one trace per solvable Countdown
//!   instance with a strategy drawn from the paper's random mix.
//! - `countdown_trace/paths_mix_1000`: the same plus rendering the
//!   successful path and up to 3 failed paths as text.
//!
//! Run: `cargo bench --bench countdown`; side by side with Python:
//! `python3 benches/python/countdown_bench.py --compare`.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;

use rewind::tasks::countdown::path::render_completion;
use rewind::tasks::countdown::puzzle::{game24_multisets, sample_solvable, CountdownSpec};
use rewind::tasks::countdown::search::{self, StrategyMix};
use rewind::tasks::countdown::solver::{solve, Ratio};

/// SplitMix64, identical to the Python script's generator.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The shared random Countdown instances (also in the Python script).
fn random_instances(n: usize, seed: u64) -> Vec<(Vec<i64>, i64)> {
    let mut r = SplitMix(seed);
    (0..n)
        .map(|_| {
            let nums: Vec<i64> = (0..4).map(|_| 1 + (r.next() % 99) as i64).collect();
            let target = 10 + (r.next() % 91) as i64;
            (nums, target)
        })
        .collect()
}

fn solver(c: &mut Criterion) {
    let inst = random_instances(1000, 2024);
    let solvable = inst.iter().filter(|(n, t)| solve(n, *t).is_some()).count();
    let g24: Vec<Vec<Ratio>> = game24_multisets()
        .iter()
        .map(|m| m.iter().map(|&x| Ratio::int(x)).collect())
        .collect();
    let g24_solvable = g24
        .iter()
        .filter(|m| solve(m, Ratio::int(24)).is_some())
        .count();
    eprintln!(
        "countdown_random_1000: {solvable} solvable; game24_all_1820: {g24_solvable} solvable"
    );

    let mut g = c.benchmark_group("countdown_solver");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(inst.len() as u64));
    g.bench_function("countdown_random_1000", |b| {
        b.iter(|| {
            inst.iter()
                .filter(|(n, t)| solve(black_box(n), black_box(*t)).is_some())
                .count()
        })
    });
    g.throughput(Throughput::Elements(g24.len() as u64));
    g.bench_function("game24_all_1820", |b| {
        b.iter(|| {
            g24.iter()
                .filter(|m| solve(black_box(m), Ratio::int(24)).is_some())
                .count()
        })
    });
    g.finish();
}

fn traces(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let targets: Vec<i64> = (10..=100).collect();
    let inst: Vec<(Vec<i64>, i64)> = (0..1000)
        .map(|_| {
            let (i, _, _) = sample_solvable(
                &mut rng,
                &CountdownSpec::PAPER,
                &targets,
                &HashSet::new(),
                1_000_000,
            )
            .unwrap();
            (i.numbers, i.target)
        })
        .collect();
    let mix = StrategyMix::paper();

    let mut g = c.benchmark_group("countdown_trace");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(inst.len() as u64));
    g.bench_function("search_mix_1000", |b| {
        b.iter(|| {
            let mut rng = StdRng::seed_from_u64(1);
            let mut solved = 0;
            for (n, t) in &inst {
                let s = mix.sample(&mut rng);
                solved += search::run(black_box(n), *t, s, &mut rng).solved() as usize;
            }
            solved
        })
    });
    g.bench_function("paths_mix_1000", |b| {
        b.iter(|| {
            let mut rng = StdRng::seed_from_u64(1);
            let mut bytes = 0;
            for (n, t) in &inst {
                let s = mix.sample(&mut rng);
                let tr = search::run(black_box(n), *t, s, &mut rng);
                let to_r = |p: Vec<rewind::tasks::countdown::Move<i64>>| {
                    p.iter().map(|m| m.to_ratio()).collect::<Vec<_>>()
                };
                if let Some(p) = tr.success_path() {
                    bytes += render_completion(n, &to_r(p)).unwrap().len();
                }
                for f in tr.failed_paths().into_iter().take(3) {
                    bytes += render_completion(n, &to_r(f)).unwrap().len();
                }
            }
            bytes
        })
    });
    g.finish();
}

criterion_group!(benches, solver, traces);
criterion_main!(benches);
