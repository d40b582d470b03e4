//! The step-level beam search (the Tree-of-Thoughts analogue behind the
//! "search capability" probes): Countdown's step rules accept exactly the
//! beginnings of verified completions, a search over every legal line
//! finds a solution of every solvable problem, no proposer can make it
//! return an illegal path, the model proposer is deterministic and its
//! kept decoding states change nothing, and a beam probe runs end to end.

use std::collections::HashMap;

use dfdx::prelude::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rewind::data::vocab::{self, NEWLINE};
use rewind::eval::beam::BeamError;
use rewind::eval::{
    beam_search, generate_until, last_logits_uncached, BeamSettings, Decoding, LineEnd,
    ModelProposer, Proposal, Proposer,
};
use rewind::experiment::config::ExperimentConfig;
use rewind::experiment::run::{run, run_dir};
use rewind::experiment::sweep::RunSpec;
use rewind::model::decode::CachedDecoder;
use rewind::model::{rng_for, ModelConfig, Transformer};
use rewind::tasks::countdown::path::{parse_prompt, render_completion};
use rewind::tasks::countdown::rules::{take_operands, Game, Move, Op, Ratio, Value, MAX_MOVES};
use rewind::tasks::countdown::{CountdownTask, CountdownTaskConfig, Game24TaskConfig};
use rewind::tasks::{StepRules, Task};

use crate::run::{opts, rows};

fn countdown(val: usize) -> CountdownTask {
    let cfg = CountdownTaskConfig {
        val_size: val,
        test_size: 1,
        ..Default::default()
    };
    CountdownTask::countdown(&cfg, 7).unwrap()
}

fn game24(val: usize) -> CountdownTask {
    CountdownTask::game24(&Game24TaskConfig {
        val_size: val,
        test_size: 1,
        ..Default::default()
    })
    .unwrap()
}

fn lines(completion: &str) -> Vec<&str> {
    completion.lines().collect()
}

/// Every legal next line after `moves` on the prompt's numbers, generated
/// from the rules (every pair of numbers left, every move the game
/// allows), rendered by the path format; the answer line once one number
/// is left. Each comes with the moves it leads to.
fn legal_next(prompt: &str, moves: &[Move<Ratio>], game: Game) -> Vec<(String, Vec<Move<Ratio>>)> {
    let (numbers, _, _) = parse_prompt(prompt).unwrap();
    let mut left: Vec<Ratio> = numbers.iter().map(|&n| Ratio::int(n)).collect();
    for m in moves {
        take_operands(&mut left, |v| *v, m.lhs, m.rhs).unwrap();
        left.push(m.result);
    }
    // line k of the path format's text for `ms`, completed (by adding the
    // first two numbers left) so that it renders
    let render = |ms: &[Move<Ratio>], k: usize| {
        let mut all = ms.to_vec();
        let mut rest = left.clone();
        for m in &ms[moves.len()..] {
            take_operands(&mut rest, |v| *v, m.lhs, m.rhs).unwrap();
            rest.push(m.result);
        }
        while rest.len() > 1 {
            let (a, b) = (rest.remove(0), rest.remove(0));
            let result = a.checked_add(b).unwrap();
            all.push(Move {
                lhs: a,
                op: Op::Add,
                rhs: b,
                result,
            });
            rest.push(result);
        }
        let text = render_completion(&numbers, &all).unwrap();
        text.lines().nth(k).unwrap().to_string()
    };
    if left.len() == 1 {
        return vec![(render(moves, moves.len()), moves.to_vec())];
    }
    let mut out = vec![];
    let mut buf = [Move::default(); MAX_MOVES];
    for i in 0..left.len() {
        for j in i + 1..left.len() {
            // Game-of-24 moves are a superset of Countdown's: keep the
            // ones this game allows
            let k = Ratio::moves(left[i], left[j], &mut buf);
            for m in &buf[..k] {
                if game.apply(m.op, m.lhs, m.rhs) == Ok(m.result) {
                    let mut next = moves.to_vec();
                    next.push(*m);
                    out.push((render(&next, moves.len()), next));
                }
            }
        }
    }
    out
}

/// Proposes every legal next line with the same log-probability.
struct Uniform {
    game: Game,
    /// The moves behind every path it proposed.
    moves: HashMap<Vec<String>, Vec<Move<Ratio>>>,
}

impl Uniform {
    fn new(game: Game) -> Self {
        Self {
            game,
            moves: HashMap::new(),
        }
    }

    fn legal(&mut self, prompt: &str, lines: &[String]) -> Vec<String> {
        let moves = self.moves.get(lines).cloned().unwrap_or_default();
        legal_next(prompt, &moves, self.game)
            .into_iter()
            .map(|(line, next)| {
                let mut path = lines.to_vec();
                path.push(line.clone());
                self.moves.insert(path, next);
                line
            })
            .collect()
    }
}

impl Proposer for Uniform {
    fn propose(
        &mut self,
        prompt: &str,
        states: &[&[String]],
        _max_tokens: &[usize],
        _rng: &mut StdRng,
    ) -> Result<Vec<Vec<Proposal>>, BeamError> {
        Ok(states
            .iter()
            .map(|lines| {
                self.legal(prompt, lines)
                    .into_iter()
                    .map(|line| Proposal {
                        line,
                        logprob: -1.0,
                    })
                    .collect()
            })
            .collect())
    }
}

/// Mixes legal lines with corrupted ones (a character changed), garbage,
/// step-shaped nonsense and wrong answers, in random order, with random
/// log-probabilities.
struct Adversary(Uniform);

fn corrupt(line: &str, rng: &mut StdRng) -> String {
    let mut c: Vec<char> = line.chars().collect();
    let i = rng.gen_range(0..c.len());
    let pool = "0123456789+-*/= ()left:Answer";
    c[i] = pool.chars().nth(rng.gen_range(0..pool.len())).unwrap();
    c.into_iter().collect()
}

impl Proposer for Adversary {
    fn propose(
        &mut self,
        prompt: &str,
        states: &[&[String]],
        _max_tokens: &[usize],
        rng: &mut StdRng,
    ) -> Result<Vec<Vec<Proposal>>, BeamError> {
        Ok(states
            .iter()
            .map(|lines| {
                let legal = self.0.legal(prompt, lines);
                let mut out = vec![];
                for _ in 0..rng.gen_range(0..12) {
                    let line = match rng.gen_range(0..6) {
                        0 | 1 if !legal.is_empty() => legal[rng.gen_range(0..legal.len())].clone(),
                        2 if !legal.is_empty() => {
                            corrupt(&legal[rng.gen_range(0..legal.len())], rng)
                        }
                        3 => (0..rng.gen_range(0..20))
                            .map(|_| rng.gen_range(b' '..=b'~') as char)
                            .collect(),
                        4 => format!(
                            "{} + {} = {} (left: {})",
                            rng.gen_range(0..100),
                            rng.gen_range(0..100),
                            rng.gen_range(0..200),
                            rng.gen_range(0..200)
                        ),
                        _ => format!("Answer: {} = 24", rng.gen_range(0..100)),
                    };
                    out.push(Proposal {
                        line,
                        logprob: -rng.gen_range(0.0..5.0),
                    });
                }
                out
            })
            .collect())
    }
}

fn settings(width: usize, task: &dyn Task) -> BeamSettings {
    BeamSettings {
        width,
        max_tokens: task.max_answer_len() + 1,
    }
}

#[test]
fn legal_prefix_accepts_every_prefix_of_a_verified_completion_and_rejects_a_corrupted_step() {
    for task in [countdown(30), game24(30)] {
        let rules = task.step_rules().expect("countdown has step rules");
        for p in task.problems("val").unwrap() {
            assert_eq!(task.verify(&p, &p.reference), Some(true));
            let ls = lines(&p.reference);
            for k in 0..=ls.len() {
                assert!(
                    rules.legal_prefix(&p.prompt, &ls[..k]),
                    "{}{:?} rejected",
                    p.prompt,
                    &ls[..k]
                );
            }
            assert!(rules.is_final(ls[ls.len() - 1]));
            assert!(ls[..ls.len() - 1].iter().all(|l| !rules.is_final(l)));
            // corrupting any step (its result, its left list) rejects that
            // prefix and every longer one
            for k in 0..ls.len() - 1 {
                let (lhs, list) = ls[k].split_once(" (left:").unwrap();
                let (ab, c) = lhs.rsplit_once(" = ").unwrap();
                let wrong_result = format!("{ab} = {}{c} (left:{list}", 1);
                let wrong_left = format!("{lhs} (left: 9999{list}");
                for bad in [wrong_result, wrong_left] {
                    let mut v = ls.clone();
                    v[k] = &bad;
                    for end in k + 1..=v.len() {
                        assert!(!rules.legal_prefix(&p.prompt, &v[..end]), "{:?}", &v[..end]);
                    }
                }
            }
            let steps = &ls[..ls.len() - 1];
            // the answer too early, a step too many, a line with a newline,
            // and an answer that is not the verifier's
            assert!(!rules.legal_prefix(&p.prompt, &[ls[ls.len() - 1]]));
            let mut extra = steps.to_vec();
            extra.push(steps[0]);
            assert!(!rules.legal_prefix(&p.prompt, &extra));
            assert!(!rules.legal_prefix(&p.prompt, &[&format!("{}\n", steps[0])]));
            let mut bad_answer = steps.to_vec();
            let wrong = format!("{} + 0", ls[ls.len() - 1]);
            bad_answer.push(&wrong);
            assert!(!rules.legal_prefix(&p.prompt, &bad_answer));
            assert!(!rules.legal_prefix("Input: 1 2\nSteps:\n", &[]));
        }
    }
}

#[test]
fn legal_prefix_agrees_with_the_verifier_on_complete_paths() {
    // every full path of a problem, successful or failed: legal as a
    // whole exactly when the verifier accepts it
    let task = countdown(3);
    let rules = task.step_rules().unwrap();
    for p in task.problems("val").unwrap() {
        let mut stack = vec![vec![]];
        let (mut checked, mut ok) = (0, 0);
        while let Some(moves) = stack.pop() {
            for (line, next) in legal_next(&p.prompt, &moves, Game::Countdown) {
                if next.len() == moves.len() {
                    let (numbers, _, _) = parse_prompt(&p.prompt).unwrap();
                    let completion = render_completion(&numbers, &moves).unwrap();
                    let verified = task.verify(&p, &completion) == Some(true);
                    assert!(lines(&completion).last() == Some(&line.as_str()));
                    assert_eq!(rules.legal_prefix(&p.prompt, &lines(&completion)), verified);
                    checked += 1;
                    ok += verified as usize;
                } else {
                    stack.push(next);
                }
            }
        }
        assert!(checked > 100 && ok > 0, "{checked} paths, {ok} solutions");
    }
}

#[test]
fn a_wide_uniform_beam_solves_every_solvable_problem() {
    // 20 random solvable 4-number problems; 1152 full paths at most, so a
    // beam of 2000 keeps every legal path and must reach a solution
    let task = countdown(20);
    let rules = task.step_rules().unwrap();
    let problems = task.problems("val").unwrap();
    assert_eq!(problems.len(), 20);
    for (i, p) in problems.iter().enumerate() {
        let mut proposer = Uniform::new(Game::Countdown);
        let out = beam_search(
            rules,
            &mut proposer,
            &p.prompt,
            settings(2000, &task),
            &mut rng_for(0, &format!("uniform/{i}")),
        )
        .unwrap();
        let best = out.best.expect("a wide beam finds a solution");
        assert_eq!(task.verify(p, &best.completion()), Some(true));
        assert_eq!(out.depth, 4, "3 steps and the answer");
        assert!((best.logprob + 4.0).abs() < 1e-12);
    }
    // Game of 24 (fractions in the steps) too
    let g = game24(5);
    for p in g.problems("val").unwrap() {
        let out = beam_search(
            g.step_rules().unwrap(),
            &mut Uniform::new(Game::Game24),
            &p.prompt,
            settings(3000, &g),
            &mut rng_for(0, "uniform24"),
        )
        .unwrap();
        assert_eq!(g.verify(&p, &out.best.unwrap().completion()), Some(true));
    }
}

#[test]
fn a_narrow_beam_can_fail_but_never_returns_a_wrong_path() {
    // width 1 with equal scores keeps the first legal line only: a greedy
    // path, often a dead end
    let task = countdown(20);
    let (mut found, mut none) = (0, 0);
    for p in task.problems("val").unwrap() {
        let out = beam_search(
            task.step_rules().unwrap(),
            &mut Uniform::new(Game::Countdown),
            &p.prompt,
            settings(1, &task),
            &mut rng_for(0, "narrow"),
        )
        .unwrap();
        match out.best {
            Some(b) => {
                assert_eq!(task.verify(&p, &b.completion()), Some(true));
                found += 1;
            }
            None => none += 1,
        }
    }
    assert!(none > 0, "width 1 should miss some ({found} found)");
}

#[test]
fn adversarial_proposals_still_find_solutions_sometimes() {
    // the property test below is not vacuous: legal lines get through
    let task = countdown(20);
    let mut found = 0;
    for (i, p) in task.problems("val").unwrap().iter().enumerate() {
        let out = beam_search(
            task.step_rules().unwrap(),
            &mut Adversary(Uniform::new(Game::Countdown)),
            &p.prompt,
            settings(50, &task),
            &mut rng_for(i as u64, "adversary"),
        )
        .unwrap();
        if let Some(b) = out.best {
            assert_eq!(task.verify(p, &b.completion()), Some(true));
            found += 1;
        }
        assert!(out.legal <= out.proposed);
    }
    assert!(found > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the proposer says (legal lines, corrupted lines, garbage,
    /// wrong answers, any scores), the search returns a path the verifier
    /// accepts, or none.
    #[test]
    fn the_search_never_returns_an_illegal_path(
        seed in any::<u64>(),
        which in 0usize..8,
        width in 1usize..8,
        g24 in any::<bool>(),
    ) {
        let (task, game) = if g24 { (game24(8), Game::Game24) } else { (countdown(8), Game::Countdown) };
        let p = &task.problems("val").unwrap()[which];
        let out = beam_search(
            task.step_rules().unwrap(),
            &mut Adversary(Uniform::new(game)),
            &p.prompt,
            settings(width, &task),
            &mut StdRng::seed_from_u64(seed),
        )
        .unwrap();
        if let Some(b) = out.best {
            prop_assert_eq!(task.verify(p, &b.completion()), Some(true), "{:?}", b);
        }
    }
}

/// Step rules for any text: every line legal, a line final when its
/// length is a multiple of 3. Lets the model proposer run several steps
/// deep without having learnt Countdown.
struct AnyLines;

impl StepRules for AnyLines {
    fn legal_prefix(&self, _prompt: &str, lines: &[&str]) -> bool {
        lines.iter().all(|l| !l.contains('\n'))
    }
    fn is_final(&self, line: &str) -> bool {
        line.len().is_multiple_of(3)
    }
}

/// An untrained tiny model whose head favours `\n` (so its lines end
/// after a few tokens).
fn newline_model(max_len: usize) -> Transformer<Cpu> {
    let dev = Cpu::default();
    let cfg = ModelConfig {
        d_model: 16,
        n_heads: 2,
        n_layers: 1,
        d_ff: 32,
        max_len,
        ..Default::default()
    };
    let mut m = Transformer::new(&cfg, &dev, 5).unwrap();
    let names: Vec<String> = m.params().into_iter().map(|(n, _)| n).collect();
    for (name, p) in names.iter().zip(m.params_mut()) {
        if name == "head.bias" {
            let mut v = p.as_vec();
            v[NEWLINE as usize] += 3.0;
            *p = dev.tensor_from_vec(v, *p.shape());
        }
    }
    m
}

/// A model proposer that keeps no decoding states: every call prefills.
struct Fresh<'a>(&'a CachedDecoder, usize, Decoding);

impl Proposer for Fresh<'_> {
    fn propose(
        &mut self,
        prompt: &str,
        states: &[&[String]],
        max_tokens: &[usize],
        rng: &mut StdRng,
    ) -> Result<Vec<Vec<Proposal>>, BeamError> {
        ModelProposer::new(self.0, self.1, self.2).propose(prompt, states, max_tokens, rng)
    }
}

#[test]
fn model_beam_search_is_deterministic_and_kept_states_change_nothing() {
    let model = newline_model(96);
    let decoder = CachedDecoder::new(&model);
    let decoding = Decoding::Sample {
        temperature: 1.0,
        top_p: 1.0,
    };
    let prompt = "Input: 25 5 5 33\nTarget: 27\nSteps:\n";
    let s = BeamSettings {
        width: 3,
        max_tokens: 40,
    };
    let search = |p: &mut dyn Proposer, seed: u64| {
        beam_search(&AnyLines, p, prompt, s, &mut rng_for(seed, "beam")).unwrap()
    };
    let a = search(&mut ModelProposer::new(&decoder, 4, decoding), 1);
    let b = search(&mut ModelProposer::new(&decoder, 4, decoding), 1);
    assert_eq!(a, b, "same seed, same search");
    assert!(a.depth >= 2 && a.legal > 4, "{a:?}");
    assert!(a.best.is_some());
    let c = search(&mut Fresh(&decoder, 4, decoding), 1);
    assert_eq!(a, c, "continuing from kept states = prefilling");
    // and the path's score is the model's log-probability of its lines
    let best = a.best.unwrap();
    let dev = Cpu::default();
    let mut state: Vec<u32> = std::iter::once(vocab::BOS)
        .chain(vocab::encode(prompt).unwrap())
        .collect();
    let mut lp = 0.0f64;
    for l in &best.lines {
        for t in vocab::encode(&format!("{l}\n")).unwrap() {
            let logits = &last_logits_uncached(&model, &dev, &[state.clone()])[0];
            let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let z: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
            lp += logits[t as usize] as f64 - max - z.ln();
            state.push(t);
        }
    }
    assert!((lp - best.logprob).abs() < 1e-3, "{lp} vs {}", best.logprob);
}

#[test]
fn generate_until_stops_at_the_line_end_and_scores_at_temperature_one() {
    let model = newline_model(64);
    let decoder = CachedDecoder::new(&model);
    let prompt: Vec<u32> = std::iter::once(vocab::BOS)
        .chain(vocab::encode("Input: 1 2\n").unwrap())
        .collect();
    let rows = vec![decoder.start(&prompt); 6];
    let budgets = [30, 30, 30, 30, 2, 0];
    for decoding in [
        Decoding::Greedy,
        Decoding::Sample {
            temperature: 0.5,
            top_p: 0.9,
        },
    ] {
        let gens = generate_until(
            &decoder,
            rows.clone(),
            &budgets,
            decoding,
            NEWLINE,
            &mut rng_for(3, "until"),
        );
        for (g, &budget) in gens.iter().zip(&budgets) {
            let out = &g.generation.output;
            assert!(g.generation.actions.len() <= budget);
            match g.end {
                LineEnd::Stop => {
                    assert_eq!(out.last(), Some(&NEWLINE));
                    assert!(!out[..out.len() - 1].contains(&NEWLINE));
                    // the state holds all but the pending newline
                    assert_eq!(g.state.len(), prompt.len() + out.len() - 1);
                }
                LineEnd::Eos => assert!(g.generation.finished),
                LineEnd::Budget => assert!(!out.contains(&NEWLINE)),
            }
            if budget == 0 {
                assert_eq!((g.end, g.logprob), (LineEnd::Budget, 0.0));
            }
            assert!(g.logprob <= 0.0 && g.logprob.is_finite());
        }
        assert!(gens.iter().any(|g| g.end == LineEnd::Stop));
    }
}

/// A tiny Countdown run whose probes include a beam search.
const BEAM_RUN: &str = r#"
[experiment]
name = "tiny_beam"
kind = "countdown"
seed = 2

[model]
d_model = 16
n_heads = 2
n_layers = 1
d_ff = 32
max_len = 192

[data]
val_size = 3
test_size = 3

[[stages]]
name = "sft"
objective = { kind = "mle" }
steps = 2
batch_size = 2
warmup_steps = 1
eval_every = 0
checkpoint_every = 0

[eval]
batch_size = 3

[[eval.probes]]
split = "test"
grader = "verifier"

[[eval.probes]]
split = "test"
grader = "verifier"
decoder = { kind = "beam", width = 2, proposals = 3 }
"#;

#[test]
fn a_beam_probe_runs_end_to_end_and_logs_its_wall_time() {
    let cfg = RunSpec::single(&ExperimentConfig::from_toml(BEAM_RUN).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dev = rewind::model::device::default_device();
    let s = run(&cfg, dev, "cpu", &opts(tmp.path(), None))
        .unwrap()
        .unwrap();
    let beam = "test/beam2_n3/verifier";
    assert_eq!(s.n[beam], 3);
    assert!((0.0..=1.0).contains(&s.exact_match[beam]));
    for probe in [beam, "test/greedy/verifier"] {
        let secs = s.timing[probe]["seconds_per_problem"];
        assert!(secs > 0.0 && secs.is_finite(), "{probe}: {secs}");
    }
    let dir = run_dir(&cfg, tmp.path());
    let all = rewind::metrics::read(&dir.join("metrics.csv")).unwrap();
    assert!(all
        .iter()
        .any(|r| r.split == beam && r.metric == "seconds_per_problem"));
    let det = rows(&dir);
    assert!(det.iter().any(|r| r.2 == beam && r.3 == "verified"));
    assert!(!det.iter().any(|r| r.3 == "seconds_per_problem"));
}

#[test]
fn the_beam_probe_scores_the_same_problems_the_same_way_every_time() {
    use rewind::eval::probe::run_probe;
    use rewind::eval::ProbeConfig;
    let task = countdown(4);
    let problems = task.problems("val").unwrap();
    let model = newline_model(192);
    let decoder = CachedDecoder::new(&model);
    let mut probe: ProbeConfig =
        toml::from_str("split = \"val\"\ngrader = \"verifier\"\ndecoder = { kind = \"beam\" }")
            .unwrap();
    probe.resolve();
    assert_eq!(probe.name, "val/beam5/verifier");
    let go = |limit: usize| {
        run_probe(
            &decoder,
            &task,
            &problems[..limit],
            &probe,
            task.max_answer_len() + 1,
            2,
            |k| rng_for(9, &format!("probe/{k}")),
        )
        .unwrap()
    };
    let (a, b) = (go(4), go(4));
    assert_eq!((a.n, a.samples), (4, 4));
    assert!(a.seconds > 0.0);
    let strip = |mut r: rewind::eval::ProbeResult| {
        r.seconds = 0.0;
        r
    };
    assert_eq!(strip(a.clone()), strip(b));
    // problem i draws from rngs(i): fewer problems, the same answers
    let c = go(2);
    assert_eq!(
        c.wrong_examples[..],
        a.wrong_examples[..c.wrong_examples.len()]
    );
}

#[test]
fn beam_settings_are_validated_and_need_step_rules() {
    let err = |text: &str| -> String {
        match ExperimentConfig::from_toml(text) {
            Err(e) => format!("{e:#}"),
            Ok(cfg) => {
                let spec = RunSpec::single(&cfg).unwrap();
                let tmp = tempfile::tempdir().unwrap();
                let r = run(
                    &spec,
                    rewind::model::device::default_device(),
                    "cpu",
                    &opts(tmp.path(), None),
                );
                format!("{:#}", r.map(|_| ()).unwrap_err())
            }
        }
    };
    let with =
        |decoder: &str| BEAM_RUN.replace("{ kind = \"beam\", width = 2, proposals = 3 }", decoder);
    for (decoder, key) in [
        (
            "{ kind = \"beam\", width = 0 }",
            "eval.probes[1].decoder.width",
        ),
        (
            "{ kind = \"beam\", proposals = 0 }",
            "eval.probes[1].decoder.proposals",
        ),
        (
            "{ kind = \"beam\", temperature = 0 }",
            "eval.probes[1].decoder.temperature",
        ),
        (
            "{ kind = \"beam\", top_p = 1.5 }",
            "eval.probes[1].decoder.top_p",
        ),
    ] {
        let e = err(&with(decoder));
        assert!(e.contains(key), "{decoder}: {e}");
    }
    let e = err(&with("{ kind = \"beam\", beam = 3 }"));
    assert!(e.contains("beam"), "{e}");
    // arithmetic has no step rules
    let arith = crate::run::TINY.replace("[eval]\n", "[eval]\nsplits = []\n")
        + "\n[[eval.probes]]\nsplit = \"val\"\ndecoder = { kind = \"beam\" }\n";
    let e = err(&arith);
    assert!(
        e.contains("eval.probes[0].decoder") && e.contains("step rules"),
        "{e}"
    );
    // a rollout stage cannot sample with a search
    let rollouts = BEAM_RUN.replace(
        "objective = { kind = \"mle\" }",
        "objective = { kind = \"mle\" }\ndata = { source = \"rollouts\", decoder = { kind = \"beam\" } }",
    );
    let e = err(&rollouts);
    assert!(
        e.contains("stages[0].data.decoder") && e.contains("search"),
        "{e}"
    );
    // and --explain documents the keys
    let text = rewind::experiment::explain::explain("countdown").unwrap();
    assert!(
        text.contains("with kind = \"beam\":")
            && text.contains("proposals")
            && text.contains("Paths kept after every step"),
        "{text}"
    );
}
