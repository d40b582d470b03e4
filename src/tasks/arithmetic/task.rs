//! Arithmetic as a [`Task`]: the view the trainer and evaluator use.

use anyhow::Result;
use rand::rngs::StdRng;

use super::{to_base, ArithmeticTask, Split};
use crate::tasks::{Problem, Task};

impl Task for ArithmeticTask {
    fn sample_problem(&self, rng: &mut StdRng) -> Result<Problem> {
        let p = ArithmeticTask::sample_train(self, rng);
        Ok(Problem::new(&p.prompt, &p.answer))
    }

    fn splits(&self) -> Vec<String> {
        Split::ALL.iter().map(|s| s.to_string()).collect()
    }

    fn problems(&self, split: &str) -> Result<Vec<Problem>> {
        let split: Split = split.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(self
            .split(split)
            .iter()
            .map(|p| Problem::new(&p.prompt, &p.answer))
            .collect())
    }

    fn answer_alphabet(&self) -> Vec<u32> {
        let cfg = self.config();
        let mut chars: Vec<char> = (0..cfg.base)
            .map(|d| std::char::from_digit(d, cfg.base).expect("base <= 36"))
            .collect();
        if cfg.signed || cfg.ops.contains(&super::Op::Sub) {
            chars.push('-');
        }
        if cfg.explicit_signs {
            chars.push('+');
        }
        chars
            .into_iter()
            .filter_map(crate::data::vocab::char_id)
            .collect()
    }

    fn max_seq_len(&self) -> usize {
        self.max_prompt_len() + self.max_answer_len() + 2
    }

    fn max_answer_len(&self) -> usize {
        ArithmeticTask::max_answer_len(self)
    }

    fn user_prompt(&self, text: &str) -> Result<(String, Option<String>)> {
        let (a, op, b) = self
            .parse_prompt(text)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // operands longer than training ones are formatted like the long split
        let cfg = self.config();
        let digits = |n: i64| to_base(n.unsigned_abs(), cfg.base).len() as u32;
        let long = digits(a).max(digits(b)) > cfg.digits[1];
        let p = self.problem(a, op, b, long);
        Ok((p.prompt, Some(p.answer)))
    }
}
