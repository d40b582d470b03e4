//! A config's `[sweep]` axes expanded into a grid of runs with stable ids
//! (see [`super::sweep`] for the format), and shards of that grid.
//!
//! A run's id is a readable label plus a hash of its fully resolved config,
//! e.g. `lr=0.001_signed=false_seed=0-3fa2b1c0de`, so the same run is
//! recognised across invocations, machines and key orders, and a changed
//! config never reuses old results.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::experiment::config::ExperimentConfig;
use crate::tasks::from_value;

/// One axis of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// Dotted config path, e.g. `stages.0.lr`.
    pub path: String,
    pub values: Vec<toml::Value>,
}

/// One run of a sweep.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Position in the grid (0-based).
    pub index: usize,
    /// `(axis path, value)` for this run, in axis order.
    pub assignments: Vec<(String, toml::Value)>,
    /// The fully resolved config of this run (no `[sweep]`, one seed).
    pub cfg: ExperimentConfig,
    /// Stable id: readable label + hash of the resolved config.
    pub id: String,
}

/// An expanded sweep.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub name: String,
    pub axes: Vec<Axis>,
    pub runs: Vec<RunSpec>,
}

/// Collects `[sweep]` leaves as dotted paths; nested tables (from unquoted
/// dotted keys) and quoted dotted keys mean the same path.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) -> Result<()> {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&path, t, out)?,
            toml::Value::Array(_) => out.push((path, v.clone())),
            other => bail!(
                "sweep.\"{path}\" = {other}: an axis must be a list of values, e.g. \"{path}\" = [{other}]"
            ),
        }
    }
    Ok(())
}

/// The value at a dotted path, or an error naming the first missing part.
fn lookup<'a>(root: &'a mut toml::Value, path: &str) -> Result<&'a mut toml::Value> {
    let mut cur = root;
    let mut walked = String::new();
    for part in path.split('.') {
        let here = if walked.is_empty() {
            "the config".to_string()
        } else {
            format!("`{walked}`")
        };
        cur = match cur {
            toml::Value::Table(t) => {
                let keys: Vec<String> = t.keys().cloned().collect();
                t.get_mut(part).with_context(|| {
                    format!(
                        "sweep key \"{path}\": no setting `{part}` in {here} (keys there: {})",
                        keys.join(", ")
                    )
                })?
            }
            toml::Value::Array(a) => {
                let n = a.len();
                let i: usize = part.parse().with_context(|| {
                    format!(
                        "sweep key \"{path}\": {here} is a list; use an index 0..{n}, not `{part}`"
                    )
                })?;
                a.get_mut(i).with_context(|| {
                    format!("sweep key \"{path}\": {here} has {n} entries, no index {i}")
                })?
            }
            _ => bail!("sweep key \"{path}\": {here} is a single value, it has no `{part}`"),
        };
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(part);
    }
    Ok(cur)
}

/// `base` with the axis's leaf key added (its first value), if the config
/// knows the key: the resolved config leaves out some keys at their default
/// (`data.pad_to_long`, `data.long_train_share`, so that older run ids stay
/// the same), and sweeping such a key must not need it written out first.
/// `None` when the parent is missing or the config rejects the key as
/// unknown (a typo keeps the "no setting" error, which lists the keys).
fn with_omitted_key(base: &toml::Value, axis: &Axis) -> Option<toml::Value> {
    let (parent, leaf) = match axis.path.rsplit_once('.') {
        Some((parent, leaf)) => (Some(parent), leaf),
        None => (None, axis.path.as_str()),
    };
    let mut v = base.clone();
    let table = match parent {
        Some(parent) => lookup(&mut v, parent).ok()?,
        None => &mut v,
    };
    let toml::Value::Table(t) = table else {
        return None;
    };
    t.insert(leaf.to_string(), axis.values.first()?.clone());
    let checked = from_value::<ExperimentConfig>(v.clone(), "").and_then(|mut c| c.resolve());
    match checked {
        // an out-of-range value is reported per run, naming the sweep point
        Err(e) if format!("{e:#}").contains("unknown field") => None,
        _ => Some(v),
    }
}

/// A value as it appears in labels and CSV cells: strings bare, lists
/// joined by `+` (`["add", "sub"]` -> `add+sub`), tables as their values
/// joined by `-`, `kind` first, then by key (`{ kind = "sequencematch",
/// divergence = "kl", lambda = 0.5 }` -> `sequencematch-kl-0.5`).
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join("+"),
        toml::Value::Table(t) => {
            let kind = t.get("kind").map(value_text);
            kind.into_iter()
                .chain(
                    t.iter()
                        .filter(|(k, _)| k.as_str() != "kind")
                        .map(|(_, v)| value_text(v)),
                )
                .collect::<Vec<_>>()
                .join("-")
        }
        other => other.to_string(),
    }
}

/// Readable part of a run id: `lr=0.001_seed=0`.
fn label(assignments: &[(String, toml::Value)], seed: u64) -> String {
    let last = |p: &str| p.rsplit('.').next().unwrap_or(p).to_string();
    let mut parts = Vec::new();
    for (path, v) in assignments {
        if path == "experiment.seed" {
            continue;
        }
        let ambiguous = assignments
            .iter()
            .filter(|(p, _)| last(p) == last(path))
            .count()
            > 1;
        let name = if ambiguous {
            path.replace("stages.", "st")
        } else {
            last(path)
        };
        parts.push(format!("{name}={}", value_text(v)));
    }
    parts.push(format!("seed={seed}"));
    let mut s: String = parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(80);
    s
}

/// Stable id of a resolved run config.
pub fn run_id(cfg: &ExperimentConfig, assignments: &[(String, toml::Value)]) -> Result<String> {
    let hash = Sha256::digest(cfg.to_toml()?.as_bytes());
    let hex: String = hash.iter().take(5).map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}-{hex}", label(assignments, cfg.experiment.seed)))
}

impl RunSpec {
    /// The one run of a config without sweep axes or seed lists.
    pub fn single(cfg: &ExperimentConfig) -> Result<Self> {
        let sweep = expand(cfg)?;
        if sweep.runs.len() != 1 {
            bail!(
                "config {} defines a sweep of {} runs",
                cfg.experiment.name,
                sweep.runs.len()
            );
        }
        Ok(sweep.runs.into_iter().next().expect("one run"))
    }
}

/// A config's grid, planned but not built: its axes and the base config.
/// The number of runs comes from the axis lengths, and a run is built only
/// when asked for by index ([`Grid::spec`]), so a grid of a million runs
/// costs nothing until its runs are used (`rewind run --dry-run`,
/// `rewind list`).
#[derive(Clone, Debug)]
pub struct Grid {
    pub name: String,
    pub axes: Vec<Axis>,
    /// The resolved config without `[sweep]` and seed list, as a value the
    /// axes' values are written into.
    base: toml::Value,
    len: usize,
}

/// Plans a config's sweep: checks the axes (each a list of distinct values
/// at a path the config has, no two overlapping) and counts the runs,
/// without building them. Errors name the sweep key.
pub fn plan(cfg: &ExperimentConfig) -> Result<Grid> {
    let mut pairs = Vec::new();
    flatten("", &cfg.sweep, &mut pairs)?;
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    for w in pairs.windows(2) {
        if w[0].0 == w[1].0 {
            bail!("sweep key \"{}\" is given twice", w[0].0);
        }
    }
    let mut axes = Vec::new();
    for (path, v) in pairs {
        let values = match v {
            toml::Value::Array(a) => a,
            _ => unreachable!("flatten keeps arrays only"),
        };
        if values.is_empty() {
            bail!("sweep key \"{path}\" = []: give at least one value");
        }
        if ["experiment.name", "experiment.kind", "experiment.seeds"].contains(&path.as_str())
            || path.starts_with("sweep")
        {
            bail!("sweep key \"{path}\" cannot be swept (it identifies the experiment)");
        }
        if path == "experiment.seed" && cfg.experiment.seeds.is_some() {
            bail!("sweep key \"experiment.seed\" is given twice (also as experiment.seeds)");
        }
        axes.push(Axis { path, values });
    }
    for a in &axes {
        for b in &axes {
            if a.path != b.path && b.path.starts_with(&format!("{}.", a.path)) {
                bail!("sweep keys \"{}\" and \"{}\" overlap", a.path, b.path);
            }
        }
    }
    // seeds last: fastest-varying, so runs of one setting sit together
    axes.sort_by_key(|a| a.path == "experiment.seed");
    if let Some(seeds) = &cfg.experiment.seeds {
        axes.push(Axis {
            path: "experiment.seed".into(),
            values: seeds
                .iter()
                .map(|&s| toml::Value::Integer(s as i64))
                .collect(),
        });
    }

    // a repeated value would list one run twice (two workers racing on one
    // folder, and one run counted as two seeds)
    for a in &axes {
        for (i, v) in a.values.iter().enumerate() {
            if a.values[..i].contains(v) {
                let key = match (a.path.as_str(), &cfg.experiment.seeds) {
                    ("experiment.seed", Some(_)) => "experiment.seeds".to_string(),
                    _ => format!("sweep key \"{}\"", a.path),
                };
                bail!(
                    "{key}: the value {} is given twice; each value of an axis must be distinct",
                    value_text(v)
                );
            }
        }
    }

    let mut base = cfg.clone();
    base.sweep = toml::Table::new();
    base.experiment.seeds = None;
    let mut base_value = toml::Value::try_from(&base)?;
    for a in &axes {
        if let Err(missing) = lookup(&mut base_value.clone(), &a.path) {
            base_value = with_omitted_key(&base_value, a).ok_or(missing)?;
        }
    }
    let len = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
        .context("[sweep]: the grid has more runs than can be counted; use fewer values")?;
    Ok(Grid {
        name: cfg.experiment.name.clone(),
        axes,
        base: base_value,
        len,
    })
}

impl Grid {
    /// The number of runs: the product of the axis lengths.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a grid without axes is the one run of its config.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Builds run `index` (0-based, first axis slowest, seed fastest):
    /// its config resolved and validated, and its id.
    pub fn spec(&self, index: usize) -> Result<RunSpec> {
        if index >= self.len {
            bail!("run {index} of a grid of {} runs", self.len);
        }
        // mixed-radix digits, first axis slowest
        let mut rem = index;
        let mut picks = vec![0; self.axes.len()];
        for (i, a) in self.axes.iter().enumerate().rev() {
            picks[i] = rem % a.values.len();
            rem /= a.values.len();
        }
        let assignments: Vec<(String, toml::Value)> = self
            .axes
            .iter()
            .zip(&picks)
            .map(|(a, &p)| (a.path.clone(), a.values[p].clone()))
            .collect();
        let mut v = self.base.clone();
        for (path, value) in &assignments {
            *lookup(&mut v, path)? = value.clone();
        }
        let point = || point_text(&assignments);
        let mut run_cfg: ExperimentConfig =
            from_value(v, "").with_context(|| format!("sweep point [{}]", point()))?;
        run_cfg
            .resolve()
            .with_context(|| format!("sweep point [{}]", point()))?;
        let id = run_id(&run_cfg, &assignments)?;
        Ok(RunSpec {
            index,
            assignments,
            cfg: run_cfg,
            id,
        })
    }
}

/// `stages.0.lr = 0.001, experiment.seed = 1`: a grid point in messages.
fn point_text(assignments: &[(String, toml::Value)]) -> String {
    assignments
        .iter()
        .map(|(p, v)| format!("{p} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Expands a config's sweep into all its runs ([`plan`], then every
/// [`Grid::spec`]); two points that resolve to the same config are an
/// error. Errors name the sweep key.
pub fn expand(cfg: &ExperimentConfig) -> Result<Sweep> {
    let grid = plan(cfg)?;
    let mut runs = Vec::with_capacity(grid.len());
    let mut ids = std::collections::HashMap::new();
    for index in 0..grid.len() {
        let spec = grid.spec(index)?;
        if let Some(twin) = ids.insert(spec.id.clone(), index) {
            bail!(
                "sweep point [{}] resolves to the same config as run {twin}; drop one of the values",
                point_text(&spec.assignments)
            );
        }
        runs.push(spec);
    }
    Ok(Sweep {
        name: grid.name,
        axes: grid.axes,
        runs,
    })
}

/// Parses `--shard i/n` (0 <= i < n).
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let err = || format!("--shard {s:?}: expected i/n with 0 <= i < n, e.g. 0/4");
    let (i, n) = s.split_once('/').with_context(err)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().with_context(err)?,
        n.trim().parse().with_context(err)?,
    );
    if n == 0 || i >= n {
        bail!(err());
    }
    Ok((i, n))
}

/// The runs of shard `i` of `n`: grid indices `i, i+n, i+2n, ...`.
pub fn shard(runs: &[RunSpec], (i, n): (usize, usize)) -> Vec<&RunSpec> {
    runs.iter().filter(|r| r.index % n == i).collect()
}
