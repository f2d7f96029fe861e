//! The template mutation test: applies each known misconfiguration of
//! `tools/template/mutations.yaml` to a copy of `template.yaml`, runs the template checks
//! (`tools/template/check.sh`) on it and requires a finding, after requiring none on the real
//! template. Prints what caught each, and keeps the table of them in docs/deploy.md in step:
//!
//! ```text
//! template-mutations           check, and fail if docs/deploy.md's table differs
//! template-mutations --write   check, and rewrite docs/deploy.md's table
//! ```
//!
//! Exits 1 when the real template has a finding, a mutation passes, or the table is stale.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

/// The page whose table this keeps in step.
const PAGE: &str = "docs/deploy.md";
const START: &str = "<!-- template-mutations:start -->";
const END: &str = "<!-- template-mutations:end -->";

/// One known misconfiguration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mutation {
    name: String,
    why: String,
    #[serde(default)]
    set: Mapping,
    #[serde(default)]
    remove: Vec<String>,
}

impl Mutation {
    /// `template` with this mistake in it; an error when a path does not fit the template.
    fn apply(&self, template: &Value) -> Result<Value, String> {
        let mut mutated = template.clone();
        for (path, value) in &self.set {
            let path = path.as_str().ok_or_else(|| format!("{}: a `set` key is not a path", self.name))?;
            let (parents, last) = split(path);
            let mut node = &mut mutated;
            for key in parents {
                let mapping =
                    node.as_mapping_mut().ok_or_else(|| format!("{}: {path}: {key} is not a mapping", self.name))?;
                node = mapping.entry(key.into()).or_insert_with(|| Value::Mapping(Mapping::new()));
            }
            let mapping =
                node.as_mapping_mut().ok_or_else(|| format!("{}: {path}: not inside a mapping", self.name))?;
            mapping.insert(last.into(), value.clone());
        }
        for path in &self.remove {
            let (parents, last) = split(path);
            let parent = parents.iter().try_fold(&mut mutated, |node, key| node.get_mut(*key));
            let removed = parent.and_then(Value::as_mapping_mut).and_then(|mapping| mapping.remove(last));
            removed.ok_or_else(|| format!("{}: nothing to remove at {path}", self.name))?;
        }
        Ok(mutated)
    }
}

fn split(path: &str) -> (Vec<&str>, &str) {
    let mut keys: Vec<&str> = path.split('.').collect();
    let last = keys.pop().unwrap_or_default();
    (keys, last)
}

/// What the checks found in a template: one line per finding.
fn check(root: &Path, template: &Path) -> Result<Vec<String>, String> {
    let output = Command::new(root.join("tools/template/check.sh"))
        .arg(template)
        .current_dir(root)
        .output()
        .map_err(|error| format!("cannot run tools/template/check.sh: {error}"))?;
    let findings: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    match output.status.code() {
        Some(0) if findings.is_empty() => Ok(findings),
        Some(1) if !findings.is_empty() => Ok(findings),
        _ => Err(format!(
            "tools/template/check.sh {} failed ({}): {}{}",
            template.display(),
            output.status,
            findings.join("\n"),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// What caught a mutation, for docs/deploy.md: rule ids and names, without their messages.
fn caught_by(findings: &[String]) -> String {
    let mut rules: Vec<String> = findings
        .iter()
        .map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("sam-translator"), _) => "the SAM translator".to_owned(),
                (Some(tool), Some(rule)) => format!("{tool} `{rule}`"),
                _ => line.clone(),
            }
        })
        .collect();
    rules.sort();
    rules.dedup();
    rules.join(", ")
}

fn table(rows: &[(&Mutation, String)]) -> String {
    let mut text = format!("{START}\n| mutation | why it is a mistake | caught by |\n|---|---|---|\n");
    for (mutation, caught) in rows {
        text.push_str(&format!("| `{}` | {} | {} |\n", mutation.name, mutation.why.replace('|', "\\|"), caught));
    }
    text.push_str(END);
    text
}

fn run(root: &Path, write: bool) -> Result<(), String> {
    let read =
        |path: &str| std::fs::read_to_string(root.join(path)).map_err(|error| format!("cannot read {path}: {error}"));
    let mutations: Vec<Mutation> = serde_yaml_ng::from_str(&read("tools/template/mutations.yaml")?)
        .map_err(|error| format!("mutations.yaml: {error}"))?;
    let template: Value =
        serde_yaml_ng::from_str(&read("template.yaml")?).map_err(|error| format!("template.yaml: {error}"))?;

    let real = check(root, &root.join("template.yaml"))?;
    if !real.is_empty() {
        return Err(format!("template.yaml itself has findings:\n{}", real.join("\n")));
    }

    let folder: PathBuf = root.join("target/template-mutations");
    std::fs::create_dir_all(&folder).map_err(|error| format!("{}: {error}", folder.display()))?;
    let mut files = Vec::new();
    for mutation in &mutations {
        let mutated = mutation.apply(&template)?;
        let file = folder.join(format!("{}.yaml", mutation.name));
        let text = serde_yaml_ng::to_string(&mutated).map_err(|error| format!("{}: {error}", mutation.name))?;
        std::fs::write(&file, text).map_err(|error| format!("{}: {error}", file.display()))?;
        files.push(file);
    }
    // Two at a time: each check is a few seconds of one core (cfn-lint, the SAM translator).
    let results: Vec<Result<Vec<String>, String>> = std::thread::scope(|scope| {
        let (even, odd): (Vec<_>, Vec<_>) = files.iter().enumerate().partition(|(n, _)| n % 2 == 0);
        let halves = [even, odd].map(|half| {
            scope.spawn(move || half.into_iter().map(|(n, file)| (n, check(root, file))).collect::<Vec<_>>())
        });
        let mut all: Vec<_> =
            halves.into_iter().flat_map(|half| half.join().expect("a checking thread panicked")).collect();
        all.sort_by_key(|(n, _)| *n);
        all.into_iter().map(|(_, result)| result).collect()
    });

    let mut rows = Vec::new();
    let mut missed = Vec::new();
    for (mutation, result) in mutations.iter().zip(results) {
        let findings = result?;
        if findings.is_empty() {
            missed.push(mutation.name.clone());
        }
        println!(
            "{:40} {}",
            mutation.name,
            if findings.is_empty() { "NOT CAUGHT".to_owned() } else { caught_by(&findings) }
        );
        rows.push((mutation, caught_by(&findings)));
    }
    if !missed.is_empty() {
        return Err(format!("the template checks let these mutations through: {}", missed.join(", ")));
    }

    let page = read(PAGE)?;
    let (Some(start), Some(end)) = (page.find(START), page.find(END)) else {
        return Err(format!("{PAGE} has no {START} … {END} section for the table"));
    };
    let current = &page[start..end + END.len()];
    let wanted = table(&rows);
    if current != wanted {
        if !write {
            return Err(format!("{PAGE}'s table of template mutations is out of date: run make template-mutations"));
        }
        std::fs::write(root.join(PAGE), page.replace(current, &wanted)).map_err(|error| format!("{PAGE}: {error}"))?;
        println!("{PAGE}: table rewritten");
    }
    println!("{} mutations, each caught; template.yaml has no finding", mutations.len());
    Ok(())
}

fn main() -> ExitCode {
    let write = std::env::args().skip(1).any(|arg| arg == "--write");
    match run(&chat_testing::workspace_root(), write) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("template-mutations: {error}");
            ExitCode::FAILURE
        }
    }
}
