//! Countdown and Game of 24 as experiment kinds (`countdown`, `game24`):
//! splits, training draws, references vs the verifier, length bounds, the
//! `[data]` config and the registry.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::SeedableRng;

use rewind::data::vocab;
use rewind::experiment::config::ExperimentConfig;
use rewind::tasks::countdown::path::parse_prompt;
use rewind::tasks::countdown::{CountdownTask, CountdownTaskConfig, Game24TaskConfig};
use rewind::tasks::registry;
use rewind::tasks::{Problem, Task};

/// A small Countdown space: 3 numbers in 1..=9, targets 10..=40. Small
/// enough that, without the exclusion, a few hundred training draws would
/// hit the val/test problems many times.
fn small_countdown() -> CountdownTaskConfig {
    CountdownTaskConfig {
        numbers: 3,
        number_min: 1,
        number_max: 9,
        target_min: 10,
        target_max: 40,
        heldout_target_frac: 0.3,
        heldout_extra_targets: vec![],
        val_size: 25,
        test_size: 10,
        ..Default::default()
    }
}

fn small_game24() -> Game24TaskConfig {
    Game24TaskConfig {
        val_size: 40,
        test_size: 30,
        ..Default::default()
    }
}

/// Order-free identity of a problem: sorted numbers and the target.
fn key(prompt: &str) -> (Vec<i64>, i64) {
    let (mut numbers, target, rest) = parse_prompt(prompt).unwrap();
    assert_eq!(rest, "", "a prompt ends after 'Steps:'");
    numbers.sort_unstable();
    (numbers, target)
}

fn keys(problems: &[Problem]) -> HashSet<(Vec<i64>, i64)> {
    problems.iter().map(|p| key(&p.prompt)).collect()
}

fn tasks() -> Vec<(&'static str, Box<dyn Task>)> {
    vec![
        (
            "countdown",
            Box::new(CountdownTask::countdown(&small_countdown(), 7).unwrap()),
        ),
        (
            "game24",
            Box::new(CountdownTask::game24(&small_game24()).unwrap()),
        ),
    ]
}

#[test]
fn splits_are_disjoint_and_reproducible() {
    let a = CountdownTask::countdown(&small_countdown(), 7).unwrap();
    let b = CountdownTask::countdown(&small_countdown(), 7).unwrap();
    let c = CountdownTask::countdown(&small_countdown(), 8).unwrap();
    assert_eq!(a.splits(), ["val", "test"]);
    for s in ["val", "test"] {
        assert_eq!(a.problems(s).unwrap(), b.problems(s).unwrap(), "{s}");
    }
    assert_ne!(a.problems("test").unwrap(), c.problems("test").unwrap());
    let (val, test) = (a.problems("val").unwrap(), a.problems("test").unwrap());
    assert_eq!((val.len(), test.len()), (25, 10));
    let (kv, kt) = (keys(&val), keys(&test));
    assert_eq!(kv.len(), val.len(), "val problems are distinct");
    assert_eq!(kt.len(), test.len(), "test problems are distinct");
    assert!(kv.is_disjoint(&kt));
    // Countdown holds targets out: no test target appears in val.
    let val_targets: HashSet<i64> = kv.iter().map(|k| k.1).collect();
    assert!(kt.iter().all(|k| !val_targets.contains(&k.1)));
    assert!(a.problems("long").is_err());

    let g = CountdownTask::game24(&small_game24()).unwrap();
    let g2 = CountdownTask::game24(&small_game24()).unwrap();
    let g3 = CountdownTask::game24(&Game24TaskConfig {
        split_seed: 25,
        ..small_game24()
    })
    .unwrap();
    assert_eq!(g.problems("val").unwrap(), g2.problems("val").unwrap());
    assert_eq!(g.problems("test").unwrap(), g2.problems("test").unwrap());
    assert_ne!(g.problems("test").unwrap(), g3.problems("test").unwrap());
    let (gv, gt) = (
        keys(&g.problems("val").unwrap()),
        keys(&g.problems("test").unwrap()),
    );
    assert_eq!((gv.len(), gt.len()), (40, 30));
    assert!(gv.is_disjoint(&gt));
    assert!(gv.iter().chain(&gt).all(|k| k.1 == 24 && k.0.len() == 4));
}

/// Training draws never repeat a val/test problem, their completions verify,
/// and every sequence fits the advertised bounds.
#[test]
fn training_draws_avoid_heldout_problems_and_fit_the_bounds() {
    for (name, task) in tasks() {
        let held: HashSet<_> = ["val", "test"]
            .iter()
            .flat_map(|s| keys(&task.problems(s).unwrap()))
            .collect();
        let mut rng = StdRng::seed_from_u64(1);
        let mut distinct = HashSet::new();
        for _ in 0..400 {
            let ex = task.sample_train(&mut rng).unwrap();
            assert_eq!(ex.tokens[0], vocab::BOS);
            assert_eq!(*ex.tokens.last().unwrap(), vocab::EOS);
            let prompt = vocab::decode(&ex.tokens[1..ex.loss_from]).unwrap();
            let completion = vocab::decode(&ex.tokens[ex.loss_from..ex.tokens.len() - 1]).unwrap();
            let k = key(&prompt);
            assert!(!held.contains(&k), "{name}: trained on held-out {k:?}");
            distinct.insert(k);
            let problem = Problem::new(&prompt, "");
            assert_eq!(
                task.verify(&problem, &completion),
                Some(true),
                "{name}: {prompt}{completion}"
            );
            assert!(
                ex.tokens.len() <= task.max_seq_len(),
                "{name}: {prompt}{completion}"
            );
            assert!(completion.len() <= task.max_answer_len());
        }
        assert!(distinct.len() > 50, "{name}: {} distinct", distinct.len());
        for s in ["val", "test"] {
            for p in task.problems(s).unwrap() {
                assert!(p.prompt.len() + p.reference.len() + 2 <= task.max_seq_len());
                assert!(p.reference.len() <= task.max_answer_len());
            }
        }
    }
}

#[test]
fn references_verify_and_corruptions_do_not() {
    for (name, task) in tasks() {
        let all: Vec<Problem> = ["val", "test"]
            .iter()
            .flat_map(|s| task.problems(s).unwrap())
            .collect();
        for (i, p) in all.iter().enumerate() {
            assert_eq!(task.verify(p, &p.reference), Some(true), "{name}: {p:?}");
            // Without the trailing newline (a model may stop right after the answer).
            assert_eq!(task.verify(p, p.reference.trim_end()), Some(true));
            // A wrong stated answer.
            let (body, value) = p.reference.trim_end().rsplit_once(" = ").unwrap();
            let wrong = format!("{body} = {}1\n", value);
            assert_eq!(task.verify(p, &wrong), Some(false), "{name}: {wrong}");
            // A dropped step.
            let mut lines: Vec<&str> = p.reference.lines().collect();
            lines.remove(0);
            assert_eq!(task.verify(p, &(lines.join("\n") + "\n")), Some(false));
            // Another problem's solution.
            let other = &all[(i + 1) % all.len()];
            if key(&other.prompt) != key(&p.prompt) {
                assert_eq!(task.verify(p, &other.reference), Some(false));
            }
            assert_eq!(task.verify(p, ""), Some(false));
        }
    }
}

#[test]
fn user_prompts_are_parsed_and_solved() {
    let g = CountdownTask::game24(&small_game24()).unwrap();
    for text in ["4 7 8 8 -> 24", "4, 7, 8, 8", "Input: 4 7 8 8\nTarget: 24"] {
        let (prompt, reference) = g.user_prompt(text).unwrap();
        assert_eq!(prompt, "Input: 4 7 8 8\nTarget: 24\nSteps:\n", "{text:?}");
        let reference = reference.unwrap();
        assert_eq!(g.verify(&Problem::new(&prompt, ""), &reference), Some(true));
    }
    assert_eq!(g.user_prompt("1 1 1 1").unwrap().1, None, "unsolvable");
    for bad in ["4 7 8 -> 24", "4 7 8 14", "4 7 8 8 -> 25", "4 x 8 8", ""] {
        assert!(g.user_prompt(bad).is_err(), "{bad:?}");
    }
    let c = CountdownTask::countdown(&small_countdown(), 0).unwrap();
    let (prompt, reference) = c.user_prompt("25 5 5 33 -> 27").unwrap();
    assert_eq!(prompt, "Input: 25 5 5 33\nTarget: 27\nSteps:\n");
    assert_eq!(
        c.verify(&Problem::new(&prompt, ""), &reference.unwrap()),
        Some(true)
    );
    assert_eq!(
        c.user_prompt("3 3 8 8 -> 24").unwrap().1,
        None,
        "needs fractions"
    );
    for bad in ["25 5 5 33", "0 5 -> 5", "1 2 3 4 5 6 7 -> 3", "1 2 -> -1"] {
        assert!(c.user_prompt(bad).is_err(), "{bad:?}");
    }
}

const CONFIG: &str = r#"
[experiment]
name = "cd"
kind = "KIND"

[model]
max_len = 256

[data]
DATA

[[stages]]
objective = { kind = "mle" }
steps = 10
"#;

fn config(kind: &str, data: &str) -> anyhow::Result<ExperimentConfig> {
    ExperimentConfig::from_toml(&CONFIG.replace("KIND", kind).replace("DATA", data))
}

#[test]
fn bad_data_keys_are_named() {
    for kind in ["countdown", "game24"] {
        let e = format!("{:#}", config(kind, "val_sise = 5").unwrap_err());
        assert!(e.contains("val_sise"), "{kind}: {e}");
        let e = format!("{:#}", config(kind, "val_size = \"many\"").unwrap_err());
        assert!(e.contains("data.val_size"), "{kind}: {e}");
        let e = format!(
            "{:#}",
            config(kind, "train_strategy = \"greedy\"").unwrap_err()
        );
        assert!(
            e.contains("train_strategy") && e.contains("greedy"),
            "{kind}: {e}"
        );
    }
    // A Countdown key is not a Game-of-24 key.
    let e = format!("{:#}", config("game24", "number_max = 9").unwrap_err());
    assert!(e.contains("number_max"), "{e}");
    for (data, key) in [
        ("number_max = 0", "data.number_max"),
        ("numbers = 7", "data.numbers"),
        ("target_max = 5", "data.target_max"),
        ("heldout_target_frac = 1.5", "data.heldout_target_frac"),
        ("val_size = 1000000", "data.val_size"),
        ("train_strategy = \"bfs99-sum\"", "data.train_strategy"),
    ] {
        let e = format!("{:#}", config("countdown", data).unwrap_err());
        assert!(e.contains(key), "{data}: {e}");
    }
    let e = format!("{:#}", config("game24", "val_size = 1300").unwrap_err());
    assert!(
        e.contains("data.test_size") || e.contains("data.val_size"),
        "{e}"
    );
}

#[test]
fn both_kinds_resolve_through_the_registry() {
    for (kind, split_keys) in [
        (
            "countdown",
            vec!["numbers", "number_max", "heldout_target_frac"],
        ),
        ("game24", vec!["split_seed"]),
    ] {
        let k = registry::kind(kind).unwrap();
        assert_eq!(k.splits, ["val", "test"]);
        // Defaults are filled in and written back.
        let cfg = config(kind, "val_size = 12\ntest_size = 8").unwrap();
        assert_eq!(cfg.eval.splits, ["val", "test"]);
        assert_eq!(cfg.data["train_strategy"].as_str(), Some("random"));
        for key in split_keys {
            assert!(cfg.data.contains_key(key), "{kind}: {key} missing");
        }
        // Resolving is idempotent (a run's config.toml is read back).
        let again = ExperimentConfig::from_toml(&cfg.to_toml().unwrap()).unwrap();
        assert_eq!(again.data, cfg.data);
        let task = (k.build)(&cfg.data, 5).unwrap();
        assert_eq!(task.problems("val").unwrap().len(), 12);
        assert_eq!(task.problems("test").unwrap().len(), 8);
        assert!(task.max_seq_len() <= cfg.model.max_len, "{kind}");
        // The schema documents every key with its default.
        let schema = serde_json::to_string(&(k.data_schema)()).unwrap();
        assert!(
            schema.contains("train_strategy") && schema.contains("random"),
            "{kind}"
        );
        let text = rewind::experiment::explain::explain(kind).unwrap();
        assert!(
            text.contains("train_strategy") && text.contains("val_size"),
            "{text}"
        );
    }
    assert!(config("countdown", "").is_ok());
    let e = format!(
        "{:#}",
        ExperimentConfig::from_toml(
            &CONFIG
                .replace("KIND", "countdown")
                .replace("DATA", "")
                .replace("[model]", "[eval]\nsplits = [\"long\"]\n[model]")
        )
        .unwrap_err()
    );
    assert!(e.contains("eval.splits") && e.contains("long"), "{e}");
}

/// The bounds of the paper settings, for sizing `model.max_len`.
#[test]
fn paper_setting_bounds() {
    let c = CountdownTask::countdown(
        &CountdownTaskConfig {
            val_size: 5,
            test_size: 5,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let g = CountdownTask::game24(&Game24TaskConfig::default()).unwrap();
    // Tight enough to be useful (a solved path is ~100-150 tokens).
    assert!(c.max_seq_len() <= 256, "{}", c.max_seq_len());
    assert!(g.max_seq_len() <= 256, "{}", g.max_seq_len());
    eprintln!(
        "countdown max_seq_len {} max_answer_len {}; game24 {} {}",
        c.max_seq_len(),
        c.max_answer_len(),
        g.max_seq_len(),
        g.max_answer_len()
    );
}

/// The example configs parse, and their `model.max_len` fits the task.
#[test]
fn example_configs_fit_their_tasks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    for (file, kind) in [
        ("countdown.toml", "countdown"),
        ("countdown_game24.toml", "game24"),
    ] {
        let cfg = ExperimentConfig::from_file(&root.join(file)).unwrap();
        assert_eq!(cfg.experiment.kind, kind);
        let task = (registry::kind(kind).unwrap().build)(&cfg.data, 0).unwrap();
        assert!(
            task.max_seq_len() <= cfg.model.max_len,
            "{file}: max_len {} < {}",
            cfg.model.max_len,
            task.max_seq_len()
        );
    }
}
