//! Lock files: which process is training a run, and one writer at a time
//! for a sweep's summary.csv and plots.
//!
//! A lock is an OS file lock (`flock` on Unix) on a file that stays on
//! disk. It dies with its process, so a killed, cancelled or preempted job
//! (a Slurm task included) never leaves a run locked. The holder writes who
//! it is (`pid 1234 on node7, Slurm job 5501_3`) into the file, so that a
//! second process, or `rewind status`, can say who holds it.
//!
//! Lock files are never deleted: a process blocked on the lock of a file
//! that another one deletes would end up holding a lock nobody else sees,
//! and two processes would then both "own" the run.
//!
//! On a cluster the results folder must be on a file system whose locks
//! every node sees (NFSv4, Lustre and GPFS mounted with locking on).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file in a run's folder, held while a process trains the run.
pub const RUN_LOCK: &str = ".lock";

/// The lock file in `results/<name>/`, held while a process writes the
/// sweep's summary.csv or plots.
pub const SUMMARY_LOCK: &str = ".summary.lock";

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it; `holder` is what it wrote into the file.
    #[error("{}: locked by another process ({holder})", path.display())]
    Busy { path: PathBuf, holder: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    // the lock lives as long as this open file
    _file: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(path))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))
}

/// Who this process is, as written into the locks it holds:
/// `pid 1234 on node7` plus the Slurm job (array task) when there is one.
pub fn whoami() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unknown host".into());
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let job = match (
        var("SLURM_ARRAY_JOB_ID"),
        var("SLURM_ARRAY_TASK_ID"),
        var("SLURM_JOB_ID"),
    ) {
        (Some(a), Some(t), _) => format!(", Slurm job {a}_{t}"),
        (_, _, Some(j)) => format!(", Slurm job {j}"),
        _ => String::new(),
    };
    format!("pid {} on {host}{job}", std::process::id())
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    match text.trim() {
        // the holder has the lock but has not written its name yet
        "" => "holder unknown".into(),
        t => t.to_string(),
    }
}

fn sign(mut file: File, path: &Path) -> Result<Lock, LockError> {
    file.set_len(0).map_err(io(path))?;
    file.rewind().map_err(io(path))?;
    file.write_all(format!("{}\n", whoami()).as_bytes())
        .map_err(io(path))?;
    Ok(Lock { _file: file })
}

/// Takes the lock at `path` (creating the file) if no other process holds
/// it. A process that only looks ([`holder`]) holds it for a moment, so a
/// busy lock is tried again for a short while before it counts as held.
pub fn try_acquire(path: &Path) -> Result<Lock, LockError> {
    let mut file = open(path)?;
    for attempt in 0..10 {
        match file.try_lock() {
            Ok(()) => return sign(file, path),
            Err(TryLockError::WouldBlock) if attempt < 9 => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(TryLockError::WouldBlock) => break,
            Err(TryLockError::Error(e)) => return Err(io(path)(e)),
        }
    }
    Err(LockError::Busy {
        path: path.to_path_buf(),
        holder: read_holder(&mut file),
    })
}

/// Takes the lock at `path` (creating the file), waiting for as long as
/// another process holds it.
pub fn acquire(path: &Path) -> Result<Lock, LockError> {
    let file = open(path)?;
    file.lock().map_err(io(path))?;
    sign(file, path)
}

/// Who holds the lock at `path` right now (None: nobody, or no such file).
/// Does not create the file.
pub fn holder(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    // a shared lock: two lookers never make each other see "held"
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => Some(read_holder(&mut file)),
        Err(TryLockError::Error(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_busy_for_another_open_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(RUN_LOCK);
        assert_eq!(holder(&path), None, "no file: nobody holds it");
        let held = try_acquire(&path).unwrap();
        // flock locks belong to the open file, so a second open in the same
        // process conflicts just as another process would
        match try_acquire(&path) {
            Err(LockError::Busy { holder, .. }) => {
                assert!(holder.contains(&format!("pid {}", std::process::id())))
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(holder(&path).is_some_and(|h| h.starts_with("pid ")));
        drop(held);
        assert_eq!(holder(&path), None);
        let again = try_acquire(&path).unwrap();
        drop(again);
        assert!(path.exists(), "lock files stay on disk");
    }

    #[test]
    fn looking_at_a_lock_does_not_make_it_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RUN_LOCK);
        drop(acquire(&path).unwrap());
        // a looker holding its shared lock while a trainer tries
        let file = File::open(&path).unwrap();
        file.try_lock_shared().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(file);
        });
        try_acquire(&path).expect("taken once the looker let go");
        release.join().unwrap();
    }
}
