//! Tests for `rewind::plot::plot_sweep` on synthetic sweep directories: the
//! expected files are written, decodable and carry their text; a single run
//! works; runs without metrics are skipped; a malformed summary is an error
//! naming the file and line.
//!
//! Set `REWIND_KEEP_PLOTS=1` to keep the directories (their paths are printed)
//! for looking at the figures.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rewind::plot::plot_sweep;

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() > 33, "PNG too short: {} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "first chunk is not IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// The (trimmed) contents of every `<text>` element of an SVG file.
fn svg_texts(path: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(svg.starts_with("<svg"), "not an SVG: {}", path.display());
    svg.split("<text")
        .skip(1)
        .filter_map(|chunk| {
            let body = &chunk[chunk.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

fn assert_has_texts(path: &Path, wanted: &[&str]) {
    let texts = svg_texts(path);
    for w in wanted {
        assert!(
            texts.iter().any(|t| t == w),
            "{} has no text {w:?}; texts: {texts:?}",
            path.display()
        );
    }
}

/// A temporary directory, kept (and printed) when REWIND_KEEP_PLOTS is set.
struct Dir {
    _tmp: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Dir {
    fn new(name: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("plot_sweep_{name}_"))
            .tempdir()
            .unwrap();
        let path = tmp.path().to_path_buf();
        if std::env::var_os("REWIND_KEEP_PLOTS").is_some() {
            eprintln!("{name}: {}", path.display());
            let _ = tmp.keep();
            Self { _tmp: None, path }
        } else {
            Self {
                _tmp: Some(tmp),
                path,
            }
        }
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

/// Deterministic noise in [-1, 1].
fn noise(i: u64) -> f64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x % 20_001) as f64 / 10_000.0 - 1.0
}

struct Grid<'a> {
    lrs: &'a [&'a str],
    divergences: &'a [&'a str],
    signed: &'a [&'a str],
    seeds: &'a [u64],
    stages: &'a [&'a str],
    steps_per_stage: u64,
    /// Runs (by index) whose metrics.csv is not written.
    without_metrics: &'a [usize],
}

const SPLITS: [&str; 3] = ["val", "test", "long"];

/// Writes summary.csv and every run's metrics.csv for a full grid; returns the run labels.
fn write_sweep(dir: &Path, g: &Grid) -> Vec<String> {
    let mut header = vec!["run_id".to_string(), "index".into()];
    if !g.lrs.is_empty() {
        header.push("axis:stages.0.lr".into());
    }
    if !g.divergences.is_empty() {
        header.push("axis:stages.1.objective.divergence".into());
    }
    if !g.signed.is_empty() {
        header.push("axis:data.signed".into());
    }
    header.push("axis:experiment.seed".into());
    header.push("seed".into());
    header.extend(SPLITS.iter().map(|s| format!("final:{s}")));
    for st in g.stages {
        header.extend(SPLITS.iter().map(|s| format!("after:{st}:{s}")));
    }
    header.extend(
        [
            "val_loss",
            "wall_s",
            "ms_per_step",
            "tokens_per_s",
            "num_params",
            "git_commit",
            "rewind_version",
        ]
        .map(String::from),
    );
    let mut csv = header.join(",") + "\n";
    let or_one = |v: &[&str]| -> Vec<String> {
        if v.is_empty() {
            vec![String::new()]
        } else {
            v.iter().map(|s| s.to_string()).collect()
        }
    };
    let mut labels = Vec::new();
    let mut index = 0;
    for lr in or_one(g.lrs) {
        for div in or_one(g.divergences) {
            for signed in or_one(g.signed) {
                for &seed in g.seeds {
                    let id = format!("r{index:03}-s{seed}");
                    let lr_v: f64 = lr.parse().unwrap_or(0.001);
                    // Accuracy rises with lr, kl is better than tv, signed is harder.
                    let quality = (lr_v.log10() + 4.0) / 3.0
                        + if div == "tv" { -0.15 } else { 0.0 }
                        + if signed == "true" { -0.1 } else { 0.0 };
                    let acc = |split: usize, stage: usize| -> f64 {
                        let base = (0.35 + 0.5 * quality - 0.2 * split as f64
                            + 0.25 * stage as f64
                            + 0.04 * noise(index * 31 + split as u64 * 7 + stage as u64))
                        .clamp(0.0, 1.0);
                        (base * 100.0).round() / 100.0
                    };
                    let mut row: Vec<String> = vec![id.clone(), index.to_string()];
                    let mut label = Vec::new();
                    if !g.lrs.is_empty() {
                        row.push(lr.clone());
                        label.push(format!("lr={lr}"));
                    }
                    if !g.divergences.is_empty() {
                        row.push(div.clone());
                        label.push(format!("divergence={div}"));
                    }
                    if !g.signed.is_empty() {
                        row.push(signed.clone());
                        label.push(format!("signed={signed}"));
                    }
                    label.push(format!("seed={seed}"));
                    labels.push(label.join(" "));
                    row.push(seed.to_string());
                    row.push(seed.to_string());
                    let last = g.stages.len() - 1;
                    for s in 0..SPLITS.len() {
                        // One missing cell: a metric not measured.
                        if index == 1 && s == 2 {
                            row.push(String::new());
                        } else {
                            row.push(format!("{}", acc(s, last)));
                        }
                    }
                    for st in 0..g.stages.len() {
                        for s in 0..SPLITS.len() {
                            if index == 1 && st == 0 && s == 2 {
                                row.push(String::new());
                            } else {
                                row.push(format!("{}", acc(s, st)));
                            }
                        }
                    }
                    row.extend(
                        [
                            "0.05",
                            "12.5",
                            "3.1",
                            "12000",
                            "426596",
                            "9d81ee922b6c",
                            "0.1.0",
                        ]
                        .map(String::from),
                    );
                    csv += &(row.join(",") + "\n");
                    if !g.without_metrics.contains(&(index as usize)) {
                        write_metrics(&dir.join(&id), g, index, quality, &acc);
                    }
                    index += 1;
                }
            }
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("summary.csv"), csv).unwrap();
    labels
}

fn write_metrics(
    run_dir: &Path,
    g: &Grid,
    index: u64,
    quality: f64,
    acc: &dyn Fn(usize, usize) -> f64,
) {
    std::fs::create_dir_all(run_dir).unwrap();
    let mut csv = String::from("stage,step,split,metric,value,elapsed_s\n");
    let mut step = 0u64;
    let eval_every = (g.steps_per_stage / 4).max(1);
    for (st, stage) in g.stages.iter().enumerate() {
        for _ in 0..g.steps_per_stage {
            step += 1;
            let t = step as f64;
            let loss = 4.0 * (-t * (0.004 + 0.01 * quality.max(0.05))).exp()
                + 0.02
                + 0.3 * noise(index * 100_003 + step).abs() * (-t / 200.0).exp();
            let el = t * 0.1;
            writeln!(csv, "{stage},{step},train,loss,{loss},{el}").unwrap();
            if step.is_multiple_of(eval_every) {
                let frac =
                    (step as f64 / (g.steps_per_stage * g.stages.len() as u64) as f64).min(1.0);
                let em = (acc(0, st) * frac.sqrt()).clamp(0.0, 1.0);
                writeln!(csv, "{stage},{step},val,exact_match,{em},{el}").unwrap();
                writeln!(csv, "{stage},{step},val,loss,{},{el}", loss * 1.1).unwrap();
            }
        }
        for (s, split) in SPLITS.iter().enumerate() {
            writeln!(
                csv,
                "{stage},{step},{split},exact_match,{},{}",
                acc(s, st),
                step as f64 * 0.1
            )
            .unwrap();
        }
    }
    std::fs::write(run_dir.join("metrics.csv"), csv).unwrap();
}

fn names(written: &[PathBuf], dir: &Path) -> BTreeSet<String> {
    written
        .iter()
        .map(|p| {
            assert_eq!(p.parent().unwrap(), dir.join("plots"));
            p.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect()
}

fn check_files(written: &[PathBuf]) {
    for path in written {
        let len = std::fs::metadata(path).unwrap().len();
        assert!(len > 1000, "{} is only {len} bytes", path.display());
        match path.extension().unwrap().to_str().unwrap() {
            "png" => {
                let (w, h) = png_size(path);
                assert!(w >= 300 && h >= 150, "{}: {w}x{h}", path.display());
                // The SVG twin has the same size.
                let svg = std::fs::read_to_string(path.with_extension("svg")).unwrap();
                assert!(
                    svg.contains(&format!("width=\"{w}\""))
                        && svg.contains(&format!("height=\"{h}\"")),
                    "{} and its SVG differ in size",
                    path.display()
                );
            }
            "svg" => assert!(!svg_texts(path).is_empty()),
            other => panic!("unexpected file type {other}"),
        }
    }
}

#[test]
fn grid_sweep_writes_every_figure() {
    let dir = Dir::new("grid");
    let labels = write_sweep(
        dir.path(),
        &Grid {
            lrs: &["0.001", "0.01"],
            divergences: &["kl", "tv"],
            signed: &[],
            seeds: &[1, 2],
            stages: &["pretrain", "finetune"],
            steps_per_stage: 60,
            without_metrics: &[5],
        },
    );
    assert_eq!(labels.len(), 8);
    let written = plot_sweep(dir.path()).unwrap();
    let expected: BTreeSet<String> = [
        "curves",
        "axis_stages_0_lr",
        "axis_stages_0_lr_forgetting",
        "axis_stages_1_objective_divergence",
        "axis_stages_1_objective_divergence_forgetting",
        "forgetting",
    ]
    .iter()
    .flat_map(|s| [format!("{s}.png"), format!("{s}.svg")])
    .collect();
    assert_eq!(names(&written, dir.path()), expected);
    check_files(&written);
    let plots = dir.path().join("plots");

    // Curves: one legend entry per run with metrics (run 5 has none).
    let curves = plots.join("curves.svg");
    assert_has_texts(
        &curves,
        &["step", "loss", "exact match", "Validation exact match"],
    );
    for (i, label) in labels.iter().enumerate() {
        let has = svg_texts(&curves).contains(label);
        assert_eq!(has, i != 5, "curves legend and {label:?}");
    }
    assert_eq!(png_size(&plots.join("curves.png")).1, 500);

    // lr: log axis, one line per divergence, three panels (val, test, long).
    let lr = plots.join("axis_stages_0_lr.svg");
    assert_has_texts(
        &lr,
        &[
            "stages.0.lr",
            "exact match",
            "divergence=kl",
            "divergence=tv",
            "0.001",
            "0.01",
            "Final exact match (val)",
            "Final exact match (test)",
            "Final exact match (long)",
            "band: min–max over seeds",
        ],
    );
    // Divergence: categorical axis labelled with the values, one line per lr.
    let div = plots.join("axis_stages_1_objective_divergence.svg");
    assert_has_texts(
        &div,
        &[
            "stages.1.objective.divergence",
            "kl",
            "tv",
            "lr=0.001",
            "lr=0.01",
        ],
    );

    // Forgetting: stages, splits, runs, values.
    let f = plots.join("forgetting.svg");
    let mut wanted = vec!["pretrain", "finetune", "val", "test", "long", "exact match"];
    wanted.extend(labels.iter().map(String::as_str));
    assert_has_texts(&f, &wanted);
    let summary = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    let first_after = summary.lines().nth(1).unwrap().split(',').nth(9).unwrap();
    let printed = format!("{:.2}", first_after.parse::<f64>().unwrap());
    assert_has_texts(&f, &[printed.as_str(), "–"]);
}

#[test]
fn many_runs_are_coloured_by_the_first_axis() {
    let dir = Dir::new("many");
    write_sweep(
        dir.path(),
        &Grid {
            lrs: &["0.0003", "0.001", "0.003"],
            divergences: &["kl", "tv"],
            signed: &["true", "false"],
            seeds: &[0, 1],
            stages: &["pretrain", "uft"],
            steps_per_stage: 40,
            without_metrics: &[],
        },
    );
    let written = plot_sweep(dir.path()).unwrap();
    assert_eq!(written.len(), 16); // curves, 3 axes x (success, forgetting), forgetting
    check_files(&written);
    let plots = dir.path().join("plots");
    assert_has_texts(
        &plots.join("curves.svg"),
        &["colour = lr (24 runs)", "lr=0.0003", "lr=0.001", "lr=0.003"],
    );
    // Booleans are categories too.
    assert_has_texts(
        &plots.join("axis_data_signed.svg"),
        &["data.signed", "false", "true"],
    );
}

#[test]
fn single_run_gives_curves_and_forgetting() {
    let dir = Dir::new("single");
    let run = dir.path().join("s0-abc");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        dir.path().join("summary.csv"),
        "run_id,index,seed,final:val,final:test,after:pretrain:val,after:pretrain:test,val_loss,wall_s\n\
         s0-abc,0,0,0.97,0.95,0.97,0.95,0.01,3.0\n",
    )
    .unwrap();
    std::fs::write(
        run.join("metrics.csv"),
        "stage,step,split,metric,value,elapsed_s\n\
         pretrain,1,train,loss,3.0,0.1\n\
         pretrain,2,train,loss,2.0,0.2\n\
         pretrain,3,train,loss,1.0,0.3\n\
         pretrain,3,val,exact_match,0.97,0.3\n\
         pretrain,3,test,exact_match,0.95,0.3\n",
    )
    .unwrap();
    let written = plot_sweep(dir.path()).unwrap();
    let expected: BTreeSet<String> = [
        "curves.png",
        "curves.svg",
        "forgetting.png",
        "forgetting.svg",
    ]
    .map(String::from)
    .into();
    assert_eq!(names(&written, dir.path()), expected);
    check_files(&written);
    let plots = dir.path().join("plots");
    assert_has_texts(&plots.join("curves.svg"), &["s0-abc"]);
    assert_has_texts(
        &plots.join("forgetting.svg"),
        &["s0-abc", "pretrain", "0.97", "0.95"],
    );

    // Without metrics.csv the run is skipped, not fatal; with no run left
    // (a committed sweep's findings in a fresh clone) the curves drawn
    // before are kept, not replaced by an empty figure.
    std::fs::remove_file(run.join("metrics.csv")).unwrap();
    let written = plot_sweep(dir.path()).unwrap();
    let expected: BTreeSet<String> = ["forgetting.png", "forgetting.svg"]
        .map(String::from)
        .into();
    assert_eq!(names(&written, dir.path()), expected);
    assert_has_texts(&plots.join("curves.svg"), &["s0-abc"]);
}

#[test]
fn two_stage_sweep_with_timings_plots_forgetting_and_the_tradeoff() {
    let dir = Dir::new("tradeoff");
    // two runs per lr (seeds); success after stage 1 (search) and the last
    // (ft), and each probe's seconds per problem
    let mut text = String::from(
        "run_id,index,axis:stages.1.lr,seed,final:test/greedy,final:test/beam5,\
         after:search:test/greedy,after:search:test/beam5,after:ft:test/greedy,after:ft:test/beam5,\
         seconds_per_problem:test/greedy,seconds_per_problem:test/beam5\n",
    );
    for (i, (lr, seed, g, b)) in [
        ("0.0001", 0, 0.30, 0.50),
        ("0.0001", 1, 0.32, 0.48),
        ("0.001", 0, 0.45, 0.20),
        ("0.001", 1, 0.47, 0.22),
    ]
    .into_iter()
    .enumerate()
    {
        text += &format!("r{i},{i},{lr},{seed},{g},{b},0.1,0.6,{g},{b},0.002,0.05\n");
    }
    std::fs::write(dir.path().join("summary.csv"), text).unwrap();
    let written = plot_sweep(dir.path()).unwrap();
    let names = names(&written, dir.path());
    for stem in [
        "axis_stages_1_lr",
        "axis_stages_1_lr_forgetting",
        "axis_stages_1_lr_seconds_per_problem",
        "tradeoff",
        "forgetting",
    ] {
        assert!(names.contains(&format!("{stem}.svg")), "{stem}: {names:?}");
    }
    check_files(&written);
    let plots = dir.path().join("plots");
    assert_has_texts(
        &plots.join("axis_stages_1_lr_forgetting.svg"),
        &["Forgetting (test/beam5)", "Forgetting (test/greedy)"],
    );
    assert_has_texts(
        &plots.join("tradeoff.svg"),
        &["test/greedy", "test/beam5", "seconds per problem (log)"],
    );
}

#[test]
fn malformed_summary_is_an_error_naming_file_and_line() {
    let dir = Dir::new("bad");
    let summary = dir.path().join("summary.csv");
    let cases = [
        (
            "run_id,index,axis:stages.0.lr,final:val\na,0,0.001,0.5\nb,1,0.01,abc\n",
            "line 3",
        ),
        (
            "run_id,index,axis:stages.0.lr,final:val\na,0,0.001\n",
            "line 2",
        ),
        ("run_id,index,final:val\na,zero,0.5\n", "line 2"),
        ("index,final:val\n0,0.5\n", "run_id"),
        (
            "run_id,after:pretrain,final:val\na,0.5,0.5\n",
            "after:pretrain",
        ),
        ("", "empty"),
        ("run_id,final:val\n", "no runs"),
    ];
    for (content, needle) in cases {
        std::fs::write(&summary, content).unwrap();
        let err = format!("{:#}", plot_sweep(dir.path()).unwrap_err());
        assert!(err.contains("summary.csv"), "{err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    std::fs::remove_file(&summary).unwrap();
    let err = format!("{:#}", plot_sweep(dir.path()).unwrap_err());
    assert!(err.contains("summary.csv"), "{err}");
}

#[test]
fn seed_replicates_are_coloured_by_configuration() {
    let dir = Dir::new("seeds");
    write_sweep(
        dir.path(),
        &Grid {
            lrs: &["0.001", "0.003"],
            divergences: &[],
            signed: &[],
            seeds: &[0, 1, 2, 3, 4],
            stages: &["pretrain"],
            steps_per_stage: 40,
            without_metrics: &[],
        },
    );
    let written = plot_sweep(dir.path()).unwrap();
    assert_eq!(written.len(), 6); // curves, lr, forgetting
    check_files(&written);
    let plots = dir.path().join("plots");
    assert_has_texts(
        &plots.join("curves.svg"),
        &["colour = configuration (10 runs)", "lr=0.001", "lr=0.003"],
    );
    // No other axis: a single line, the mean over the five seeds (four
    // where run 1's final:long is empty).
    assert_has_texts(
        &plots.join("axis_stages_0_lr.svg"),
        &[
            "all runs",
            "line: mean over seeds (n=4–5)",
            "0.001",
            "0.003",
        ],
    );
    assert_has_texts(
        &plots.join("forgetting.svg"),
        &["pretrain", "lr=0.003 seed=4"],
    );
}
