//! Bad command lines never panic: the `rewind` binary run with random
//! argument lists drawn from its own subcommands, flags and a mix of good
//! and bad values either succeeds or exits with status 1 (or clap's usage
//! status 2) and a message on stderr; never Rust's panic status 101, never
//! a "panicked" line, never a hang.
//!
//! Nothing here may start real work: configs are missing files or a
//! `--dry-run`, checkpoints do not exist, and `bench` and `slurm --submit`
//! are not in the vocabulary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// Cases: each starts the binary once (~10-50 ms).
const CASES: u32 = 64;

const SUBCOMMANDS: &[&str] = &[
    "run",
    "merge",
    "plot",
    "config",
    "list",
    "sample",
    "solve",
    "data",
    "status",
    "slurm",
    "",
    "help",
    "--version",
];

const FLAGS: &[&str] = &[
    "--dry-run",
    "--jobs",
    "--shard",
    "--fresh",
    "--resume",
    "--temperature",
    "--num",
    "--seed",
    "--target",
    "--game24",
    "--explain",
    "--shards",
    "--checkpoint",
    "--threads",
    "--partition",
    "--time",
    "--mem",
    "--array-parallelism",
    "--cpus-per-task",
    "-q",
    "-j",
    "--bogus",
    "countdown",
];

const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "24",
    "1/0",
    "0/0",
    "3/2",
    "2/4",
    "a/b",
    "nan",
    "inf",
    "-inf",
    "1e99",
    "18446744073709551616",
    "",
    " ",
    "x",
    "arithmetic",
    "countdown",
    "game24",
    "/nonexistent/config.toml",
    "experiments/no_such.toml",
    "tests",
    "b10:12+34=",
    "b7:+0034+-0250=",
    "25",
    "100",
    "7",
    "\u{1F600}",
    "--",
    "1:00:00",
    "4G",
];

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(FLAGS).prop_map(String::from),
        3 => prop::sample::select(VALUES).prop_map(String::from),
        1 => "[ -~]{0,12}",
    ]
}

fn argv() -> impl Strategy<Value = Vec<String>> {
    (
        prop::sample::select(SUBCOMMANDS),
        prop::collection::vec(token(), 0..7),
        any::<bool>(),
    )
        .prop_map(|(sub, mut rest, dry)| {
            // a real config may only ever be dry-run
            if dry {
                rest.insert(0, "experiments/quickstart.toml".into());
                rest.push("--dry-run".into());
            }
            let mut v = vec![sub.to_string()];
            v.extend(rest);
            v.retain(|a| a != "--submit");
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn random_command_lines_fail_cleanly(args in argv()) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rewind"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                prop_assert!(false, "`rewind {}` still running after 60 s", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        prop_assert!(
            !stderr.contains("panicked") && status.code() != Some(101),
            "`rewind {}` panicked: {stderr}",
            args.join(" ")
        );
        prop_assert!(status.code().is_some(), "`rewind {}` killed by a signal", args.join(" "));
        if !status.success() {
            prop_assert!(
                matches!(status.code(), Some(1) | Some(2)) && !stderr.trim().is_empty(),
                "`rewind {}` failed with {status} and stderr {stderr:?}",
                args.join(" ")
            );
        }
    }
}
