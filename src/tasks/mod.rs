//! Tasks: problem generators with held-out splits and their graders.
//! [`registry`] maps `experiment.kind` to a task; the trainer, evaluator,
//! sweeps and plots only see the [`Task`] trait.

pub mod arithmetic;
pub mod countdown;
pub mod registry;

use anyhow::Result;
use rand::rngs::StdRng;

use crate::data::Example;

/// One evaluation question: the prompt the model sees and a reference
/// completion (what exact match compares against; a verifier may accept
/// other completions too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub prompt: String,
    pub reference: String,
}

impl Problem {
    pub fn new(prompt: &str, reference: &str) -> Self {
        Self {
            prompt: prompt.into(),
            reference: reference.into(),
        }
    }
}

/// The paths a search produced on one fresh training problem, as
/// completions of its prompt: the successful ones (D+) and the failed ones
/// (D-, full-length paths that end away from the target). Either may be
/// empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPaths {
    pub prompt: String,
    pub successes: Vec<String>,
    pub failures: Vec<String>,
}

/// The step rules of a task whose completions are lines of steps
/// (Countdown): what a step-level search over the model's proposals needs.
pub trait StepRules: Send + Sync {
    /// Whether `lines` (complete lines of a completion, without their
    /// newlines) are a legal beginning of a completion for `prompt`: every
    /// step legal under the rules, every stated value and list right. The
    /// last line may be the final answer line.
    fn legal_prefix(&self, prompt: &str, lines: &[&str]) -> bool;
    /// Whether `line` ends a completion (Countdown: the `Answer:` line).
    fn is_final(&self, line: &str) -> bool;
}

/// A task: a training distribution, fixed held-out evaluation splits, and
/// how a completion is graded.
pub trait Task: Send + Sync {
    /// One fresh training problem (never a held-out question), with its
    /// reference completion.
    fn sample_problem(&self, rng: &mut StdRng) -> Result<Problem>;
    /// One fresh training sequence: by default the prompt and reference
    /// completion of [`Task::sample_problem`].
    fn sample_train(&self, rng: &mut StdRng) -> Result<Example> {
        let p = self.sample_problem(rng)?;
        Ok(Example::from_text(&p.prompt, &p.reference)?)
    }
    /// Names of the evaluation splits, e.g. `["val", "test", "long"]`;
    /// the first is the one monitored during training.
    fn splits(&self) -> Vec<String>;
    /// The problems of a split, always in the same order.
    fn problems(&self, split: &str) -> Result<Vec<Problem>>;
    /// Whether `completion` solves `problem` according to the task's own
    /// checker (for Countdown: every step legal and the answer reaching the
    /// target). `None`: this task has no verifier, only exact match.
    fn verify(&self, problem: &Problem, completion: &str) -> Option<bool> {
        let _ = (problem, completion);
        None
    }
    /// The tokens a plausible wrong answer is made of (for arithmetic: the
    /// digits of the base and the signs), for `ground_truth` noise
    /// (`data::noise`). Empty (the default): no task-specific alphabet.
    fn answer_alphabet(&self) -> Vec<u32> {
        vec![]
    }
    /// Runs the task's search strategies on one fresh training problem and
    /// returns the paths they produced (the D+ / D- of learning from
    /// failures). Tasks without search data say so.
    fn search_paths(&self, rng: &mut StdRng) -> Result<SearchPaths> {
        let _ = rng;
        anyhow::bail!("this task has no search paths (data source \"search\" needs kind = \"countdown\" or \"game24\")")
    }
    /// Solves the problem of `prompt` with the task's symbolic search
    /// `strategy` (no model: the inference-time search baseline); `None`
    /// when the search fails. Tasks without one say so.
    fn symbolic_solve(
        &self,
        prompt: &str,
        strategy: &str,
        rng: &mut StdRng,
    ) -> Result<Option<String>> {
        let _ = (prompt, strategy, rng);
        anyhow::bail!("this task has no symbolic search (decoder kind \"symbolic\" needs kind = \"countdown\" or \"game24\")")
    }
    /// The step rules, for tasks whose completions are lines of steps.
    fn step_rules(&self) -> Option<&dyn StepRules> {
        None
    }
    /// Longest sequence in tokens, including `<bos>` and `<eos>`.
    fn max_seq_len(&self) -> usize;
    /// Longest completion in tokens (the decoding budget), excluding `<eos>`.
    fn max_answer_len(&self) -> usize;
    /// Turns a question typed by a user into the model's prompt format and
    /// the expected completion (used by `rewind sample`).
    fn user_prompt(&self, text: &str) -> Result<(String, Option<String>)>;
}

/// Deserialises a TOML value, naming the failing key's full path in the
/// error (`data.base: invalid type ...`).
pub fn from_value<T: serde::de::DeserializeOwned>(value: toml::Value, section: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        // an empty section: the value is the whole config, and the path
        // alone is the key as the file spells it
        let at = match (path.as_str(), section) {
            (".", "") => "the config".to_string(),
            (".", _) => section.to_string(),
            (_, "") => path,
            _ => format!("{section}.{path}"),
        };
        // the message alone: toml's Display adds "in `key`" on a line of
        // its own, and the key is already named in front
        anyhow::anyhow!("{at}: {}", e.inner().message().trim())
    })
}
