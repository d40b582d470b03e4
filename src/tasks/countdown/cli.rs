//! The `rewind solve` and `rewind data countdown` commands (argument
//! parsing lives in `main.rs`; these return the text to print).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::config::{check_heldout_keys, CountdownDataConfig};
use super::dataset::build_datasets;
use super::puzzle::{GAME24_RANGE, GAME24_TARGET};
use super::solver::{solve_countdown, solve_rational};

pub use super::puzzle::{SOLVE_MAX_NUMBERS, SOLVE_MAX_VALUE};

/// `rewind solve NUMBERS... --target T [--game24]`: the one line to print,
/// an expression with minimal parentheses that uses every number once and
/// evaluates to the target (e.g. `(7-8/8)*4`), or `no solution`.
///
/// Input rules (anything else is an error with a message saying why):
/// - Countdown (default): 1..=6 numbers, each in 1..=1_000_000_000; any
///   target (a negative one has no solution, as every Countdown value is
///   non-negative). Subtraction is larger minus smaller, division only when
///   exact; additions/multiplications beyond i64 are not explored.
/// - `--game24`: exactly 4 numbers, each in 1..=13, and target 24;
///   rational intermediates are allowed.
pub fn solve_command(numbers: &[i64], target: i64, game24: bool) -> Result<String> {
    if numbers.is_empty() {
        bail!("no numbers given: pass the numbers to combine, e.g. `rewind solve 25 5 5 33 --target 27`");
    }
    if game24 {
        let (lo, hi) = GAME24_RANGE;
        if numbers.len() != 4 {
            bail!(
                "--game24 takes exactly 4 numbers, got {} ({numbers:?})",
                numbers.len()
            );
        }
        if let Some(n) = numbers.iter().find(|n| !(lo..=hi).contains(*n)) {
            bail!("--game24 numbers must be in {lo}..={hi}, got {n}");
        }
        if target != GAME24_TARGET {
            bail!("--game24 requires --target {GAME24_TARGET}, got {target}");
        }
        return Ok(solve_rational(numbers, target)
            .map_or_else(|| "no solution".to_string(), |s| s.expression()));
    }
    if numbers.len() > SOLVE_MAX_NUMBERS {
        bail!(
            "at most {SOLVE_MAX_NUMBERS} numbers are supported, got {}",
            numbers.len()
        );
    }
    if let Some(n) = numbers
        .iter()
        .find(|&&n| !(1..=SOLVE_MAX_VALUE).contains(&n))
    {
        bail!("numbers must be positive integers up to {SOLVE_MAX_VALUE}, got {n}");
    }
    if target < 0 {
        return Ok("no solution".to_string());
    }
    Ok(solve_countdown(numbers, target)
        .map_or_else(|| "no solution".to_string(), |s| s.expression()))
}

/// Default output folder for a config file: `data/countdown/<file stem>`.
pub fn default_out_dir(config_path: &Path) -> PathBuf {
    let stem = config_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("countdown_data");
    Path::new("data").join("countdown").join(stem)
}

/// Reads and validates a dataset config; errors name the file and the key.
pub fn load_config(config_path: &Path) -> Result<CountdownDataConfig> {
    let text = crate::text_file::read_text(config_path).context("reading the config")?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("parsing config {}", config_path.display()))?;
    if let Some(toml::Value::Table(c)) = table.get("countdown") {
        check_heldout_keys(c, "countdown")
            .with_context(|| format!("invalid config {}", config_path.display()))?;
    }
    let cfg: CountdownDataConfig = toml::from_str(&text)
        .with_context(|| format!("parsing config {}", config_path.display()))?;
    cfg.validate()
        .with_context(|| format!("invalid config {}", config_path.display()))?;
    Ok(cfg)
}

/// `rewind data countdown CONFIG [--out DIR]`: builds the datasets of the
/// TOML config at `config_path` into `out_dir` (default
/// [`default_out_dir`]) and returns a summary to print.
pub fn data_command(config_path: &Path, out_dir: Option<&Path>) -> Result<String> {
    let cfg = load_config(config_path)?;
    let out = out_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_out_dir(config_path));
    let stats = build_datasets(&cfg, &out)
        .with_context(|| format!("building datasets from {}", config_path.display()))?;
    Ok(stats.summary(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_examples_and_errors() {
        assert_eq!(
            solve_command(&[1, 1, 1, 1], 24, true).unwrap(),
            "no solution"
        );
        assert!(solve_command(&[4, 7, 8, 8], 24, true).is_ok());
        assert!(solve_command(&[], 24, false).is_err());
        assert!(solve_command(&[4, 7, 8], 24, true)
            .unwrap_err()
            .to_string()
            .contains("exactly 4"));
        assert!(solve_command(&[4, 7, 8, 14], 24, true)
            .unwrap_err()
            .to_string()
            .contains("1..=13"));
        assert!(solve_command(&[4, 7, 8, 8], 25, true)
            .unwrap_err()
            .to_string()
            .contains("--target 24"));
        assert!(solve_command(&[0, 1], 1, false)
            .unwrap_err()
            .to_string()
            .contains("positive"));
        assert!(solve_command(&[1; 7], 1, false).is_err());
        assert_eq!(solve_command(&[3, 4], -1, false).unwrap(), "no solution");
        assert_eq!(
            default_out_dir(Path::new("experiments/countdown_data.toml")),
            Path::new("data/countdown/countdown_data")
        );
    }
}
