//! Tests of the add-or-sub-in-base-b task: formatting (checked against an
//! independent decoder), parsing, splits and configuration errors.

use std::collections::HashSet;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rewind::tasks::arithmetic::*;

/// A config with no evaluation splits, for formatting-only tests.
fn format_only(cfg: ArithmeticConfig) -> ArithmeticTask {
    ArithmeticTask::new(
        ArithmeticConfig {
            val_size: 0,
            test_size: 0,
            long_size: 0,
            ..cfg
        },
        0,
    )
    .expect("valid config")
}

/// Independent decoder of an answer: strip the sign, undo the reversal,
/// let `from_str_radix` read the (possibly zero-padded) digits.
fn decode_answer(answer: &str, base: u32, reversed: bool) -> (Option<char>, String, i64) {
    let (sign, digits) = match answer.chars().next() {
        Some(c @ ('+' | '-')) => (Some(c), &answer[1..]),
        _ => (None, answer),
    };
    let digits: String = if reversed {
        digits.chars().rev().collect()
    } else {
        digits.to_string()
    };
    let magnitude = i64::from_str_radix(&digits, base).expect("answer digits in base");
    let value = if sign == Some('-') {
        -magnitude
    } else {
        magnitude
    };
    (sign, digits, value)
}

/// Independent reader of a prompt: `b{base}:` A op B `=`, where A and B may
/// carry a sign; the operation is the first `+`/`-` after A's first char.
fn decode_prompt(prompt: &str, base: u32) -> (String, i64, char, String, i64) {
    let prefix = format!("b{base}:");
    let body = prompt
        .strip_prefix(&prefix)
        .and_then(|p| p.strip_suffix('='))
        .expect("prompt is b{base}:...=");
    let op_at = body[1..].find(['+', '-']).expect("an operation") + 1;
    let (a_text, rest) = body.split_at(op_at);
    let op = rest.chars().next().unwrap();
    let b_text = &rest[1..];
    let a = i64::from_str_radix(a_text, base).expect("operand a in base");
    let b = i64::from_str_radix(b_text, base).expect("operand b in base");
    (a_text.to_string(), a, op, b_text.to_string(), b)
}

/// Largest digit count allowed in `base` (base^n < 10^15).
fn max_digits(base: u32) -> u32 {
    let mut n = 0;
    while (base as u128).pow(n + 1) < 1_000_000_000_000_000 {
        n += 1;
    }
    n
}

fn config_strategy() -> impl Strategy<Value = ArithmeticConfig> {
    (
        2u32..=36,
        1u32..=2,
        0u32..=2,
        0u32..=3,
        0u32..=2,
        any::<[bool; 6]>(),
        1usize..=3,
    )
        .prop_map(|(base, dmin, dspan, gap, lspan, flags, ops_pick)| {
            let cap = max_digits(base);
            let dmax = dmin + dspan;
            let lmin = (dmax + 1 + gap).min(cap);
            let lmax = (lmin + lspan).min(cap);
            let [signed, pad_operands, reverse_answer, pad_answer, explicit_signs, to_long] = flags;
            let ops = match ops_pick {
                1 => vec![Op::Add],
                2 => vec![Op::Sub],
                _ => vec![Op::Sub, Op::Add],
            };
            ArithmeticConfig {
                base,
                digits: [dmin, dmax],
                long_digits: [lmin, lmax],
                ops,
                signed,
                pad_operands,
                pad_to_long: pad_operands && to_long,
                long_train_share: 0.0,
                reverse_answer,
                pad_answer,
                explicit_signs,
                val_size: 0,
                test_size: 0,
                long_size: 0,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every format combination writes the true values, in the promised shape.
    #[test]
    fn formatting_decodes_to_true_values(
        cfg in config_strategy(),
        long in any::<bool>(),
        a_unit in 0.0f64..1.0,
        b_unit in 0.0f64..1.0,
        a_neg in any::<bool>(),
        b_neg in any::<bool>(),
        op_index in 0usize..2,
    ) {
        let task = format_only(cfg.clone());
        let base = cfg.base;
        let width = if long || cfg.pad_to_long { cfg.long_digits[1] } else { cfg.digits[1] } as usize;
        let limit = (base as i64).pow(width as u32); // operands below base^width
        let pick = |unit: f64, neg: bool| {
            let v = ((unit * limit as f64) as i64).min(limit - 1);
            if neg && cfg.signed { -v } else { v }
        };
        let (a, b) = (pick(a_unit, a_neg), pick(b_unit, b_neg));
        let op = cfg.ops[op_index % cfg.ops.len()];
        let p = task.problem(a, op, b, long);
        let truth = match op { Op::Add => a + b, Op::Sub => a - b };

        // Answer.
        let (sign, digits, value) = decode_answer(&p.answer, base, cfg.reverse_answer);
        prop_assert_eq!(value, truth, "answer {} of {}", &p.answer, &p.prompt);
        prop_assert_eq!(sign == Some('-'), truth < 0);
        if cfg.explicit_signs {
            prop_assert!(sign.is_some(), "explicit sign missing in {}", &p.answer);
        } else {
            prop_assert!(sign != Some('+'), "unexpected + in {}", &p.answer);
        }
        if cfg.pad_answer {
            prop_assert_eq!(digits.len(), width + 1, "padded answer {}", &p.answer);
        } else {
            prop_assert!(digits == "0" || !digits.starts_with('0'), "unpadded {}", &p.answer);
        }
        prop_assert!(p.answer.len() <= task.max_answer_len());

        // Prompt.
        prop_assert!(p.prompt.ends_with('='));
        let (a_text, pa, pop, b_text, pb) = decode_prompt(&p.prompt, base);
        prop_assert_eq!((pa, pop, pb), (a, op.symbol(), b), "prompt {}", &p.prompt);
        for text in [&a_text, &b_text] {
            let has_sign = text.starts_with(['+', '-']);
            prop_assert_eq!(has_sign, cfg.explicit_signs || text.starts_with('-'));
            let digit_count = text.len() - usize::from(has_sign);
            if cfg.pad_operands {
                prop_assert_eq!(digit_count, width, "padded operand {}", text);
            } else {
                prop_assert!(text.trim_start_matches(['+', '-']) == "0"
                    || !text.trim_start_matches(['+', '-']).starts_with('0'));
            }
        }
        prop_assert!(p.prompt.len() <= task.max_prompt_len());
        prop_assert!(p.prompt.chars().all(|c| rewind::data::vocab::char_id(c).is_some()));

        // Round trip.
        prop_assert_eq!(task.parse_prompt(&p.prompt), Ok((a, op, b)));
    }

    /// `to_base` agrees with the standard library's reader.
    #[test]
    fn to_base_round_trips(n in any::<u64>(), base in 2u32..=36) {
        let text = to_base(n, base);
        prop_assert_eq!(u64::from_str_radix(&text, base), Ok(n));
        prop_assert!(text == "0" || !text.starts_with('0'));
        prop_assert!(text.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    }

    /// Sampled training problems are well formed and parse back.
    #[test]
    fn sampled_train_problems_round_trip(cfg in config_strategy(), seed in any::<u64>()) {
        let task = format_only(cfg.clone());
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..20 {
            let p = task.sample_train(&mut rng);
            let max = (cfg.base as i64).pow(cfg.digits[1]);
            let min = if cfg.digits[0] == 1 { 0 } else { (cfg.base as i64).pow(cfg.digits[0] - 1) };
            for v in [p.a, p.b] {
                prop_assert!(v.abs() >= min && v.abs() < max, "{} out of digits range", v);
                prop_assert!(cfg.signed || v >= 0);
            }
            prop_assert!(cfg.ops.contains(&p.op));
            prop_assert_eq!(&p, &task.problem(p.a, p.op, p.b, false));
            prop_assert_eq!(task.parse_prompt(&p.prompt), Ok((p.a, p.op, p.b)));
        }
    }
}

#[test]
fn default_format_example() {
    let task = format_only(ArithmeticConfig::default());
    let p = task.problem(45, Op::Add, 123, false);
    assert_eq!(p.prompt, "b10:045+123=");
    assert_eq!(p.answer, "8610");
    // Long split pads to long_digits[1] = 4 and the answer to 5.
    let p = task.problem(45, Op::Add, 123, true);
    assert_eq!(p.prompt, "b10:0045+0123=");
    assert_eq!(p.answer, "86100");
}

#[test]
fn base7_plain_example() {
    let task = format_only(ArithmeticConfig {
        base: 7,
        ops: vec![Op::Add, Op::Sub],
        signed: true,
        pad_operands: false,
        reverse_answer: false,
        pad_answer: false,
        ..Default::default()
    });
    // 25₇ = 19, 133₇ = 73; 19 - 73 = -54 = -105₇.
    let p = task.problem(19, Op::Add, -73, false);
    assert_eq!(p.prompt, "b7:25+-133=");
    assert_eq!(p.answer, "-105");
    assert_eq!(
        task.problem(0, Op::Sub, 0, false).answer,
        "0",
        "zero has no sign"
    );
}

#[test]
fn explicit_signs_example() {
    let task = format_only(ArithmeticConfig {
        ops: vec![Op::Add, Op::Sub],
        signed: true,
        explicit_signs: true,
        ..Default::default()
    });
    let p = task.problem(-57, Op::Add, 90, false);
    assert_eq!(p.prompt, "b10:-057++090=");
    assert_eq!(p.answer, "+3300");
    assert_eq!(task.problem(0, Op::Sub, 0, false).answer, "+0000");
}

#[test]
fn parse_prompt_accepts_user_text_and_rejects_bad_text() {
    let task = format_only(ArithmeticConfig {
        base: 16,
        ops: vec![Op::Add, Op::Sub],
        signed: true,
        ..Default::default()
    });
    assert_eq!(task.parse_prompt("b16:0ff+-001="), Ok((255, Op::Add, -1)));
    assert_eq!(task.parse_prompt(" FF - +1 "), Ok((255, Op::Sub, 1)));
    assert_eq!(task.parse_prompt("b16:abcd--0="), Ok((0xabcd, Op::Sub, 0)));
    for bad in [
        "b10:1+1=", // wrong base
        "x16:1+1=", // bad prefix
        "1*1=",     // unknown op
        "1+=",      // missing operand
        "1+1+1=",   // trailing text
        "1g+1=",    // not a digit in base 16
        "12345+1=", // longer than long_digits[1] = 4
        "",         // empty
    ] {
        let err = task.parse_prompt(bad).expect_err(bad);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }

    let unsigned_add = format_only(ArithmeticConfig::default());
    let err = unsigned_add.parse_prompt("-1+2=").unwrap_err();
    assert!(err.to_string().contains("data.signed"), "{err}");
    let err = unsigned_add.parse_prompt("1-2=").unwrap_err();
    assert!(err.to_string().contains("data.ops"), "{err}");
}

#[test]
fn max_lengths_are_attained_by_the_long_split() {
    let task = ArithmeticTask::new(ArithmeticConfig::default(), 1).unwrap();
    let longest_prompt = task.split(Split::Long).iter().map(|p| p.prompt.len()).max();
    let longest_answer = task.split(Split::Long).iter().map(|p| p.answer.len()).max();
    assert_eq!(longest_prompt, Some(task.max_prompt_len())); // "b10:1234+5678="
    assert_eq!(task.max_prompt_len(), 14);
    assert_eq!(longest_answer, Some(task.max_answer_len()));
    assert_eq!(task.max_answer_len(), 5);

    // Unpadded, signed, explicit: the extreme question reaches both bounds.
    let cfg = ArithmeticConfig {
        base: 3,
        digits: [1, 2],
        long_digits: [3, 5],
        ops: vec![Op::Sub],
        signed: true,
        pad_operands: false,
        pad_answer: false,
        explicit_signs: true,
        ..Default::default()
    };
    let task = format_only(cfg);
    let max = 3i64.pow(5) - 1;
    let p = task.problem(-max, Op::Sub, max, true);
    assert_eq!(p.prompt.len(), task.max_prompt_len(), "{}", p.prompt);
    assert_eq!(p.answer.len(), task.max_answer_len(), "{}", p.answer);
}

fn questions(problems: &[Problem]) -> Vec<(i64, Op, i64)> {
    problems.iter().map(|p| (p.a, p.op, p.b)).collect()
}

#[test]
fn splits_are_sized_disjoint_and_duplicate_free() {
    let cfg = ArithmeticConfig {
        ops: vec![Op::Add, Op::Sub],
        signed: true,
        val_size: 300,
        test_size: 400,
        long_size: 250,
        ..Default::default()
    };
    let task = ArithmeticTask::new(cfg.clone(), 7).unwrap();
    let mut all = HashSet::new();
    for (split, size) in [(Split::Val, 300), (Split::Test, 400), (Split::Long, 250)] {
        let problems = task.split(split);
        assert_eq!(problems.len(), size, "{split}");
        for q in questions(problems) {
            assert!(
                all.insert(q),
                "{q:?} repeated (in {split} or across splits)"
            );
            assert!(task.is_held_out(q.0, q.1, q.2));
        }
        for p in problems {
            assert_eq!(p, &task.problem(p.a, p.op, p.b, split == Split::Long));
        }
    }
    // In-distribution splits stay within `digits`; long operands are longer.
    for p in task.split(Split::Val).iter().chain(task.split(Split::Test)) {
        assert!(p.a.abs() < 1000 && p.b.abs() < 1000, "{p:?}");
    }
    for p in task.split(Split::Long) {
        for v in [p.a, p.b] {
            assert!(
                (1000..10_000).contains(&v.abs()),
                "long operand {v} not 4 digits"
            );
        }
    }
}

#[test]
fn sample_train_never_returns_held_out_questions() {
    // A tiny space (81 questions), 40 of them held out: sampling without
    // rejection would hit a held-out question almost every other draw.
    let cfg = ArithmeticConfig {
        base: 3,
        digits: [1, 2],
        long_digits: [3, 3],
        val_size: 20,
        test_size: 20,
        long_size: 10,
        ..Default::default()
    };
    let task = ArithmeticTask::new(cfg, 3).unwrap();
    let held: HashSet<_> = Split::ALL
        .iter()
        .flat_map(|&s| questions(task.split(s)))
        .collect();
    assert_eq!(held.len(), 50);
    let mut rng = StdRng::seed_from_u64(11);
    let mut seen = HashSet::new();
    for _ in 0..20_000 {
        let p = task.sample_train(&mut rng);
        assert!(!held.contains(&(p.a, p.op, p.b)), "{p:?} is held out");
        seen.insert((p.a, p.op, p.b));
    }
    // ...and it is not over-rejecting: every remaining question turns up.
    assert_eq!(seen.len(), 81 - 40);
}

#[test]
fn splits_depend_on_the_seed_only() {
    let cfg = ArithmeticConfig {
        val_size: 50,
        test_size: 50,
        long_size: 50,
        ..Default::default()
    };
    let a = ArithmeticTask::new(cfg.clone(), 42).unwrap();
    let b = ArithmeticTask::new(cfg.clone(), 42).unwrap();
    let c = ArithmeticTask::new(cfg, 43).unwrap();
    for split in Split::ALL {
        assert_eq!(
            a.split(split),
            b.split(split),
            "{split} differs for one seed"
        );
        assert_ne!(a.split(split), c.split(split), "{split} same for two seeds");
    }
}

#[test]
fn split_names_round_trip() {
    for split in Split::ALL {
        assert_eq!(split.to_string().parse::<Split>(), Ok(split));
    }
    let err = "train".parse::<Split>().unwrap_err();
    assert!(err.to_string().contains("train"), "{err}");
}

#[test]
fn config_reads_from_toml_with_defaults() {
    let cfg: ArithmeticConfig =
        toml::from_str("base = 7\nops = [\"add\", \"sub\"]\nsigned = true").unwrap();
    assert_eq!(cfg.base, 7);
    assert_eq!(cfg.ops, vec![Op::Add, Op::Sub]);
    assert!(cfg.signed);
    assert_eq!(cfg.digits, ArithmeticConfig::default().digits);
    assert!(cfg.validate().is_ok());
    assert!(
        toml::from_str::<ArithmeticConfig>("bse = 7").is_err(),
        "typo accepted"
    );
    assert!(toml::from_str::<ArithmeticConfig>("ops = [\"mul\"]").is_err());
}

#[test]
fn bad_configs_name_their_key() {
    let d = ArithmeticConfig::default;
    let cases: Vec<(ArithmeticConfig, &str)> = vec![
        (ArithmeticConfig { base: 1, ..d() }, "data.base"),
        (ArithmeticConfig { base: 37, ..d() }, "data.base"),
        (
            ArithmeticConfig {
                digits: [3, 1],
                ..d()
            },
            "data.digits",
        ),
        (
            ArithmeticConfig {
                digits: [0, 2],
                ..d()
            },
            "data.digits",
        ),
        (
            ArithmeticConfig {
                digits: [1, 15],
                long_digits: [16, 16],
                ..d()
            },
            "data.digits",
        ),
        (
            ArithmeticConfig {
                long_digits: [3, 4],
                ..d()
            },
            "data.long_digits",
        ),
        (
            ArithmeticConfig {
                long_digits: [5, 4],
                ..d()
            },
            "data.long_digits",
        ),
        (
            ArithmeticConfig {
                long_digits: [4, 15],
                ..d()
            },
            "data.long_digits",
        ),
        (
            ArithmeticConfig {
                long_digits: [4, u32::MAX],
                ..d()
            },
            "data.long_digits",
        ),
        (ArithmeticConfig { ops: vec![], ..d() }, "data.ops"),
        (
            ArithmeticConfig {
                ops: vec![Op::Add, Op::Add],
                ..d()
            },
            "data.ops",
        ),
        (
            // 4 in-distribution questions (0/1 + 0/1): at most 2 held out.
            ArithmeticConfig {
                base: 2,
                digits: [1, 1],
                long_digits: [2, 3],
                val_size: 2,
                test_size: 1,
                long_size: 1,
                ..d()
            },
            "data.val_size",
        ),
        (
            ArithmeticConfig {
                base: 2,
                digits: [1, 1],
                long_digits: [2, 2],
                val_size: 1,
                test_size: 1,
                long_size: 3,
                ..d()
            },
            "data.long_size",
        ),
    ];
    let bad_shares = [-0.1, 1.0, f64::NAN, f64::INFINITY].map(|long_train_share| {
        let cfg = ArithmeticConfig {
            long_train_share,
            ..d()
        };
        (cfg, "data.long_train_share")
    });
    for (cfg, key) in cases.into_iter().chain(bad_shares) {
        let err = cfg.validate().expect_err(key);
        assert!(err.to_string().contains(key), "{err} does not name {key}");
        let err = ArithmeticTask::new(cfg, 0).expect_err(key);
        assert!(err.to_string().contains(key), "{err} does not name {key}");
    }
    // The boundary itself is fine: exactly half the space held out.
    let ok = ArithmeticConfig {
        base: 2,
        digits: [1, 1],
        long_digits: [2, 2],
        val_size: 1,
        test_size: 1,
        long_size: 2,
        ..d()
    };
    assert!(ArithmeticTask::new(ok, 0).is_ok());
}

/// The SequenceMatch sweep's layout: signed add+sub in base 7 with explicit
/// signs, every split padded to the 4-digit long width; `n` per split.
fn signed_b7_padded_to_long(n: usize) -> ArithmeticConfig {
    ArithmeticConfig {
        base: 7,
        digits: [1, 3],
        long_digits: [4, 4],
        ops: vec![Op::Add, Op::Sub],
        signed: true,
        explicit_signs: true,
        pad_to_long: true,
        val_size: n,
        test_size: n,
        long_size: n,
        ..ArithmeticConfig::default()
    }
}

#[test]
fn pad_to_long_gives_every_split_the_long_layout() {
    let cfg = signed_b7_padded_to_long(20);
    let task = ArithmeticTask::new(cfg.clone(), 0).expect("valid config");
    assert_eq!(
        task.problem(25, Op::Add, -133, false).prompt,
        "b7:+0034+-0250="
    );
    let mut rng = StdRng::seed_from_u64(1);
    let train = task.sample_train(&mut rng);
    let long = &task.split(Split::Long)[0];
    let test = &task.split(Split::Test)[0];
    for p in [&train, test] {
        assert_eq!(
            p.prompt.len(),
            long.prompt.len(),
            "{} vs {}",
            p.prompt,
            long.prompt
        );
        assert_eq!(
            p.answer.len(),
            long.answer.len(),
            "{} vs {}",
            p.answer,
            long.answer
        );
        // still the values of the question
        let (_, a, _, _, b) = decode_prompt(&p.prompt, 7);
        assert_eq!((a, b), (p.a, p.b));
    }
    // without it, training prompts are shorter than long ones
    let plain = ArithmeticTask::new(
        ArithmeticConfig {
            pad_to_long: false,
            ..cfg.clone()
        },
        0,
    )
    .expect("valid config");
    assert!(plain.problem(25, Op::Add, -133, false).prompt.len() < long.prompt.len());
    // a default config's resolved text does not mention the key (run ids stay)
    assert!(!toml::to_string(&ArithmeticConfig::default())
        .unwrap()
        .contains("pad_to_long"));
    // and it needs padded operands
    let Err(err) = ArithmeticTask::new(
        ArithmeticConfig {
            pad_operands: false,
            ..cfg
        },
        0,
    ) else {
        panic!("pad_to_long without pad_operands is an error");
    };
    let err = err.to_string();
    assert!(
        err.contains("pad_to_long") && err.contains("pad_operands"),
        "{err}"
    );
}

#[test]
fn long_train_share_mixes_rare_long_questions_into_training_only() {
    let cfg = ArithmeticConfig {
        long_train_share: 0.1,
        ..signed_b7_padded_to_long(50)
    };
    let task = ArithmeticTask::new(cfg.clone(), 3).expect("valid config");
    let width = 7i64.pow(3);
    let is_long = |p: &Problem| p.a.abs() >= width || p.b.abs() >= width;
    let mut rng = StdRng::seed_from_u64(9);
    let n = 20_000;
    let mut long = 0usize;
    for _ in 0..n {
        let p = task.sample_train(&mut rng);
        assert!(
            !task.is_held_out(p.a, p.op, p.b),
            "{} is held out",
            p.prompt
        );
        if is_long(&p) {
            // a long training question has both operands in long_digits
            assert!(p.a.abs() >= width && p.b.abs() >= width, "{}", p.prompt);
            long += 1;
        }
    }
    // 10% of 20000: sd of the count is ~42, so 1500..2500 cannot fail by chance
    assert!((1_500..2_500).contains(&long), "{long} long of {n}");
    // the evaluation splits are those of share 0 (same seed, same questions)
    let unmixed = ArithmeticTask::new(
        ArithmeticConfig {
            long_train_share: 0.0,
            ..cfg.clone()
        },
        3,
    )
    .expect("valid config");
    for split in Split::ALL {
        assert_eq!(task.split(split), unmixed.split(split));
    }
    assert!(unmixed.split(Split::Test).iter().all(|p| !is_long(p)));
    // and at share 0 no long question is drawn for training
    let mut rng = StdRng::seed_from_u64(9);
    assert!((0..2_000).all(|_| !is_long(&unmixed.sample_train(&mut rng))));
    // share 0 stays out of the resolved config (run ids of older configs)
    assert!(!toml::to_string(&ArithmeticConfig::default())
        .unwrap()
        .contains("long_train_share"));
}
