//! The run's output: one markdown table of figures, with the machine, the commit and
//! the command line, so that a pasted result says where it came from.

use std::process::Command;

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// What is measured.
    pub figure: String,
    /// What it should reach.
    pub target: String,
    /// What it reached.
    pub result: String,
    /// How it compares with the baseline (or "–").
    pub versus: String,
    /// The scenario worked end to end (answers, no errors); a quick run fails otherwise.
    pub works: bool,
}

impl Row {
    /// A row that worked.
    pub fn new(
        scenario: &str,
        figure: impl Into<String>,
        target: impl Into<String>,
        result: impl Into<String>,
        versus: impl Into<String>,
        works: bool,
    ) -> Self {
        Row {
            scenario: scenario.to_string(),
            figure: figure.into(),
            target: target.into(),
            result: result.into(),
            versus: versus.into(),
            works,
        }
    }

    /// The row of a scenario that could not run.
    pub fn failed(scenario: &str, error: &anyhow::Error) -> Self {
        Row::new(
            scenario,
            "–",
            "–",
            format!("**FAILED**: {}", one_line(&format!("{error:#}"))),
            "–",
            false,
        )
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '|'], " ")
}

/// The whole report as markdown.
/// Where the figures come from: the checkout and the binary under test, read when the
/// run starts (the checkout may move on while it runs).
#[derive(Clone, Debug)]
pub struct Provenance {
    /// `git rev-parse --short HEAD`, marked when the work tree has uncommitted changes.
    pub commit: String,
    /// How long before the run the server binary was last written.
    pub server_age: Option<std::time::Duration>,
}

impl Provenance {
    /// Reads the commit and the age of `server_binary` now.
    pub fn now(server_binary: &std::path::Path) -> Self {
        let server_age = std::fs::metadata(server_binary)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        Provenance {
            commit: commit(),
            server_age,
        }
    }

    fn line(&self) -> String {
        let age = self.server_age.map_or_else(String::new, |age| {
            format!(
                "; server binary built {} min before the run",
                age.as_secs() / 60
            )
        });
        format!("Commit: {} (HEAD when the run started{age})", self.commit)
    }
}

/// `others` is the share of the machine other processes used during the run.
pub fn render(
    rows: &[Row],
    command_line: &str,
    provenance: &Provenance,
    others: Option<f64>,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Machine: {} cores ({}), {} RAM, {}\n",
        cores(),
        cpu_model(),
        memory(),
        kernel()
    ));
    if let Some(share) = others {
        out.push_str(&format!(
            "Other processes used {:.0}% of the machine during the run\n",
            share * 100.0
        ));
    }
    out.push_str(&provenance.line());
    out.push('\n');
    out.push_str(&format!("Command: `{command_line}`\n\n"));
    out.push_str("| scenario | figure | target | result | vs baseline |\n");
    out.push_str("|---|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.scenario,
            one_line(&row.figure),
            one_line(&row.target),
            one_line(&row.result),
            one_line(&row.versus)
        ));
    }
    out
}

fn cores() -> String {
    std::thread::available_parallelism().map_or_else(|_| "?".into(), |n| n.to_string())
}

/// `Model name` from `lscpu`, else from `/proc/cpuinfo`.
fn cpu_model() -> String {
    let from_lscpu = run("lscpu", &[]).and_then(|out| {
        out.lines()
            .find_map(|line| line.trim().strip_prefix("Model name:"))
            .map(|name| name.trim().to_string())
    });
    from_lscpu
        .or_else(|| {
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find_map(|line| line.strip_prefix("model name"))
                        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
                })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or_else(
            || "? GiB".into(),
            |kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0),
        )
}

fn kernel() -> String {
    run("uname", &["-sr"]).map_or_else(|| "unknown OS".into(), |s| s.trim().to_string())
}

/// `git rev-parse --short HEAD`, marked when the work tree has uncommitted changes.
fn commit() -> String {
    let Some(head) = run("git", &["rev-parse", "--short", "HEAD"]) else {
        return "unknown (not a git checkout)".into();
    };
    let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.trim().is_empty());
    format!(
        "{}{}",
        head.trim(),
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Formats a count with thousands separators (`1234567` → `1,234,567`).
pub fn thousands(value: f64) -> String {
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if rounded < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn a_row_never_breaks_the_table() {
        let rows = [Row::new("post", "a|b", "t", "line\nbreak", "–", true)];
        let provenance = Provenance {
            commit: "abc1234".into(),
            server_age: Some(std::time::Duration::from_secs(600)),
        };
        let table = render(&rows, "hayabusa-bench", &provenance, None);
        assert!(table.contains(
            "Commit: abc1234 (HEAD when the run started; server binary built 10 min before the run)"
        ));
        assert!(table.contains("| post | a b | t | line break | – |"));
    }
}
