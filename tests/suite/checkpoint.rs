//! Checkpoints survive damage and full disks with nothing lost silently:
//! every kind of damage is an error naming the file, a damaged run's
//! checkpoint says how to retrain, and a write that fails (disk full)
//! leaves neither a temporary file nor a changed checkpoint behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dfdx::prelude::*;
use rewind::experiment::config::ExperimentConfig;
use rewind::experiment::run::{run, run_dir};
use rewind::experiment::status::{run_state, RunState};
use rewind::experiment::sweep::RunSpec;
use rewind::model::{ModelConfig, Transformer};
use rewind::train::checkpoint::{self, Checkpoint, CheckpointError};
use rewind::train::optim::{AdamW, AdamWConfig};

use crate::run::{finish, opts, TINY};

fn model(d_model: usize, seed: u64) -> Transformer<dfdx::prelude::Cpu> {
    let cfg = ModelConfig {
        d_model,
        n_heads: 2,
        n_layers: 1,
        d_ff: 32,
        max_len: 16,
        ..Default::default()
    };
    Transformer::new(&cfg, &dfdx::prelude::Cpu::default(), seed).unwrap()
}

/// Saves a small model with its optimiser to `dir/checkpoint.safetensors`.
fn saved(dir: &Path, d_model: usize, seed: u64) -> PathBuf {
    let path = dir.join("checkpoint.safetensors");
    let m = model(d_model, seed);
    let opt = AdamW::new(AdamWConfig::default(), &m.params());
    let mut meta = BTreeMap::new();
    meta.insert("step".to_string(), "7".to_string());
    checkpoint::save(&path, &m, Some(&opt), &meta).unwrap();
    path
}

/// Byte range of tensor `name`'s data in a safetensors file.
fn tensor_range(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let o = &header[name]["data_offsets"];
    let (s, e) = (
        o[0].as_u64().unwrap() as usize,
        o[1].as_u64().unwrap() as usize,
    );
    8 + n + s..8 + n + e
}

/// A way a checkpoint file gets damaged: its name, the damage, and a
/// phrase its error must contain.
type Damage = (&'static str, fn(&mut Vec<u8>), &'static str);

/// The ways a checkpoint file gets damaged.
fn damages() -> Vec<Damage> {
    vec![
        (
            "flipped bytes in a tensor",
            |b| {
                let r = tensor_range(b, "blocks.0.wq.weight");
                b[r.start + 5] ^= 0x40;
                b[r.end - 1] ^= 0x01;
            },
            "tensor blocks.0.wq.weight checksum mismatch: the file is damaged",
        ),
        (
            "zeroed tensor data",
            |b| {
                let r = tensor_range(b, "tok_emb");
                b[r].fill(0);
            },
            "tensor tok_emb checksum mismatch: the file is damaged",
        ),
        (
            "truncated file",
            |b| b.truncate(b.len() * 2 / 3),
            "it was cut short",
        ),
        (
            "garbage file",
            |b| {
                let n = b.len();
                *b = (0..n).map(|i| (i * 7919 % 251) as u8).collect();
            },
            "not a checkpoint",
        ),
        ("empty file", |b| b.clear(), "not a checkpoint"),
    ]
}

#[test]
fn every_kind_of_damage_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), 16, 1);
    let good = std::fs::read(&path).unwrap();
    Checkpoint::read(&path).expect("the undamaged file reads");
    for (what, damage, phrase) in damages() {
        let mut bytes = good.clone();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        let msg = match Checkpoint::read(&path) {
            Ok(_) => panic!("{what}: read without an error"),
            Err(e) => e.to_string(),
        };
        assert!(
            msg.contains(&path.display().to_string()),
            "{what}: the error does not name the file: {msg}"
        );
        assert!(msg.contains(phrase), "{what}: {msg}");
        assert!(
            checkpoint::check_header(&path).is_err() || what.contains("tensor"),
            "{what}: the cheap check passes a file whose size or header is wrong"
        );
    }
}

#[test]
fn damaged_metadata_is_caught_by_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), 16, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    // "step":"7" -> "step":"8": the header stays valid JSON of the same size
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text.find("\"step\":\"7\"").expect("step in the header") + 8;
    bytes[at] = b'8';
    std::fs::write(&path, &bytes).unwrap();
    let msg = Checkpoint::read(&path).err().unwrap().to_string();
    assert!(
        msg.contains("metadata checksum mismatch") && msg.contains("checkpoint.safetensors"),
        "{msg}"
    );
}

#[test]
fn a_checkpoint_of_another_model_size_names_the_file_and_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), 16, 1);
    let ck = Checkpoint::read(&path).unwrap();
    let mut other = model(32, 1);
    let e = ck.load_into(&mut other, None).err().unwrap();
    assert!(matches!(e, CheckpointError::ModelMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("d_model 16 (checkpoint) vs 32 (config)"),
        "{msg}"
    );
    assert!(
        !msg.contains("ModelConfig") && !msg.contains('{'),
        "a Debug dump: {msg}"
    );
}

#[test]
fn a_version_1_checkpoint_still_loads_unverified() {
    // written as rewind wrote checkpoints before the checksums
    let m = model(16, 4);
    let params = m.params();
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(n, t)| {
            let (r, c) = *t.shape();
            let bytes = t.as_vec().iter().flat_map(|x| x.to_le_bytes()).collect();
            (n.clone(), vec![r, c], bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, s, b)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .unwrap();
            (n.clone(), view)
        })
        .collect();
    let mut info = std::collections::HashMap::new();
    info.insert("format".to_string(), "rewind-checkpoint-v1".to_string());
    info.insert("model".to_string(), serde_json::to_string(&m.cfg).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.safetensors");
    std::fs::write(&path, safetensors::serialize(views, &Some(info)).unwrap()).unwrap();
    checkpoint::check_header(&path).unwrap();
    let back = Checkpoint::read(&path)
        .unwrap()
        .model(&dfdx::prelude::Cpu::default())
        .unwrap();
    let weights = |t: &Transformer<_>| -> Vec<Vec<f32>> {
        t.params().into_iter().map(|(_, p)| p.as_vec()).collect()
    };
    assert_eq!(weights(&back), weights(&m));
}

/// A TINY run stopped after `stop` steps under a fresh results root.
fn partial_run(stop: u64) -> (tempfile::TempDir, RunSpec) {
    let spec = RunSpec::single(&ExperimentConfig::from_toml(TINY).unwrap()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dev = rewind::model::device::default_device();
    assert!(run(&spec, dev, "cpu", &opts(root.path(), Some(stop)))
        .unwrap()
        .is_none());
    (root, spec)
}

#[test]
fn resuming_a_damaged_checkpoint_says_how_to_retrain() {
    let (root, spec) = partial_run(10);
    let path = run_dir(&spec, root.path()).join("checkpoint.safetensors");
    let good = std::fs::read(&path).unwrap();
    let dev = rewind::model::device::default_device();
    for (what, damage, phrase) in damages() {
        let mut bytes = good.clone();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        let e = run(&spec, dev.clone(), "cpu", &opts(root.path(), None))
            .err()
            .unwrap_or_else(|| panic!("{what}: the run resumed from a damaged checkpoint"));
        let msg = format!("{e:#}");
        assert!(msg.contains(&path.display().to_string()), "{what}: {msg}");
        assert!(msg.contains(phrase), "{what}: {msg}");
        assert!(msg.contains("--fresh"), "{what}: no hint to retrain: {msg}");
        assert!(!msg.contains("learning rate"), "{what}: {msg}");
    }
    // a checkpoint of another model size (the config changed under a run
    // folder, e.g. copied by hand): the fields in plain words, and the hint
    let other = saved(&root.path().join("other"), 16, 2);
    std::fs::copy(&other, &path).unwrap();
    let msg = format!(
        "{:#}",
        run(&spec, dev.clone(), "cpu", &opts(root.path(), None))
            .err()
            .unwrap()
    );
    assert!(
        msg.contains("max_len 16 (checkpoint) vs 24 (config)") && msg.contains("--fresh"),
        "{msg}"
    );
    // a run of a sweep: --fresh would retrain the whole sweep, so the hint
    // is to delete this run's folder
    std::fs::write(&path, &good[..100]).unwrap();
    let in_sweep = rewind::experiment::run::RunOptions {
        share_first_stage: true,
        ..opts(root.path(), None)
    };
    let msg = format!("{:#}", run(&spec, dev, "cpu", &in_sweep).err().unwrap());
    assert!(
        msg.contains("delete") && msg.contains("--fresh would retrain every run of the sweep"),
        "{msg}"
    );
    // restored, the run resumes and finishes
    std::fs::write(&path, &good).unwrap();
    finish(&spec, root.path());
}

#[test]
fn a_finished_run_with_a_truncated_checkpoint_is_reported_not_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let spec = RunSpec::single(&ExperimentConfig::from_file(&config).unwrap()).unwrap();
    let root = dir.path().join("results");
    finish(&spec, &root);
    let run = run_dir(&spec, &root);
    assert_eq!(run_state(&run), RunState::Finished);
    let path = run.join("checkpoint.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let state = run_state(&run);
    assert!(
        matches!(&state, RunState::Damaged { what } if what.contains("cut short")),
        "{state:?}"
    );

    let rewind = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
            .args(args)
            .arg(&config)
            .arg("--results")
            .arg(&root)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, _) = rewind(&["run", "--dry-run"]);
    assert!(
        ok && out.contains("damaged") && out.contains("--fresh"),
        "{out}"
    );
    // the results stand (exit 0, nothing retrained), and the damage is said
    let (ok, _, err) = rewind(&["run", "-q"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("checkpoint.safetensors")
            && err.contains("results (summary.json, metrics.csv) are valid")
            && err.contains("--fresh"),
        "{err}"
    );
    assert!(!err.contains("already finished"), "{err}");
}

/// Environment variable that turns the disk-full test into its child.
const CHILD: &str = "REWIND_TEST_DISK_FULL_DIR";

#[cfg(unix)]
#[test]
fn a_full_disk_fails_the_write_leaves_no_temp_file_and_keeps_the_old_checkpoint() {
    if let Some(dir) = std::env::var_os(CHILD) {
        // the child: its file size limit makes the write fail like a full
        // disk (EFBIG once the limit is reached, with SIGXFSZ ignored)
        let r = checkpoint::save(
            &Path::new(&dir).join("checkpoint.safetensors"),
            &model(64, 9),
            None,
            &BTreeMap::new(),
        );
        match r {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                println!("save failed: {e:#}");
                std::process::exit(17);
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), 16, 1);
    let before = std::fs::read(&path).unwrap();
    // 64 KiB: more than the old checkpoint, less than the new one (d_model
    // 64: about 150 KiB of weights)
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 64 && trap '' XFSZ && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "checkpoint::a_full_disk_fails_the_write_leaves_no_temp_file_and_keeps_the_old_checkpoint",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(17),
        "the child's write did not fail: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("checkpoint.safetensors"), "{stdout}");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        ["checkpoint.safetensors"],
        "a temporary file was left behind"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the old checkpoint changed"
    );
    Checkpoint::read(&path).unwrap();
    // with room again, the same write succeeds
    let m = model(64, 9);
    checkpoint::save(&path, &m, None, &BTreeMap::new()).unwrap();
    let back = Checkpoint::read(&path)
        .unwrap()
        .model(&dfdx::prelude::Cpu::default())
        .unwrap();
    assert_eq!(back.cfg.d_model, 64);
}

/// Not a test: the cost of the checksums, for the module docs of
/// `train::checkpoint` (`cargo test --release --test suite checkpoint_cost
/// -- --ignored --nocapture`).
#[test]
#[ignore]
fn checkpoint_cost() {
    use std::time::Instant;
    let dev = rewind::model::device::default_device();
    for (name, cfg) in [
        ("quickstart", ModelConfig::default()),
        (
            "large",
            ModelConfig {
                d_model: 256,
                n_layers: 4,
                d_ff: 1024,
                max_len: 128,
                ..Default::default()
            },
        ),
    ] {
        let m = Transformer::new(&cfg, &dev, 0).unwrap();
        let opt = AdamW::new(AdamWConfig::default(), &m.params());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let n = 10;
        let t = Instant::now();
        for _ in 0..n {
            checkpoint::save(&path, &m, Some(&opt), &BTreeMap::new()).unwrap();
        }
        let save = t.elapsed().as_secs_f64() / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            Checkpoint::read(&path).unwrap();
        }
        let read = t.elapsed().as_secs_f64() / n as f64;
        let bytes = std::fs::read(&path).unwrap();
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(checkpoint::tensor_digest(
                safetensors::Dtype::F32,
                &[bytes.len()],
                &bytes,
            ));
        }
        let digest = t.elapsed().as_secs_f64() / n as f64;
        println!(
            "{name}: {:.1} MB; save {:.1} ms, read {:.1} ms, sha256 of all bytes {:.1} ms",
            bytes.len() as f64 / 1e6,
            1e3 * save,
            1e3 * read,
            1e3 * digest
        );
    }
}
