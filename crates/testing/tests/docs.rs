//! The documentation checked against the code and itself: the README's size and index, every
//! relative link and anchor, the frame's trip complete, the configuration table against
//! `config.rs`, every measured CPU figure linked to the benchmark run it comes from, and the
//! testing page's table of test files complete.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chat_testing::workspace_root;

/// Every page of the docs: the README, `docs/` (recursively), `web/README.md` and BENCHMARKS.md.
fn pages() -> Vec<PathBuf> {
    fn markdown_under(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                markdown_under(&path, found);
            } else if path.extension().is_some_and(|extension| extension == "md") {
                found.push(path);
            }
        }
    }
    let root = workspace_root();
    let mut found = vec![root.join("README.md"), root.join("web/README.md"), root.join("BENCHMARKS.md")];
    markdown_under(&root.join("docs"), &mut found);
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root()).unwrap_or(path).display().to_string()
}

/// The targets of a page's Markdown links, `[text](target)`, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    found
}

/// GitHub's anchor for a heading: lower case, spaces to hyphens, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_lowercase().next().unwrap()),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    text.lines().filter(|line| line.starts_with('#')).map(|line| anchor(line.trim_start_matches('#'))).collect()
}

#[test]
fn the_readme_is_at_most_200_lines_with_quick_start_in_its_first_60() {
    let readme = read(&workspace_root().join("README.md"));
    let lines: Vec<&str> = readme.lines().collect();
    assert!(lines.len() <= 200, "README.md has {} lines", lines.len());
    let quick_start = lines.iter().position(|line| *line == "## Quick start").expect("a Quick start section");
    assert!(quick_start < 60, "Quick start is at line {}", quick_start + 1);
    for command in ["make dev", "make test"] {
        assert!(lines[quick_start..quick_start + 30].iter().any(|line| line.starts_with(command)), "{command}");
    }
}

#[test]
fn every_page_of_the_docs_is_linked_from_the_readmes_index() {
    let root = workspace_root();
    let linked: BTreeSet<PathBuf> = links(&read(&root.join("README.md")))
        .iter()
        .map(|target| root.join(target.split('#').next().unwrap()))
        .collect();
    for page in pages() {
        if page != root.join("README.md") {
            assert!(linked.contains(&page), "README.md does not link {}", relative(&page));
        }
    }
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = read(&page);
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() { page.clone() } else { page.parent().unwrap().join(path) };
            if !file.exists() {
                broken.push(format!("{}: {target} (no such file)", relative(&page)));
            } else if !fragment.is_empty() && !anchors(&read(&file)).contains(fragment) {
                broken.push(format!("{}: {target} (no such heading)", relative(&page)));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Files of the steps' folders that are not a step of a frame's trip, and why.
const OFF_THE_TRIP: &[(&str, &str)] = &[
    ("crates/core/src/lib.rs", "the crate's root: module declarations"),
    ("crates/core/src/asyncapi.rs", "generates docs/asyncapi.yaml, which is on the trip"),
    ("crates/core/src/aws.rs", "the SDK clients' configuration, built once per function"),
    ("crates/core/src/config.rs", "environment variables, read once at start-up"),
    ("crates/core/src/limits.rs", "constants the steps use"),
    ("crates/local-gateway/src/lib.rs", "the crate's root"),
    ("crates/local-gateway/src/main.rs", "the command line"),
    ("crates/local-gateway/src/error.rs", "the gateway's start-up errors"),
    ("crates/local-gateway/src/web.rs", "serves the page's files, not frames"),
    ("web/app/chat.css", "the page's look"),
];

/// The source files a frame can pass through: the folders of the trip's steps.
fn trip_sources() -> BTreeSet<String> {
    let root = workspace_root();
    let mut files = BTreeSet::new();
    for dir in ["crates/core/src", "crates/local-gateway/src", "web/app"] {
        let mut stack = vec![root.join(dir)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.insert(relative(&path));
                }
            }
        }
    }
    files
}

#[test]
fn the_readmes_frames_trip_names_existing_files_and_every_source_file_of_its_steps() {
    let root = workspace_root();
    let readme = read(&root.join("README.md"));
    let start = readme.find("### A frame's trip, file by file").expect("the README maps a frame's trip");
    let rows: Vec<&str> = readme[start..]
        .lines()
        .skip_while(|line| !line.starts_with("| step"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .collect();
    assert!(rows.len() >= 7, "socket, authorize, route, invoke, handler, store and post at least: {rows:?}");
    let mut named = BTreeSet::new();
    for row in rows {
        let files = row.rsplit('|').nth(1).unwrap();
        for file in files.split(',').map(|file| file.trim().trim_matches('`')) {
            assert!(root.join(file).is_file(), "the README names {file}, which does not exist");
            named.insert(file.to_owned());
        }
    }
    for (file, _) in OFF_THE_TRIP {
        assert!(root.join(file).is_file(), "OFF_THE_TRIP names {file}, which does not exist");
        assert!(!named.contains(*file), "{file} is both on the trip and off it");
    }
    let off: BTreeSet<String> = OFF_THE_TRIP.iter().map(|(file, _)| (*file).to_owned()).collect();
    let missing: Vec<String> =
        trip_sources().into_iter().filter(|file| !named.contains(file) && !off.contains(file)).collect();
    assert!(
        missing.is_empty(),
        "on no step of the README's frame's trip (add them, or to OFF_THE_TRIP with why): {missing:?}"
    );
}

/// Variables the functions read that the SDK or the runtime defines, not `config.rs`.
const SDK_AND_RUNTIME_VARIABLES: &[&str] =
    &["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"];

#[test]
fn the_configuration_table_lists_every_variable_config_rs_names_and_no_other() {
    let root = workspace_root();
    let config = read(&root.join("crates/core/src/config.rs"));
    let named: BTreeSet<String> = config
        .lines()
        .filter(|line| line.starts_with("pub const ") && line.contains(": &str = \""))
        .map(|line| line.split('"').nth(1).unwrap().to_owned())
        .collect();
    assert!(named.len() >= 10, "config.rs names its variables as `pub const X: &str = \"NAME\";`: {named:?}");

    let deploy = read(&root.join("docs/deploy.md"));
    let start = deploy.find("## Configuration").expect("docs/deploy.md has a Configuration section");
    let mut documented = BTreeSet::new();
    for row in deploy[start..].lines().skip_while(|line| !line.starts_with("| variable")).skip(2) {
        if !row.starts_with('|') {
            break;
        }
        let first = row.split('|').nth(1).unwrap();
        documented.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    let missing: Vec<&String> = named.difference(&documented).collect();
    assert!(missing.is_empty(), "docs/deploy.md's configuration table lacks {missing:?}");
    let unknown: Vec<&String> =
        documented.difference(&named).filter(|name| !SDK_AND_RUNTIME_VARIABLES.contains(&name.as_str())).collect();
    assert!(unknown.is_empty(), "docs/deploy.md's configuration table names variables nothing reads: {unknown:?}");
}

#[test]
fn every_cpu_figure_the_docs_quote_is_linked_to_the_benchmark_run() {
    let mut unlinked = Vec::new();
    for page in pages() {
        if page.ends_with("BENCHMARKS.md") {
            continue;
        }
        let text = read(&page);
        // A block: a paragraph, a list item with its lines, or a whole table.
        let mut block = String::new();
        for line in text.lines().chain([""]) {
            let starts_item = line.trim_start().starts_with("- ") || line.trim_start().starts_with("1. ");
            if line.trim().is_empty() || starts_item {
                if quotes_cpu(&block) && !block.contains("BENCHMARKS.md") {
                    unlinked.push(format!("{}: {}", relative(&page), block.lines().next().unwrap_or_default()));
                }
                block.clear();
            }
            block.push_str(line);
            block.push('\n');
        }
    }
    assert!(unlinked.is_empty(), "CPU figures without a link to BENCHMARKS.md:\n{}", unlinked.join("\n"));
}

/// Whether the text quotes a figure in µs (what `make bench` measures as CPU per operation).
fn quotes_cpu(text: &str) -> bool {
    text.match_indices("µs").any(|(at, _)| text[..at].trim_end().ends_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn the_testing_page_says_what_every_test_file_proves() {
    let root = workspace_root();
    let mut files = BTreeSet::new();
    for crate_dir in std::fs::read_dir(root.join("crates")).unwrap() {
        let mut stack = vec![crate_dir.unwrap().path().join("tests")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() && name != "support" && name != "fixtures" {
                    stack.push(path);
                } else if name.ends_with(".rs") {
                    files.insert(relative(&path));
                }
            }
        }
    }
    let page = read(&root.join("docs/testing.md"));
    let listed: BTreeSet<String> = page
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| line.split('`').nth(1).unwrap().to_owned())
        .collect();
    let unlisted: Vec<&String> = files.difference(&listed).collect();
    assert!(unlisted.is_empty(), "docs/testing.md does not say what these prove: {unlisted:?}");
    let gone: Vec<&String> = listed.difference(&files).collect();
    assert!(gone.is_empty(), "docs/testing.md lists test files that do not exist: {gone:?}");
}
