//! Pipelines in `.eventide.toml`: `[[step]]`s with dependencies, matrices, artifacts and
//! concurrency groups, and the plan of jobs a commit's build is made of.
//!
//! The one-step `[test]` form stays valid and is a pipeline of one step named `test`.
//! Each `[[step]]` takes every key `[test]` takes (validated by the same code, its
//! messages naming the step), plus `name`, `depends_on`, `matrix`, `artifacts` and
//! `concurrency`. The observer plans a build with [`plan`]; the runner of one of its jobs
//! reads the same file at the same commit and runs [`job_config`] of its step and cell.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::isolation::{Network, SANDBOX_LABEL};
use crate::repo_config::{
    self, check_pattern, job_from_table, ConfigError, RepoConfig, TestTable, MAX_LABELS,
    MAX_LABEL_BYTES,
};

/// The most jobs one build may have (the state machine's bound).
pub use eventide_consensus::command::MAX_JOBS_PER_BUILD;
use eventide_consensus::command::{
    MAX_MATRIX_KEYS, MAX_MATRIX_KEY_BYTES, MAX_MATRIX_VALUE_BYTES, MAX_STEP_NAME_BYTES,
};

/// The most artifact patterns one step may list.
pub const MAX_ARTIFACT_PATTERNS: usize = 16;
/// The prefix of the variables that carry a job's matrix values (`MATRIX_PYTHON`).
pub const MATRIX_ENV_PREFIX: &str = "MATRIX_";
/// The name of the one step of the `[test]` form.
pub const TEST_STEP: &str = "test";

/// A repository's pipeline at one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// In file order.
    pub steps: Vec<StepConfig>,
    /// Cancel the open builds of older commits of a branch when a newer one is queued.
    pub cancel_superseded: bool,
}

/// One `[[step]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepConfig {
    pub name: String,
    pub depends_on: Vec<String>,
    /// Keys in alphabetical order (a TOML table keeps none), each with its values in the
    /// order written.
    pub matrix: Vec<(String, Vec<String>)>,
    /// Glob patterns of the files, relative to the workspace, the step stores for the
    /// steps after it.
    pub artifacts: Vec<String>,
    pub concurrency: Option<String>,
    pub job: RepoConfig,
}

/// One job of a build: a step, or one cell of a step's matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPlan {
    /// `build`, `test (python=3.11)`, `test (os=linux, python=3.11)`.
    pub name: String,
    pub step: String,
    pub matrix: Vec<(String, String)>,
    /// Indexes into the plan of the jobs this one waits for, each smaller than its own.
    pub needs: Vec<u16>,
    /// The labels a runner needs for it (see [`repo_config::labels_of`]).
    pub labels: Vec<String>,
    pub concurrency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTable {
    test: Option<toml::Table>,
    pipeline: Option<PipelineTable>,
    step: Option<Vec<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineTable {
    #[serde(default)]
    cancel_superseded: bool,
}

/// Parses and validates the text of `.eventide.toml`, in either form.
pub fn parse(text: &str) -> Result<PipelineConfig, ConfigError> {
    let file: FileTable =
        toml::from_str(text).map_err(|err| repo_config::toml_error(text, &err))?;
    let cancel_superseded = file.pipeline.is_some_and(|pipeline| pipeline.cancel_superseded);
    let tables = match (file.test, file.step) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid("use [test] or [[step]] tables, not both"))
        }
        (None, None) => {
            return Err(ConfigError::invalid("missing [test] table or [[step]] tables"))
        }
        (Some(_), None) => {
            let job = repo_config::parse(text)?;
            let step = StepConfig {
                name: TEST_STEP.to_owned(),
                depends_on: Vec::new(),
                matrix: Vec::new(),
                artifacts: Vec::new(),
                concurrency: None,
                job,
            };
            return Ok(PipelineConfig { steps: vec![step], cancel_superseded });
        }
        (None, Some(tables)) => tables,
    };
    if tables.is_empty() {
        return Err(ConfigError::invalid("[[step]]: at least one step is needed"));
    }
    let mut steps = Vec::with_capacity(tables.len());
    for (index, table) in tables.into_iter().enumerate() {
        let step = step_from_table(index, table)?;
        if steps.iter().any(|other: &StepConfig| other.name == step.name) {
            return Err(ConfigError::invalid(format!(
                "[[step]] {:?}: the name is used twice",
                step.name
            )));
        }
        steps.push(step);
    }
    check_dependencies(&steps)?;
    let jobs: usize = steps.iter().map(cells).sum();
    if jobs > MAX_JOBS_PER_BUILD {
        return Err(ConfigError::invalid(format!(
            "the steps and their matrices make {jobs} jobs, at most {MAX_JOBS_PER_BUILD}"
        )));
    }
    Ok(PipelineConfig { steps, cancel_superseded })
}

/// Chooses a commit's pipeline as [`repo_config::resolve`] chooses its configuration.
pub fn resolve(file: Option<&str>, has_tests_dir: bool) -> Result<PipelineConfig, ConfigError> {
    match file {
        Some(text) => parse(text),
        None => {
            let job = repo_config::resolve(None, has_tests_dir)?;
            let step = StepConfig {
                name: TEST_STEP.to_owned(),
                depends_on: Vec::new(),
                matrix: Vec::new(),
                artifacts: Vec::new(),
                concurrency: None,
                job,
            };
            Ok(PipelineConfig { steps: vec![step], cancel_superseded: false })
        }
    }
}

/// The jobs of a build of `config`, in an order where each comes after the jobs it
/// needs: a step's jobs come as early as its dependencies allow, in file order
/// otherwise; a job needs every job (every cell) of each step its step depends on.
pub fn plan(config: &PipelineConfig) -> Vec<JobPlan> {
    let mut placed: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
    let mut jobs: Vec<JobPlan> = Vec::new();
    while placed.len() < config.steps.len() {
        let ready = config.steps.iter().find(|step| {
            !placed.contains_key(step.name.as_str())
                && step.depends_on.iter().all(|dep| placed.contains_key(dep.as_str()))
        });
        // `parse` refused cycles and unknown names, so a step is always ready.
        let Some(step) = ready else { break };
        let needs: Vec<u16> = step
            .depends_on
            .iter()
            .flat_map(|dep| placed.get(dep.as_str()).cloned().unwrap_or_default())
            .collect();
        let labels = labels_for(&step.job);
        let mut indexes = Vec::new();
        for cell in matrix_cells(&step.matrix) {
            indexes.push(jobs.len() as u16);
            jobs.push(JobPlan {
                name: eventide_consensus::state::job_name(&step.name, &cell),
                step: step.name.clone(),
                matrix: cell,
                needs: needs.clone(),
                labels: labels.clone(),
                concurrency: step.concurrency.clone(),
            });
        }
        placed.insert(step.name.as_str(), indexes);
    }
    jobs
}

/// The plan of a commit whose file is `file`: one job `test` without labels when the
/// file is missing or broken (the runner then reports why), as
/// [`repo_config::labels_of`] gives no labels for one.
pub fn plan_of(file: Option<&str>) -> Vec<JobPlan> {
    match file.map(parse) {
        Some(Ok(config)) => plan(&config),
        _ => vec![JobPlan {
            name: TEST_STEP.to_owned(),
            step: TEST_STEP.to_owned(),
            matrix: Vec::new(),
            needs: Vec::new(),
            labels: Vec::new(),
            concurrency: None,
        }],
    }
}

/// What the job of `step` for the matrix cell `matrix` runs: the step's configuration
/// with `MATRIX_<KEY>` set to each of the cell's values. `None` if the pipeline has no
/// such step or cell.
pub fn job_config(
    config: &PipelineConfig,
    step: &str,
    matrix: &[(String, String)],
) -> Option<RepoConfig> {
    let found = config.steps.iter().find(|candidate| candidate.name == step)?;
    let keys: Vec<&str> = found.matrix.iter().map(|(key, _)| key.as_str()).collect();
    let given: Vec<&str> = matrix.iter().map(|(key, _)| key.as_str()).collect();
    if keys != given {
        return None;
    }
    let mut job = found.job.clone();
    for ((key, value), (_, values)) in matrix.iter().zip(&found.matrix) {
        if !values.contains(value) {
            return None;
        }
        job.env.insert(matrix_env(key), value.clone());
    }
    Some(job)
}

/// The variable of matrix key `key`: `MATRIX_` and the key in upper case.
pub fn matrix_env(key: &str) -> String {
    format!("{MATRIX_ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The labels of a job as [`repo_config::labels_of`] gives them for `[test]`: its own,
/// and the sandbox label if it requires a sandbox or has no network.
fn labels_for(job: &RepoConfig) -> Vec<String> {
    let mut labels = job.labels.clone();
    let needs_sandbox = job.require_sandbox || job.network == Network::None;
    if needs_sandbox && labels.len() < MAX_LABELS {
        labels.push(SANDBOX_LABEL.to_owned());
    }
    labels
}

/// Every cell of a matrix, in key order then value order; one empty cell without one.
fn matrix_cells(matrix: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut cells: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in matrix {
        cells = cells
            .into_iter()
            .flat_map(|cell| {
                values.iter().map(move |value| {
                    let mut cell = cell.clone();
                    cell.push((key.clone(), value.clone()));
                    cell
                })
            })
            .collect();
    }
    cells
}

/// How many jobs a step makes.
fn cells(step: &StepConfig) -> usize {
    step.matrix.iter().map(|(_, values)| values.len()).product()
}

/// Reads one `[[step]]`: its own keys first, the rest as a `[test]` table.
fn step_from_table(index: usize, mut table: toml::Table) -> Result<StepConfig, ConfigError> {
    let name = match table.remove("name") {
        Some(toml::Value::String(name)) => name,
        Some(_) => {
            return Err(ConfigError::invalid(format!(
                "[[step]] {}: name must be a string",
                index + 1
            )))
        }
        None => {
            return Err(ConfigError::invalid(format!("[[step]] {}: name is missing", index + 1)))
        }
    };
    let valid = !name.is_empty()
        && name.len() <= MAX_STEP_NAME_BYTES
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        return Err(ConfigError::invalid(format!(
            "[[step]] {name:?}: names are 1 to {MAX_STEP_NAME_BYTES} letters, digits and - _ ."
        )));
    }
    let section = format!("[[step]] {name:?}");
    let depends_on = strings(&section, "depends_on", table.remove("depends_on"))?;
    let artifacts = strings(&section, "artifacts", table.remove("artifacts"))?;
    if artifacts.len() > MAX_ARTIFACT_PATTERNS {
        return Err(ConfigError::invalid(format!(
            "{section} artifacts: at most {MAX_ARTIFACT_PATTERNS} patterns allowed"
        )));
    }
    for pattern in &artifacts {
        check_pattern(&section, "artifacts", pattern)?;
    }
    let concurrency = match table.remove("concurrency") {
        None => None,
        Some(toml::Value::String(group)) => {
            let valid = !group.is_empty()
                && group.len() <= MAX_LABEL_BYTES
                && group.chars().all(|c| c.is_alphanumeric() || "-_.:".contains(c));
            if !valid {
                return Err(ConfigError::invalid(format!(
                    "{section} concurrency {group:?}: a group is 1 to {MAX_LABEL_BYTES} letters, digits and - _ . :"
                )));
            }
            Some(group)
        }
        Some(_) => {
            return Err(ConfigError::invalid(format!("{section} concurrency must be a string")))
        }
    };
    let matrix = matrix(&section, table.remove("matrix"))?;
    let job_table: TestTable =
        toml::Value::Table(table).try_into().map_err(|err: toml::de::Error| {
            ConfigError::invalid(format!("{section}: {}", err.message().trim()))
        })?;
    let job = job_from_table(&section, job_table)?;
    for (key, _) in &matrix {
        let variable = matrix_env(key);
        if job.env.contains_key(&variable) {
            return Err(ConfigError::invalid(format!(
                "{section} env {variable:?}: set by its matrix; keep one"
            )));
        }
    }
    Ok(StepConfig { name, depends_on, matrix, artifacts, concurrency, job })
}

/// A key holding a list of strings (absent: empty).
fn strings(
    section: &str,
    key: &str,
    value: Option<toml::Value>,
) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let wrong = || ConfigError::invalid(format!("{section} {key}: expected a list of strings"));
    let toml::Value::Array(items) = value else { return Err(wrong()) };
    items
        .into_iter()
        .map(|item| match item {
            toml::Value::String(text) => Ok(text),
            _ => Err(wrong()),
        })
        .collect()
}

/// `matrix = { key = ["a", "b"], … }`, keys sorted.
fn matrix(
    section: &str,
    value: Option<toml::Value>,
) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let toml::Value::Table(table) = value else {
        return Err(ConfigError::invalid(format!(
            "{section} matrix: expected a table of lists, such as {{ python = [\"3.11\", \"3.12\"] }}"
        )));
    };
    if table.len() > MAX_MATRIX_KEYS {
        return Err(ConfigError::invalid(format!(
            "{section} matrix: at most {MAX_MATRIX_KEYS} keys allowed"
        )));
    }
    let mut matrix = Vec::new();
    for (key, values) in table {
        let valid_key = !key.is_empty()
            && key.len() <= MAX_MATRIX_KEY_BYTES
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(ConfigError::invalid(format!(
                "{section} matrix key {key:?}: keys are 1 to {MAX_MATRIX_KEY_BYTES} letters, digits and _"
            )));
        }
        let values = strings(section, &format!("matrix {key}"), Some(values))?;
        if values.is_empty() {
            return Err(ConfigError::invalid(format!(
                "{section} matrix {key}: at least one value is needed"
            )));
        }
        let mut seen = BTreeSet::new();
        for value in &values {
            let valid = !value.is_empty()
                && value.len() <= MAX_MATRIX_VALUE_BYTES
                && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
            if !valid {
                return Err(ConfigError::invalid(format!(
                    "{section} matrix {key} {value:?}: values are 1 to {MAX_MATRIX_VALUE_BYTES} letters, digits and - _ . +"
                )));
            }
            if !seen.insert(value) {
                return Err(ConfigError::invalid(format!(
                    "{section} matrix {key} {value:?}: listed twice"
                )));
            }
        }
        matrix.push((key, values));
    }
    matrix.sort();
    Ok(matrix)
}

/// Refuses unknown, self and cyclic dependencies, naming the cycle.
fn check_dependencies(steps: &[StepConfig]) -> Result<(), ConfigError> {
    let names: BTreeSet<&str> = steps.iter().map(|step| step.name.as_str()).collect();
    for step in steps {
        for dep in &step.depends_on {
            if dep == &step.name {
                return Err(ConfigError::invalid(format!(
                    "[[step]] {:?}: depends on itself",
                    step.name
                )));
            }
            if !names.contains(dep.as_str()) {
                return Err(ConfigError::invalid(format!(
                    "[[step]] {:?}: depends_on {dep:?}, which is no step's name",
                    step.name
                )));
            }
        }
    }
    let by_name: BTreeMap<&str, &StepConfig> =
        steps.iter().map(|step| (step.name.as_str(), step)).collect();
    // Depth-first from every step, in file order; a step met again on the path is a cycle.
    fn visit<'a>(
        name: &'a str,
        by_name: &BTreeMap<&'a str, &'a StepConfig>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if done.contains(name) {
            return None;
        }
        if let Some(start) = path.iter().position(|&on_path| on_path == name) {
            let mut cycle: Vec<&str> = path[start..].to_vec();
            cycle.push(name);
            return Some(cycle.join(" -> "));
        }
        path.push(name);
        for dep in by_name.get(name).map(|step| step.depends_on.as_slice()).unwrap_or_default() {
            if let Some(cycle) = visit(dep, by_name, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(name);
        None
    }
    let mut done = BTreeSet::new();
    for step in steps {
        if let Some(cycle) = visit(&step.name, &by_name, &mut Vec::new(), &mut done) {
            return Err(ConfigError::invalid(format!("[[step]] dependency cycle: {cycle}")));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "pipeline_config_test.rs"]
mod tests;
