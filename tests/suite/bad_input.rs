//! Bad input never panics, and every error says where: valid configs
//! (experiments/quickstart.toml, experiments/countdown.toml and the
//! Countdown data config) mutated at random (a value of the wrong type, a
//! number out of range, a key removed, an unknown key, a sweep axis with a
//! repeated value or a path the config lacks, random bytes in the text) are
//! loaded and validated as `rewind run --dry-run` and `rewind data
//! countdown` do; each either loads or fails with a message that names the
//! file and a key or a line. The Countdown path text parsers and the JSONL
//! dataset reader get the same treatment.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;

use rewind::cli::commands::{dry_run, RunArgs};
use rewind::data::dataset::{Dataset, LabelFilter};
use rewind::tasks::countdown::{self, Game};

/// Cases per proptest here: 5 × 256 cases take about a second.
const CASES: u32 = 256;

/// Bytes to write over a text: mostly printable ASCII and TOML's own
/// punctuation (so the text stays text and its syntax is what breaks),
/// sometimes any byte.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => 0x20u8..0x7f,
            2 => prop::sample::select(b"[]{}=\"',.#\n0123456789".to_vec()),
            1 => any::<u8>(),
        ],
        1..6,
    )
}

/// One step of a path into a TOML value.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every leaf (a value that is not a table, nor an array of tables) with
/// its path, and every table's path.
fn walk(
    v: &toml::Value,
    path: &mut Vec<Seg>,
    leaves: &mut Vec<Vec<Seg>>,
    tables: &mut Vec<Vec<Seg>>,
) {
    match v {
        toml::Value::Table(t) => {
            tables.push(path.clone());
            for (k, child) in t {
                path.push(Seg::Key(k.clone()));
                walk(child, path, leaves, tables);
                path.pop();
            }
        }
        toml::Value::Array(a) if a.iter().any(|x| x.is_table()) => {
            for (i, child) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(child, path, leaves, tables);
                path.pop();
            }
        }
        _ => leaves.push(path.clone()),
    }
}

fn get_mut<'a>(v: &'a mut toml::Value, path: &[Seg]) -> &'a mut toml::Value {
    path.iter().fold(v, |v, s| match (s, v) {
        (Seg::Key(k), toml::Value::Table(t)) => t.get_mut(k).expect("key on the path"),
        (Seg::Index(i), toml::Value::Array(a)) => &mut a[*i],
        _ => unreachable!("paths come from walk"),
    })
}

/// `stages.0.lr`: a path as a sweep key spells it.
fn dotted(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The last key of a path: what an error about it must name.
fn last_key(path: &[Seg]) -> String {
    path.iter()
        .rev()
        .find_map(|s| match s {
            Seg::Key(k) => Some(k.clone()),
            Seg::Index(_) => None,
        })
        .unwrap_or_default()
}

#[derive(Clone, Debug)]
enum Mutation {
    /// The leaf gets a value of another type.
    WrongType(Index, u8),
    /// A number leaf (or any leaf) gets an extreme number.
    OutOfRange(Index, u8),
    /// The leaf is removed.
    Remove(Index),
    /// A table gets a key no config has.
    UnknownKey(Index),
    /// A sweep axis over the leaf's path with its value twice.
    RepeatedAxisValue(Index),
    /// A sweep axis over a path the config does not have.
    MissingAxisPath(Index),
    /// Bytes written over the text at a position.
    Bytes(Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, k)| Mutation::WrongType(i, k)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, k)| Mutation::OutOfRange(i, k)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::UnknownKey),
        any::<Index>().prop_map(Mutation::RepeatedAxisValue),
        any::<Index>().prop_map(Mutation::MissingAxisPath),
        (any::<Index>(), noise()).prop_map(|(i, b)| Mutation::Bytes(i, b)),
    ]
}

const WRONG_TYPES: [&str; 5] = ["\"text\"", "true", "[1, 2]", "{ a = 1 }", "1.5"];
const EXTREMES: [&str; 8] = [
    "-1",
    "0",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "nan",
    "-inf",
    "0.000001",
];

/// The mutated config text, and the key an error about it must name (None:
/// any key or line will do, for random bytes).
fn apply(text: &str, m: &Mutation) -> (Vec<u8>, Option<String>) {
    let mut v: toml::Value = toml::from_str(text).unwrap();
    let (mut leaves, mut tables) = (vec![], vec![]);
    walk(&v, &mut vec![], &mut leaves, &mut tables);
    let parse = |s: &str| -> toml::Value {
        toml::from_str::<toml::Table>(&format!("x = {s}")).unwrap()["x"].clone()
    };
    let add_sweep = |v: &mut toml::Value, key: String, values: toml::Value| {
        let t = v.as_table_mut().unwrap();
        let sweep = t
            .entry("sweep")
            .or_insert(toml::Value::Table(Default::default()));
        if let toml::Value::Table(s) = sweep {
            s.insert(key, values);
        }
    };
    let key = match m {
        Mutation::WrongType(i, k) => {
            let path = &leaves[i.index(leaves.len())];
            *get_mut(&mut v, path) = parse(WRONG_TYPES[*k as usize % WRONG_TYPES.len()]);
            Some(last_key(path))
        }
        Mutation::OutOfRange(i, k) => {
            let path = &leaves[i.index(leaves.len())];
            *get_mut(&mut v, path) = parse(EXTREMES[*k as usize % EXTREMES.len()]);
            Some(last_key(path))
        }
        Mutation::Remove(i) => {
            let path = &leaves[i.index(leaves.len())];
            let (last, parent) = path.split_last().unwrap();
            match (get_mut(&mut v, parent), last) {
                (toml::Value::Table(t), Seg::Key(k)) => {
                    t.remove(k);
                }
                (toml::Value::Array(a), Seg::Index(i)) => {
                    a.remove(*i);
                }
                _ => unreachable!(),
            }
            Some(last_key(path))
        }
        Mutation::UnknownKey(i) => {
            let path = &tables[i.index(tables.len())];
            if let toml::Value::Table(t) = get_mut(&mut v, path) {
                t.insert("zz_unknown".into(), toml::Value::Integer(1));
            }
            Some("zz_unknown".into())
        }
        Mutation::RepeatedAxisValue(i) => {
            let path = &leaves[i.index(leaves.len())];
            let value = get_mut(&mut v, path).clone();
            let key = dotted(path);
            add_sweep(
                &mut v,
                key.clone(),
                toml::Value::Array(vec![value.clone(), value]),
            );
            Some(key)
        }
        Mutation::MissingAxisPath(i) => {
            let path = &tables[i.index(tables.len())];
            let mut key = dotted(path);
            key.push_str(if key.is_empty() { "nope" } else { ".nope" });
            add_sweep(&mut v, key.clone(), parse("[1, 2]"));
            Some(key)
        }
        Mutation::Bytes(..) => None,
    };
    let mut out = toml::to_string(&v).unwrap().into_bytes();
    if let Mutation::Bytes(i, bytes) = m {
        let at = i.index(out.len());
        for (k, b) in bytes.iter().enumerate() {
            match out.get_mut(at + k) {
                Some(x) => *x = *b,
                None => out.push(*b),
            }
        }
    }
    (out, key)
}

/// Every key name in a config's text (for errors about random bytes).
fn all_keys(text: &str) -> Vec<String> {
    let v: toml::Value = toml::from_str(text).unwrap();
    let (mut leaves, mut tables) = (vec![], vec![]);
    walk(&v, &mut vec![], &mut leaves, &mut tables);
    let mut keys: Vec<String> = leaves
        .iter()
        .chain(&tables)
        .filter_map(|p| {
            p.iter().rev().find_map(|s| match s {
                Seg::Key(k) => Some(k.clone()),
                Seg::Index(_) => None,
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Asserts that an error message names `file` and a key or a line.
fn check_message(
    msg: &str,
    file: &str,
    key: Option<&str>,
    keys: &[String],
) -> Result<(), TestCaseError> {
    prop_assert!(
        !msg.contains("panicked"),
        "a panic was reported as an error: {}",
        msg
    );
    prop_assert!(
        msg.contains(file),
        "the error does not name {}: {}",
        file,
        msg
    );
    let names_line = msg.contains("line ");
    let names_key = match key {
        Some(k) => msg.contains(k),
        None => keys.iter().any(|k| msg.contains(k.as_str())),
    };
    prop_assert!(
        names_line || names_key,
        "the error names neither a line nor the key {:?}: {}",
        key,
        msg
    );
    Ok(())
}

/// Mutates an experiment config and loads it as `rewind run --dry-run` does.
fn experiment_case(original: &str, m: &Mutation) -> Result<(), TestCaseError> {
    let (bytes, key) = apply(original, m);
    let dir = tempfile::tempdir().unwrap();
    let file = "mutated_config.toml";
    let path = dir.path().join(file);
    std::fs::write(&path, &bytes).unwrap();
    let args = RunArgs {
        results: dir.path().join("results"),
        dry_run: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    if let Err(e) = dry_run(&path, &args, &mut out) {
        check_message(&format!("{e:#}"), file, key.as_deref(), &all_keys(original))?;
    }
    Ok(())
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_quickstart_config_loads_or_names_the_file_and_key(m in mutation()) {
        experiment_case(&read("experiments/quickstart.toml"), &m)?;
    }

    #[test]
    fn a_mutated_countdown_config_loads_or_names_the_file_and_key(m in mutation()) {
        experiment_case(&read("experiments/countdown.toml"), &m)?;
    }

    #[test]
    fn a_mutated_countdown_data_config_loads_or_names_the_file_and_key(m in mutation()) {
        let original = read("experiments/countdown_data.toml");
        // a data config has no sweeps: those mutations add an unknown key
        let (bytes, key) = apply(&original, &m);
        let dir = tempfile::tempdir().unwrap();
        let file = "mutated_data.toml";
        let path = dir.path().join(file);
        std::fs::write(&path, &bytes).unwrap();
        let key = match m {
            Mutation::RepeatedAxisValue(_) | Mutation::MissingAxisPath(_) => Some("sweep".into()),
            _ => key,
        };
        if let Err(e) = countdown::load_config(&path) {
            check_message(&format!("{e:#}"), file, key.as_deref(), &all_keys(&original))?;
        }
    }

    #[test]
    fn mutated_path_texts_never_panic_the_parsers(
        at in any::<Index>(),
        bytes in noise(),
        game24 in any::<bool>(),
    ) {
        let text = "Input: 25 5 5 33\nTarget: 27\nSteps:\n25 + 5 = 30 (left: 5 33 30)\n\
                    30 / 5 = 6 (left: 33 6)\n33 - 6 = 27 (left: 27)\nAnswer: 33 - ((25 + 5) / 5) = 27";
        let mut b = text.as_bytes().to_vec();
        let i = at.index(b.len());
        for (k, x) in bytes.iter().enumerate() {
            match b.get_mut(i + k) {
                Some(y) => *y = *x,
                None => b.push(*x),
            }
        }
        let mutated = String::from_utf8_lossy(&b);
        let game = if game24 { Game::Game24 } else { Game::Countdown };
        let _ = countdown::verify(&mutated, game);
        let _ = countdown::path::parse_prompt(&mutated);
        for line in mutated.lines() {
            let expr = line.strip_prefix("Answer: ").unwrap_or(line);
            let expr = expr.split(" = ").next().unwrap_or(expr);
            let _ = countdown::expr::parse(expr);
        }
    }

    #[test]
    fn a_mutated_dataset_file_loads_or_names_the_file_and_line(
        at in any::<Index>(),
        bytes in noise(),
    ) {
        let text = "{\"prompt\": \"Input: 1 2\\nTarget: 3\\nSteps:\\n\", \"completion\": \"1 + 2 = 3 (left: 3)\\nAnswer: 1 + 2 = 3\", \"correct\": true}\n\
                    {\"prompt\": \"Input: 1 2\\nTarget: 2\\nSteps:\\n\", \"completion\": \"1 * 2 = 2 (left: 2)\\nAnswer: 1 * 2 = 2\", \"correct\": false}\n";
        let mut b = text.as_bytes().to_vec();
        let i = at.index(b.len());
        for (k, x) in bytes.iter().enumerate() {
            match b.get_mut(i + k) {
                Some(y) => *y = *x,
                None => b.push(*x),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mutated.jsonl");
        std::fs::write(&path, &b).unwrap();
        if let Err(e) = Dataset::read(&path, LabelFilter::All) {
            let msg = e.to_string();
            prop_assert!(msg.contains("mutated.jsonl"), "{}", msg);
            prop_assert!(
                msg.contains("mutated.jsonl:") || msg.contains("line"),
                "no line named: {}",
                msg
            );
        }
    }
}
