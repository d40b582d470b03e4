//! Human-readable run summaries for the terminal.

use std::fmt::Write;
use std::path::Path;

use crate::experiment::summary::Summary;

/// A few lines: accuracy per split, timing, where the results are.
pub fn summary_text(s: &Summary, results_root: &Path) -> String {
    let mut t = String::new();
    let dir = results_root.join(&s.experiment).join(&s.run_id);
    let _ = writeln!(t, "== {} ({}) ==", s.experiment, s.run_id);
    if let Some(step) = s.diverged_at_step {
        let _ = writeln!(
            t,
            "DIVERGED: a loss was not finite from step {step} (metrics.csv); training stopped there"
        );
    }
    for (split, acc) in &s.exact_match {
        let n = s.n.get(split).copied().unwrap_or(0);
        let _ = writeln!(
            t,
            "{split:>5} exact-match: {:6.2}%  ({n} questions)",
            100.0 * acc
        );
    }
    let _ = writeln!(t, "val loss (token NLL): {:.4}", s.val_loss);
    for st in &s.stages {
        let _ = writeln!(
            t,
            "stage {}: {} steps, {:.1} s training, {:.1} ms/step, {:.0} tokens/s",
            st.name, st.steps, st.train_s, st.ms_per_step, st.tokens_per_s
        );
    }
    let _ = writeln!(
        t,
        "{} parameters, {} thread(s), {}; wall time {:.1} s; git {}",
        s.num_params, s.threads, s.device, s.wall_s, s.git_commit
    );
    let _ = write!(t, "results: {}", dir.display());
    t
}
