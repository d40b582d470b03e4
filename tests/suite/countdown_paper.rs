//! The learning-and-forgetting paper's data settings for Countdown and Game
//! of 24 (paper B, Ni et al. 2025; reference code twni2016/llm-reasoning-uft,
//! `reasoners/sos_classic`): both searches on every problem
//! (`train_strategy = "paper"`, `[search] mode = "paper"`), the listed
//! held-out targets (`heldout_targets`), the ranked Game-of-24 split
//! (`split = "ranked"`), the paper's prompt (`prompt = "paper"`) and its
//! cut at the first `Answer:` line (`verifier = "paper"`).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use rewind::tasks::countdown::config::CountdownDataConfig;
use rewind::tasks::countdown::dataset::PathRecord;
use rewind::tasks::countdown::path::parse_prompt;
use rewind::tasks::countdown::puzzle::game24_ranked;
use rewind::tasks::countdown::task::{resolve_countdown_data, resolve_game24_data};
use rewind::tasks::countdown::{
    build_datasets, cut_at_answer, load_config, verify, verify_completion, CountdownTask,
    CountdownTaskConfig, Game, Game24SplitKind, Game24TaskConfig, HeldoutTargets, PromptStyle,
    Rejection, TrainStrategy, VerifierMode, PAPER_HELDOUT_TARGETS,
};
use rewind::tasks::Task;

/// Mean and standard error of the mean.
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

fn paper_task(seed: u64) -> CountdownTask {
    CountdownTask::countdown(
        &CountdownTaskConfig {
            train_strategy: TrainStrategy::Paper,
            val_size: 1,
            test_size: 1,
            ..Default::default()
        },
        seed,
    )
    .unwrap()
}

/// Reference (papers.md, measured by re-running the reference generator,
/// `classic_gen.sh` + `process_data.py --downsample_size 3`): with both
/// `dfs-sum` and `bfs5-mult` on every problem, 86% of the problems get a
/// successful path, and a problem gets 1.21 successful and 4.96 failed
/// paths on average. On 1,000 training problems of the paper's setting
/// (4 numbers in 1..=99, targets 10..=100) each statistic must lie within
/// 4 standard errors of the mean (estimated from the sample itself) of the
/// reference: the reference was measured on 500k problems, so its own
/// noise is negligible, and 4 SE leaves a false-alarm rate of ~1e-4 per
/// statistic while still catching the one-strategy-per-problem draw
/// (0.58 / 0.58 / 2.16, dozens of SE away).
#[test]
fn paper_mix_reproduces_the_reference_statistics() {
    let task = paper_task(4);
    let mut rng = StdRng::seed_from_u64(4);
    let (mut any, mut pos, mut neg) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..1000 {
        let p = task.search_paths(&mut rng).unwrap();
        assert!(p.successes.len() <= 2, "two searches, one path each");
        assert!(p.failures.len() <= 6, "at most 3 per search");
        any.push(!p.successes.is_empty() as u8 as f64);
        pos.push(p.successes.len() as f64);
        neg.push(p.failures.len() as f64);
    }
    for (name, xs, reference) in [
        ("share with a success path", &any, 0.86),
        ("success paths per problem", &pos, 1.21),
        ("failed paths per problem", &neg, 4.96),
    ] {
        let (m, se) = mean_se(xs);
        eprintln!("{name}: {m:.3} (se {se:.3}, reference {reference})");
        assert!(
            (m - reference).abs() <= 4.0 * se,
            "{name}: {m:.3} is more than 4 standard errors ({se:.3}) from the reference {reference}"
        );
    }
}

/// "random" stays one strategy per problem (at most one success and
/// `max_failed` failures); "paper" runs two searches, so some problem gets
/// two distinct successes and more than `max_failed` failures.
#[test]
fn paper_mix_keeps_the_paths_of_both_searches_and_random_of_one() {
    let mut rng = StdRng::seed_from_u64(1);
    let random = CountdownTask::countdown(
        &CountdownTaskConfig {
            val_size: 1,
            test_size: 1,
            ..Default::default()
        },
        1,
    )
    .unwrap();
    for _ in 0..100 {
        let p = random.search_paths(&mut rng).unwrap();
        assert!(p.successes.len() <= 1 && p.failures.len() <= 3);
    }
    let paper = paper_task(1);
    let (mut two_pos, mut many_neg) = (false, false);
    for _ in 0..100 {
        let p = paper.search_paths(&mut rng).unwrap();
        let distinct: BTreeSet<&String> = p.successes.iter().chain(&p.failures).collect();
        assert_eq!(
            distinct.len(),
            p.successes.len() + p.failures.len(),
            "deduplicated"
        );
        two_pos |= p.successes.len() == 2;
        many_neg |= p.failures.len() > 3;
    }
    assert!(
        two_pos && many_neg,
        "two successes: {two_pos}, > 3 failures: {many_neg}"
    );
    // Training completions come from the two searches (or the solver) and
    // are correct paths.
    let inst = paper.sample_train_instance(&mut rng).unwrap();
    let c = paper.train_completion(&inst, &mut rng).unwrap();
    let prompt = rewind::tasks::countdown::prompt(&inst.numbers, inst.target);
    assert_eq!(
        paper.verify(&rewind::tasks::Problem::new(&prompt, ""), &c),
        Some(true)
    );
}

fn targets_of(task: &CountdownTask, split: &str) -> BTreeSet<i64> {
    task.problems(split)
        .unwrap()
        .iter()
        .map(|p| parse_prompt(&p.prompt).unwrap().1)
        .collect()
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).unwrap()
}

#[test]
fn heldout_targets_list_decides_the_test_targets() {
    let task = CountdownTask::countdown(
        &CountdownTaskConfig {
            heldout_targets: Some(HeldoutTargets::List(vec![30, 31, 32])),
            val_size: 100,
            test_size: 60,
            ..Default::default()
        },
        3,
    )
    .unwrap();
    assert_eq!(targets_of(&task, "test"), BTreeSet::from([30, 31, 32]));
    let val = targets_of(&task, "val");
    assert!(val.is_disjoint(&BTreeSet::from([30, 31, 32])), "{val:?}");
    // 24 is no longer held out: only the list is.
    let mut rng = StdRng::seed_from_u64(3);
    let train: BTreeSet<i64> = (0..3000)
        .map(|_| task.sample_train_instance(&mut rng).unwrap().target)
        .collect();
    assert!(train.contains(&24) && !train.contains(&30), "{train:?}");
}

#[test]
fn heldout_targets_paper_preset_is_the_reference_list() {
    assert_eq!(
        PAPER_HELDOUT_TARGETS,
        [14, 24, 40, 42, 58, 63, 71, 87, 89, 90]
    );
    let resolved =
        resolve_countdown_data(&table("heldout_targets = \"paper\"\ntest_size = 300")).unwrap();
    // The resolved table keeps the preset, drops the unused rule keys and
    // resolves again to itself.
    assert_eq!(resolved["heldout_targets"].as_str(), Some("paper"));
    assert!(!resolved.contains_key("heldout_target_frac"));
    assert_eq!(resolve_countdown_data(&resolved).unwrap(), resolved);
    let cfg: CountdownTaskConfig = toml::Value::Table(resolved).try_into().unwrap();
    let task = CountdownTask::countdown(&cfg, 0).unwrap();
    assert_eq!(
        targets_of(&task, "test"),
        BTreeSet::from(PAPER_HELDOUT_TARGETS)
    );
    assert!(targets_of(&task, "val").is_disjoint(&BTreeSet::from(PAPER_HELDOUT_TARGETS)));
}

#[test]
fn heldout_targets_with_frac_or_extra_is_an_error_naming_both() {
    for other in ["heldout_target_frac = 0.2", "heldout_extra_targets = [24]"] {
        let e = resolve_countdown_data(&table(&format!("heldout_targets = [30]\n{other}")))
            .unwrap_err()
            .to_string();
        let key = other.split(' ').next().unwrap();
        assert!(
            e.contains("data.heldout_targets") && e.contains(&format!("data.{key}")),
            "{e}"
        );
    }
    // The same through the struct (a non-default value).
    let e = CountdownTaskConfig {
        heldout_targets: Some(HeldoutTargets::List(vec![30])),
        heldout_target_frac: 0.3,
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("data.heldout_targets") && e.contains("data.heldout_target_frac"),
        "{e}"
    );
}

#[test]
fn heldout_targets_bad_values_name_the_key_and_the_choices() {
    let e = resolve_countdown_data(&table("heldout_targets = \"best\""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.heldout_targets") && e.contains("\"paper\""),
        "{e}"
    );
    let e = resolve_countdown_data(&table("heldout_targets = [-1]"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.heldout_targets") && e.contains("0..=1000000"),
        "{e}"
    );
    // Every target of the range held out leaves nothing for train/val.
    let all: Vec<String> = (10..=100).map(|t| t.to_string()).collect();
    let e = resolve_countdown_data(&table(&format!("heldout_targets = [{}]", all.join(","))))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.heldout_targets") && e.contains("no target for train/val"),
        "{e}"
    );
}

fn read_jsonl<T: serde::de::DeserializeOwned>(p: &Path) -> Vec<T> {
    fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const BUILD: &str = r#"
seed = 5
[countdown]
heldout_targets = "paper"
train_size = 60
val_size = 10
test_size = 10
[game24]
enabled = false
[search]
mode = "paper"
[baseline]
enabled = false
"#;

/// The dataset builder's `[search] mode = "paper"` and
/// `[countdown] heldout_targets`: both searches' paths per problem, the
/// paper's test targets, and a `config.toml` that loads again.
#[test]
fn dataset_builder_paper_mode_and_heldout_targets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("paper.toml");
    fs::write(&cfg_path, BUILD).unwrap();
    let cfg = load_config(&cfg_path).unwrap();
    let out = dir.path().join("out");
    let stats = build_datasets(&cfg, &out).unwrap();
    let cd = stats.countdown.unwrap();
    assert_eq!(cd.test_targets, PAPER_HELDOUT_TARGETS.to_vec());
    let train = &cd.splits[0];
    let names: Vec<&str> = train
        .strategies
        .iter()
        .map(|s| s.strategy.as_str())
        .collect();
    assert_eq!(names, ["bfs5-mult", "dfs-sum"]);
    assert!(
        train.strategies.iter().all(|s| s.problems == 60),
        "every problem, both searches"
    );
    assert_eq!(train.total.problems, 60);
    let pos: Vec<PathRecord> = read_jsonl(&out.join("countdown/train_pos.jsonl"));
    let neg: Vec<PathRecord> = read_jsonl(&out.join("countdown/train_neg.jsonl"));
    assert_eq!(pos.len(), train.total.pos_paths);
    assert!(
        pos.len() > 60 / 2 && neg.len() > 3 * 60,
        "{} / {}",
        pos.len(),
        neg.len()
    );
    for id in pos.iter().map(|p| &p.id).collect::<BTreeSet<_>>() {
        let of = |v: &[PathRecord]| v.iter().filter(|p| &p.id == id).count();
        assert!(of(&pos) <= 2 && of(&neg) <= 6, "{id}");
    }
    // The written config reads back (no exclusive keys left in it).
    let written = load_config(&out.join("config.toml")).unwrap();
    assert_eq!(written, cfg);
    // Both held-out rules at once, or an unknown mode, are refused by name.
    fs::write(
        &cfg_path,
        BUILD.replace("train_size = 60", "heldout_target_frac = 0.1"),
    )
    .unwrap();
    let e = format!("{:#}", load_config(&cfg_path).unwrap_err());
    assert!(
        e.contains("countdown.heldout_targets") && e.contains("countdown.heldout_target_frac"),
        "{e}"
    );
    fs::write(
        &cfg_path,
        BUILD.replace("mode = \"paper\"", "mode = \"both\""),
    )
    .unwrap();
    let e = format!("{:#}", load_config(&cfg_path).unwrap_err());
    assert!(e.contains("search.mode") && e.contains("\"paper\""), "{e}");
}

fn multiset(prompt: &str) -> [i64; 4] {
    let (numbers, _, _) = parse_prompt(prompt).unwrap();
    let mut m: [i64; 4] = numbers.try_into().unwrap();
    m.sort_unstable();
    m
}

/// `split = "ranked"`: the paper's Game-of-24 split (its `splits.py`):
/// test = ranks 901-1000 of ToT's ranking, val 180 of ranks 1-900, the
/// other 720 the training pool; the default split is unchanged.
#[test]
fn game24_ranked_split_tests_on_ranks_901_to_1000() {
    let ranked = game24_ranked();
    let test_ranks: BTreeSet<[i64; 4]> = ranked[900..1000].iter().copied().collect();
    let pool: BTreeSet<[i64; 4]> = ranked[..900].iter().copied().collect();
    let cfg = Game24TaskConfig {
        split: Game24SplitKind::Ranked,
        ..Default::default()
    };
    let task = CountdownTask::game24(&cfg).unwrap();
    let test: BTreeSet<[i64; 4]> = task
        .problems("test")
        .unwrap()
        .iter()
        .map(|p| multiset(&p.prompt))
        .collect();
    let val: BTreeSet<[i64; 4]> = task
        .problems("val")
        .unwrap()
        .iter()
        .map(|p| multiset(&p.prompt))
        .collect();
    assert_eq!(test, test_ranks);
    assert_eq!(val.len(), 180);
    assert!(val.is_subset(&pool));
    let mut rng = StdRng::seed_from_u64(0);
    let train: BTreeSet<[i64; 4]> = (0..20_000)
        .map(|_| {
            let i = task.sample_train_instance(&mut rng).unwrap();
            let mut m: [i64; 4] = i.numbers.try_into().unwrap();
            m.sort_unstable();
            m
        })
        .collect();
    assert_eq!(train.len(), 720, "the 720 other puzzles of ranks 1-900");
    assert!(train.is_subset(&pool) && train.is_disjoint(&val));
    // Another split_seed moves val within ranks 1-900 only.
    let other = CountdownTask::game24(&Game24TaskConfig {
        split_seed: 7,
        ..cfg.clone()
    })
    .unwrap();
    let other_val: BTreeSet<[i64; 4]> = other
        .problems("val")
        .unwrap()
        .iter()
        .map(|p| multiset(&p.prompt))
        .collect();
    assert_ne!(other_val, val);
    assert!(other_val.is_subset(&pool));
    // The default ("random") split is not the ranked one.
    let default = CountdownTask::game24(&Game24TaskConfig::default()).unwrap();
    let default_test: BTreeSet<[i64; 4]> = default
        .problems("test")
        .unwrap()
        .iter()
        .map(|p| multiset(&p.prompt))
        .collect();
    assert_ne!(default_test, test_ranks);
}

#[test]
fn game24_split_bad_values_name_the_key() {
    let e = resolve_game24_data(&table("split = \"hard\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("data.split") && e.contains("\"ranked\""), "{e}");
    let e = resolve_game24_data(&table("split = \"ranked\"\nval_size = 900"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("data.val_size") && e.contains("< 900"), "{e}");
    let e = resolve_game24_data(&table("split = \"ranked\"\ntest_size = 463"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("data.test_size") && e.contains("<= 462"), "{e}");
    // The default is left out of the resolved table (existing configs
    // resolve as before); "ranked" is kept.
    assert!(!resolve_game24_data(&table(""))
        .unwrap()
        .contains_key("split"));
    let r = resolve_game24_data(&table("split = \"ranked\"")).unwrap();
    assert_eq!(r["split"].as_str(), Some("ranked"));
}

/// `prompt = "paper"`: the paper's instruction line before `Input:`
/// (papers.md, "Trace text format"); the default prompt is unchanged.
#[test]
fn paper_prompt_puts_the_instruction_line_before_input() {
    const CD: &str =
        "Use numbers and basic arithmetic operations (+ - * /) to obtain the target number.\nInput: ";
    const G24: &str =
        "Use numbers and basic arithmetic operations (+ - * /) to obtain 24.\nInput: ";
    let cfg = CountdownTaskConfig {
        prompt: PromptStyle::Paper,
        val_size: 20,
        test_size: 20,
        ..Default::default()
    };
    let task = CountdownTask::countdown(&cfg, 2).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let mut problems = task.problems("val").unwrap();
    problems.extend(task.problems("test").unwrap());
    problems.push(task.sample_problem(&mut rng).unwrap());
    for p in &problems {
        assert!(p.prompt.starts_with(CD), "{:?}", p.prompt);
        assert_eq!(
            task.verify(p, &p.reference),
            Some(true),
            "graded through the new prompt"
        );
        assert!(p.prompt.len() + p.reference.len() + 2 <= task.max_seq_len());
    }
    let g = CountdownTask::game24(&Game24TaskConfig {
        prompt: PromptStyle::Paper,
        ..Default::default()
    })
    .unwrap();
    let p = &g.problems("test").unwrap()[0];
    assert!(p.prompt.starts_with(G24), "{:?}", p.prompt);
    assert_eq!(g.verify(p, &p.reference), Some(true));
    // Default: no instruction line, and the key stays out of the table.
    let plain = CountdownTask::countdown(
        &CountdownTaskConfig {
            prompt: PromptStyle::Short,
            ..cfg
        },
        2,
    )
    .unwrap();
    assert!(plain.problems("val").unwrap()[0]
        .prompt
        .starts_with("Input: "));
    assert!(!resolve_countdown_data(&table(""))
        .unwrap()
        .contains_key("prompt"));
    let e = resolve_countdown_data(&table("prompt = \"long\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("data.prompt") && e.contains("paper"), "{e}");
}

/// The verifier and text after the `Answer:` line: the strict default
/// rejects any non-empty trailing line; `verifier = "paper"` judges only
/// the text up to the first `Answer:` line, as the paper's `base_cot.py`
/// does ("find the first appearance", then drop the rest).
#[test]
fn verifier_strict_rejects_trailing_text_and_paper_cuts_at_the_first_answer() {
    let strict_cfg = CountdownTaskConfig {
        val_size: 5,
        test_size: 5,
        ..Default::default()
    };
    let strict = CountdownTask::countdown(&strict_cfg, 9).unwrap();
    let paper = CountdownTask::countdown(
        &CountdownTaskConfig {
            verifier: VerifierMode::Paper,
            ..strict_cfg
        },
        9,
    )
    .unwrap();
    let p = &strict.problems("val").unwrap()[0];
    let right = p.reference.clone();
    let (numbers, target, _) = parse_prompt(&p.prompt).unwrap();
    let wrong_answer = format!(
        "Answer: {} = {}\n",
        numbers
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        target
    );
    // A correct path followed by more text, e.g. a second attempt.
    let trailing = format!("{right}Input: 1 2\nmore text\n");
    assert!(matches!(
        verify_completion(&numbers, target, &trailing, Game::Countdown),
        Err(Rejection::TrailingText { .. })
    ));
    assert_eq!(strict.verify(p, &trailing), Some(false));
    assert_eq!(paper.verify(p, &trailing), Some(true));
    assert_eq!(cut_at_answer(&trailing), right);
    // Empty lines after the answer are fine for both.
    assert_eq!(strict.verify(p, &format!("{right}\n\n")), Some(true));
    // Only the first answer counts: a wrong first answer is not rescued
    // by a right second one, and a right first one is not spoiled.
    let steps = &right[..right.find("Answer:").unwrap()];
    let wrong_then_right = format!("{steps}{wrong_answer}{right}");
    assert_eq!(paper.verify(p, &wrong_then_right), Some(false));
    assert_eq!(
        paper.verify(p, &format!("{right}{wrong_answer}")),
        Some(true)
    );
    // Without an Answer line nothing is cut (and nothing verifies).
    assert_eq!(cut_at_answer(steps), steps);
    assert_eq!(paper.verify(p, steps), Some(false));
    let e = resolve_countdown_data(&table("verifier = \"lenient\""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.verifier") && e.contains("paper") && e.contains("strict"),
        "{e}"
    );
}

/// The new keys show, with their docs, in `rewind config --explain`.
#[test]
fn new_keys_are_explained() {
    let cd = rewind::experiment::explain::explain("countdown").unwrap();
    for key in ["heldout_targets", "prompt", "verifier"] {
        assert!(cd.contains(key), "countdown: {key} missing");
    }
    assert!(cd.contains("\"paper\"") && cd.contains("14, 24, 40, 42, 58, 63, 71, 87, 89, 90"));
    let g = rewind::experiment::explain::explain("game24").unwrap();
    for key in ["split", "ranked", "prompt", "verifier"] {
        assert!(g.contains(key), "game24: {key} missing");
    }
}

/// The dataset builder's top-level `prompt = "paper"`: every problem and
/// path line carries the instruction line, and the paths still verify.
#[test]
fn dataset_builder_paper_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg: CountdownDataConfig = toml::from_str(
        "prompt = \"paper\"\n[countdown]\ntrain_size = 20\nval_size = 5\ntest_size = 5\n[game24]\nval_size = 5\ntest_size = 5\n[baseline]\nenabled = false\n",
    )
    .unwrap();
    build_datasets(&cfg, dir.path()).unwrap();
    for (task, line) in [
        ("countdown", "Use numbers and basic arithmetic operations (+ - * /) to obtain the target number.\nInput: "),
        ("game24", "Use numbers and basic arithmetic operations (+ - * /) to obtain 24.\nInput: "),
    ] {
        let pos: Vec<PathRecord> = read_jsonl(&dir.path().join(task).join("train_pos.jsonl"));
        let neg: Vec<PathRecord> = read_jsonl(&dir.path().join(task).join("train_neg.jsonl"));
        assert!(!pos.is_empty() && !neg.is_empty());
        for p in pos.iter().chain(&neg) {
            assert!(p.prompt.starts_with(line), "{task}: {:?}", p.prompt);
            assert_eq!(verify(&format!("{}{}", p.prompt, p.completion), p.task).is_ok(), p.correct);
        }
    }
    // The default writes the short prompt and leaves the key out of config.toml.
    let plain = tempfile::tempdir().unwrap();
    let cfg = CountdownDataConfig {
        prompt: PromptStyle::Short,
        ..cfg
    };
    build_datasets(&cfg, plain.path()).unwrap();
    let pos: Vec<PathRecord> = read_jsonl(&plain.path().join("countdown/train_pos.jsonl"));
    assert!(pos[0].prompt.starts_with("Input: "));
    assert!(!fs::read_to_string(plain.path().join("config.toml"))
        .unwrap()
        .contains("prompt"));
}
