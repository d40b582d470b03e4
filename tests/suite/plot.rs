//! Tests for `rewind::plot`: files are written, decodable, sized, and carry
//! their text; bad input is reported with the file name; degenerate data is
//! handled.

use std::path::Path;

use rewind::plot::{line_plot, panels, plot_training_run, Band, LinePlot, Series};

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
    assert!(
        svg.starts_with("<svg"),
        "not an SVG: {}",
        &svg[..svg.len().min(200)]
    );
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

const METRICS: &str = "\
stage,step,split,metric,value,elapsed_s
pretrain,0,train,loss,3.2,0.1
pretrain,0,train,lr,0.0,0.1
pretrain,100,train,loss,1.9,1.0
pretrain,100,val,loss,2.1,1.2
pretrain,100,val,exact_match,0.05,1.2
pretrain,100,test,exact_match,0.04,1.3
pretrain,200,train,loss,0.9,2.0
pretrain,200,val,loss,1.1,2.2
pretrain,200,val,exact_match,0.31,2.2
pretrain,200,test,exact_match,0.29,2.3
uft,300,train,loss,0.5,3.0
uft,300,val,loss,0.7,3.2
uft,300,val,exact_match,0.62,3.2
uft,300,test,exact_match,0.58,3.3
uft,300,long,exact_match,0.2,3.4
uft,400,train,loss,NaN,4.0
uft,400,val,loss,0.6,4.2
uft,400,val,exact_match,0.71,4.2
uft,400,test,exact_match,0.69,4.3
uft,400,long,exact_match,0.25,4.4
";

#[test]
fn training_run_writes_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("metrics.csv");
    std::fs::write(&csv, METRICS).unwrap();
    let out_dir = dir.path().join("figs/nested");
    let written = plot_training_run(&csv, &out_dir).unwrap();
    assert_eq!(
        written,
        vec![out_dir.join("training.png"), out_dir.join("training.svg")]
    );
    for path in &written {
        let len = std::fs::metadata(path).unwrap().len();
        assert!(len > 1000, "{} is only {len} bytes", path.display());
    }
    assert_eq!(png_size(&written[0]), (1200, 500));

    assert_has_texts(
        &written[1],
        &[
            "Loss",
            "Exact-match accuracy",
            "step",
            "loss",
            "exact match",
            "train",
            "val",
            "test",
            "long",
        ],
    );
    // lr is not plotted.
    assert!(!svg_texts(&written[1]).iter().any(|t| t == "lr"));
}

#[test]
fn missing_metrics_give_fewer_series() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("metrics.csv");
    std::fs::write(
        &csv,
        "stage,step,split,metric,value,elapsed_s\ns,1,train,loss,2.0,0.5\ns,2,train,loss,1.0,1.0\n",
    )
    .unwrap();
    let written = plot_training_run(&csv, dir.path()).unwrap();
    // The accuracy panel is empty and says so.
    assert_has_texts(&written[1], &["train", "no data", "exact match"]);
}

#[test]
fn malformed_csv_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad_metrics.csv");
    std::fs::write(
        &csv,
        "stage,step,split,metric,value,elapsed_s\ns,1,train,loss,2.0,0.5\ns,2,train,loss,abc,1.0\n",
    )
    .unwrap();
    let err = format!("{:#}", plot_training_run(&csv, dir.path()).unwrap_err());
    assert!(err.contains("bad_metrics.csv"), "{err}");
    assert!(err.contains("line 3"), "{err}");

    // Wrong number of fields.
    std::fs::write(
        &csv,
        "stage,step,split,metric,value,elapsed_s\ns,1,train,loss,2.0\n",
    )
    .unwrap();
    let err = format!("{:#}", plot_training_run(&csv, dir.path()).unwrap_err());
    assert!(
        err.contains("bad_metrics.csv") && err.contains("line 2"),
        "{err}"
    );

    // Missing column.
    std::fs::write(&csv, "stage,step,split,value\ns,1,train,2.0\n").unwrap();
    let err = format!("{:#}", plot_training_run(&csv, dir.path()).unwrap_err());
    assert!(
        err.contains("bad_metrics.csv") && err.contains("metric"),
        "{err}"
    );
}

#[test]
fn empty_csv_is_an_error_naming_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("empty_metrics.csv");
    for content in ["", "stage,step,split,metric,value,elapsed_s\n"] {
        std::fs::write(&csv, content).unwrap();
        let err = format!("{:#}", plot_training_run(&csv, dir.path()).unwrap_err());
        assert!(err.contains("empty_metrics.csv"), "{err}");
    }
    let missing = dir.path().join("nonexistent.csv");
    let err = format!("{:#}", plot_training_run(&missing, dir.path()).unwrap_err());
    assert!(err.contains("nonexistent.csv"), "{err}");
}

fn plot_with(series: Vec<Series>, log_y: bool) -> LinePlot {
    LinePlot {
        title: "Degenerate".into(),
        x_label: "x axis".into(),
        y_label: "y axis".into(),
        series,
        bands: vec![],
        log_y,
        y_range: None,
    }
}

#[test]
fn degenerate_series_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases = vec![
        ("single", vec![Series::new("one", vec![(3.0, 0.5)])]),
        (
            "flat",
            vec![Series::new(
                "flat",
                vec![(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)],
            )],
        ),
        (
            "zero",
            vec![Series::new("zero", vec![(5.0, 0.0), (5.0, 0.0)])],
        ),
        ("empty", vec![Series::new("nothing", vec![])]),
        ("none", vec![]),
        (
            "nonfinite",
            vec![Series::new(
                "gaps",
                vec![
                    (0.0, 1.0),
                    (1.0, f64::NAN),
                    (2.0, f64::INFINITY),
                    (f64::NAN, 3.0),
                    (4.0, 2.0),
                    (5.0, 1.5),
                ],
            )],
        ),
        (
            "all_nan",
            vec![Series::new(
                "nan",
                vec![(f64::NAN, f64::NAN), (1.0, f64::NAN)],
            )],
        ),
        (
            "huge",
            vec![Series::new(
                "huge",
                vec![(0.0, 1e300), (1.0, -1e300), (2.0, 1e-300)],
            )],
        ),
    ];
    for (name, series) in cases {
        for log_y in [false, true] {
            let plot = plot_with(series.clone(), log_y);
            for ext in ["png", "svg"] {
                let out = dir.path().join(format!("{name}_{log_y}.{ext}"));
                line_plot(&plot, &out).unwrap_or_else(|e| panic!("{name} {ext}: {e:#}"));
                assert!(std::fs::metadata(&out).unwrap().len() > 0);
            }
            let png = dir.path().join(format!("{name}_{log_y}.png"));
            assert_eq!(png_size(&png), (700, 500));
            let svg = dir.path().join(format!("{name}_{log_y}.svg"));
            assert_has_texts(&svg, &["Degenerate", "x axis", "y axis"]);
        }
    }
}

#[test]
fn log_axis_falls_back_to_linear_and_y_range_clips() {
    let dir = tempfile::tempdir().unwrap();
    let mut plot = plot_with(
        vec![
            Series::new("a", vec![(0.0, -1.0), (1.0, 0.0), (2.0, 4.0)]),
            Series::new("b", (0..50).map(|i| (i as f64, (i as f64).sin())).collect()),
        ],
        true,
    );
    line_plot(&plot, &dir.path().join("fallback.svg")).unwrap();
    plot.y_range = Some((-0.5, 0.5));
    line_plot(&plot, &dir.path().join("clipped.png")).unwrap();
    plot.y_range = Some((1.0, 1.0));
    line_plot(&plot, &dir.path().join("degenerate_range.png")).unwrap();
}

#[test]
fn panels_with_bands() {
    let dir = tempfile::tempdir().unwrap();
    let xs: Vec<f64> = (0..40).map(|i| i as f64 * 50.0).collect();
    let mean = |x: f64, k: f64| 2.5 * (-x / k).exp() + 0.05;
    let loss = LinePlot {
        title: "Loss".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: vec![
            Series::new("sft", xs.iter().map(|&x| (x, mean(x, 400.0))).collect()),
            Series::new("uft", xs.iter().map(|&x| (x, mean(x, 250.0))).collect()),
        ],
        bands: vec![
            Band {
                name: "sft".into(),
                points: xs
                    .iter()
                    .map(|&x| (x, 0.8 * mean(x, 400.0), 1.25 * mean(x, 400.0)))
                    .collect(),
            },
            Band {
                name: "uft".into(),
                points: vec![(0.0, f64::NAN, 1.0), (100.0, 0.5, 1.0), (200.0, 0.4, 0.9)],
            },
        ],
        log_y: true,
        y_range: None,
    };
    let acc = LinePlot {
        title: "Accuracy".into(),
        x_label: "step".into(),
        y_label: "exact match".into(),
        series: vec![Series::new(
            "uft",
            xs.iter().map(|&x| (x, 1.0 - (-x / 500.0).exp())).collect(),
        )],
        bands: vec![],
        log_y: false,
        y_range: Some((0.0, 1.0)),
    };
    let three = [loss.clone(), acc.clone(), loss];
    let png = dir.path().join("three.png");
    panels(&three, &png).unwrap();
    assert_eq!(png_size(&png), (1800, 500));
    let svg = dir.path().join("three.SVG");
    panels(&three, &svg).unwrap();
    assert_has_texts(&svg, &["Loss", "Accuracy", "sft", "uft"]);

    assert!(panels(&[], &dir.path().join("none.png")).is_err());
}

#[test]
fn unsupported_extension_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let plot = plot_with(vec![Series::new("a", vec![(0.0, 1.0), (1.0, 2.0)])], false);
    for name in ["plot.jpg", "plot"] {
        let out = dir.path().join(name);
        let err = format!("{:#}", line_plot(&plot, &out).unwrap_err());
        assert!(err.contains(name), "{err}");
        assert!(!out.exists());
    }
}
