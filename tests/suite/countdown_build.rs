//! Builds the example config's datasets and prints the summary (ignored by
//! default; it writes under `data/`):
//! `cargo test --release --test countdown_build -- --ignored --nocapture`.

use std::path::Path;

#[test]
#[ignore = "writes data/countdown/countdown_data; run explicitly"]
fn build_example_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = root.join("experiments/countdown_data.toml");
    let out = root.join("data/countdown/countdown_data");
    println!(
        "{}",
        rewind::tasks::countdown::data_command(&cfg, Some(&out)).unwrap()
    );
}
