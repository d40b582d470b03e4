//! Records the git commit the binary is built from (`REWIND_BUILD_COMMIT`),
//! so that every result names the code that produced it, not whatever the
//! checkout holds when a long run finishes.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => {
            // --no-optional-locks: status would otherwise refresh the
            // index file it reads, and the index is watched below, so the
            // next build would run again for nothing
            let dirty = git(&[
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=no",
            ])
            .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        }
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=REWIND_BUILD_COMMIT={commit}");
    // a new commit, a staged change or an edited source re-records it.
    // `--git-path` finds each file where git keeps it (a worktree keeps HEAD
    // and index in its own folder, branch refs in the shared one), and a
    // file that is not there (a packed ref) is not named: cargo counts a
    // missing file as changed, and rebuilt the crate on every build.
    let mut watch = vec!["HEAD".to_string(), "index".into(), "packed-refs".into()];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(r);
    }
    for w in &watch {
        if let Some(path) = git(&["rev-parse", "--git-path", w]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    for p in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={p}");
    }
}
