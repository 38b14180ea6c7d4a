//! Asked once the whole run is over (`scripts/test.sh` runs this after
//! every other test): does any log line or audit event of the run hold a
//! secret the run created? See `helpers::record` for what is gathered.

use std::path::Path;

use aho_corasick::AhoCorasick;

use crate::helpers::record;

/// Fewer would mean the record was not written, not that the run was clean.
const AT_LEAST: usize = 200;

#[test]
#[ignore = "reads the record of a whole run: `scripts/test.sh` runs it after the others"]
fn no_secret_in_any_log_line_or_audit_event() {
    let dir = record::dir();
    let secrets: Vec<String> = json_lines(&dir, "secrets-");
    let events: Vec<String> = json_lines(&dir, "events-");
    let mut logs: Vec<String> = json_lines(&dir, "logs-");
    for path in files(&dir, "stderr-") {
        logs.extend(std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string));
    }
    eprintln!(
        "whole run: {} secrets searched for in {} log lines and {} audit events ({})",
        secrets.len(),
        logs.len(),
        events.len(),
        dir.display()
    );
    for (what, count) in [("secrets", secrets.len()), ("log lines", logs.len()), ("audit events", events.len())] {
        assert!(count >= AT_LEAST, "only {count} {what} in {}: run the whole suite first", dir.display());
    }
    let searcher = AhoCorasick::new(&secrets).expect("search automaton");
    let mut found = Vec::new();
    for (what, lines) in [("log line", &logs), ("audit event", &events)] {
        for line in lines {
            if let Some(hit) = searcher.find(line.as_str()) {
                found.push(format!("a secret ({} bytes) in a {what}: {line}", hit.len()));
            }
        }
    }
    assert!(found.is_empty(), "{} line(s) hold a secret:\n{}", found.len(), found.join("\n"));
}

fn files(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

/// Every JSON string, one per line, of the files whose names start with `prefix`.
fn json_lines(dir: &Path, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for path in files(dir, prefix) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // A line cut short by a test process that stopped mid-write is skipped.
        out.extend(text.lines().filter_map(|line| serde_json::from_str::<String>(line).ok()));
    }
    out
}
