//! Atomic file writes: what every results file and checkpoint is written
//! with, so a killed run never leaves a torn file behind.
//!
//! The bytes go to a temporary file beside the target, named uniquely per
//! process and write (`.<file>.<pid>.<n>.tmp`), are fsynced, and the
//! temporary file is renamed over the target. Unique names matter because
//! two processes may write the same file (two `rewind run` of one config,
//! or a sweep's runs publishing a shared stage): with one fixed name they
//! would write into each other's half-finished file. On any error the
//! temporary file is removed, so a failed write (disk full) frees the space
//! it took instead of keeping the disk full, and the target keeps its
//! previous contents. Only a killed process leaves its temporary file
//! behind; the next successful write of the same file removes such files
//! once they are an hour old ([`remove_stale_temps`]), long after any
//! writer could still be using one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

/// Writes made by this process so far: with the pid, a name no other write
/// uses at the same time.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// A temporary path in `dir` for writing `name`, unique to this process
/// and call: `.<name>.<pid>.<n>.tmp`. Hidden (a leading dot), so listings
/// of run folders skip it.
pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Age after which a temporary file is taken to be left behind by a killed
/// process: a write takes seconds, so no live writer holds one this old
/// (the writer may be another machine sharing the folder, whose processes
/// this one cannot see, so age is the test, not the pid).
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Removes the temporary files and folders ([`temp_path`]) for `name` in
/// `dir` that are older than an hour: what killed writers left behind.
pub fn remove_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    let now = SystemTime::now();
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(file) = file.to_str() else { continue };
        if !(file.starts_with(&prefix) && file.ends_with(".tmp")) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            let _ = match meta.is_dir() {
                true => std::fs::remove_dir_all(e.path()),
                false => std::fs::remove_file(e.path()),
            };
        }
    }
}

/// Removes `path` when dropped, unless disarmed: the temporary file of a
/// write that failed anywhere (create, write, fsync, rename) goes away.
struct RemoveOnDrop<'a> {
    path: &'a Path,
    armed: bool,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

/// Writes `bytes` to `path` atomically (module docs): a uniquely named
/// temporary file in the same directory, fsync, then rename. On error the
/// temporary file is removed and `path` is unchanged.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = temp_path(dir, name);
    let mut guard = RemoveOnDrop {
        path: &tmp,
        armed: true,
    };
    {
        // create_new: never truncate a file someone else is writing
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {} (for {})", tmp.display(), path.display()))?;
        // the data must be on disk before the rename makes it the file:
        // otherwise a power cut can leave a renamed but empty file
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    guard.armed = false;
    // the rename itself is durable once the directory is synced; a
    // directory that cannot be opened for it (some filesystems) is no error
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    remove_stale_temps(dir, name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_unique_within_a_process() {
        let dir = Path::new("/x");
        assert_ne!(temp_path(dir, "a"), temp_path(dir, "a"));
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file_and_keeps_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        write_atomic(&path, b"old").unwrap();
        // renaming onto a non-empty directory fails after the temp file
        // was written: the temp file must go, the target stay
        let blocked = dir.path().join("sub");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with(".tmp")),
            "temp file left behind: {names:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn temp_files_of_killed_writers_are_removed_once_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        let (old, recent) = (
            dir.path().join(".f.txt.1.0.tmp"),
            dir.path().join(".f.txt.2.0.tmp"),
        );
        for p in [&old, &recent] {
            std::fs::write(p, b"half").unwrap();
        }
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        write_atomic(&path, b"x").unwrap();
        assert!(!old.exists(), "a stale temp file is kept");
        assert!(
            recent.exists(),
            "a temp file that may be in use was removed"
        );
    }
}
