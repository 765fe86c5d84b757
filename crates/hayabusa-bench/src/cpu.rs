//! How much of the machine other processes used while a scenario ran.
//!
//! On a small machine shared with builds and tests, a figure means little without
//! knowing whether something else was eating the CPU. A sample reads the machine's
//! busy and total time from `/proc/stat` and this process's own CPU time, plus that of
//! its reaped children (the servers), from `/proc/self/stat`; between two samples,
//! busy time that was not ours was someone else's.
//!
//! Also the CPU time of single processes (`/proc/PID/stat`), and of every process of
//! one name (PostgreSQL's server and backends are not our children).

use std::time::Duration;

/// Clock ticks per second of the `/proc` CPU counters (USER_HZ, which Linux fixes at 100).
pub const TICKS_PER_SECOND: u64 = 100;

/// One reading of the counters, in clock ticks.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    busy: u64,
    total: u64,
    ours: u64,
}

impl CpuSample {
    /// Reads the counters now (None where `/proc` is not there).
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let (busy, total) = machine_ticks(stat.lines().next()?)?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        Some(CpuSample {
            busy,
            total,
            ours: own_ticks(&own)?,
        })
    }

    /// The share of the whole machine (0–1) that other processes used since `earlier`.
    pub fn others_since(&self, earlier: &CpuSample) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        if total == 0 {
            return None;
        }
        let busy = self.busy.saturating_sub(earlier.busy);
        let ours = self.ours.saturating_sub(earlier.ours);
        Some(busy.saturating_sub(ours) as f64 / total as f64)
    }
}

/// Busy and total ticks from the aggregate `cpu` line of `/proc/stat`.
fn machine_ticks(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.take(8).filter_map(|v| v.parse().ok()).collect();
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values[..] else {
        return None;
    };
    let busy = user + nice + system + irq + softirq + steal;
    Some((busy, busy + idle + iowait))
}

/// utime + stime + cutime + cstime from `/proc/self/stat`.
fn own_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, so fields[11..15].
    fields
        .get(11..15)?
        .iter()
        .map(|v| v.parse::<u64>().ok())
        .sum()
}

/// The fields of a `/proc/PID/stat` line after the command name, which may hold
/// spaces and parentheses: they start after the last `)`. `fields[0]` is field 3
/// (state), so field N is `fields[N - 3]`.
fn fields_after_name(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks.
pub fn process_ticks(stat: &str) -> Option<u64> {
    fields_after_name(stat)?
        .get(11..13)?
        .iter()
        .map(|v| v.parse::<u64>().ok())
        .sum()
}

/// Clock ticks as a duration.
pub fn ticks_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// CPU time (utime + stime) process `pid` has used so far, None if it is gone.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    process_ticks(&stat).map(ticks_duration)
}

/// One process found by [`processes_named`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedProcess {
    /// Its id.
    pub pid: u32,
    /// utime + stime so far, in clock ticks.
    pub ticks: u64,
    /// Its command line (a PostgreSQL backend's shows its user and database), the
    /// arguments joined by spaces.
    pub command_line: String,
}

/// Every process whose `/proc/PID/comm` is `name`, with its CPU ticks so far.
pub fn processes_named(name: &str) -> Vec<NamedProcess> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        // A process may end at any point here: then it is skipped.
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if comm.trim_end_matches('\n') != name {
            continue;
        }
        let Some(ticks) = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|stat| process_ticks(&stat))
        else {
            continue;
        };
        let command_line = std::fs::read(dir.join("cmdline"))
            .map(|raw| command_line(&raw))
            .unwrap_or_default();
        found.push(NamedProcess {
            pid,
            ticks,
            command_line,
        });
    }
    found
}

/// `/proc/PID/cmdline` (NUL-separated, possibly NUL-padded) as one line.
fn command_line(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .split('\0')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_parse() {
        assert_eq!(
            machine_ticks("cpu  10 1 5 100 4 1 1 2 0 0"),
            Some((20, 124))
        );
        let stat = "42 (a b) S 1 42 42 0 -1 4194304 100 0 0 0 7 3 2 1 20 0 1 0";
        assert_eq!(own_ticks(stat), Some(13));
        let earlier = CpuSample {
            busy: 100,
            total: 1000,
            ours: 50,
        };
        let later = CpuSample {
            busy: 600,
            total: 2000,
            ours: 350,
        };
        assert_eq!(later.others_since(&earlier), Some(0.2));
    }

    #[test]
    fn this_machine_has_counters() {
        assert!(CpuSample::now().is_some());
    }

    #[test]
    fn a_process_stat_line_parses_after_the_last_parenthesis() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194304 100 0 0 0 7 3 2 1 20 0 1 0";
        assert_eq!(process_ticks(stat), Some(10));
        // A command name with spaces and parentheses of its own.
        let stat = "7 (x) (y z) R 1 7 7 0 -1 0 0 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(process_ticks(stat), Some(300));
        assert_eq!(process_ticks("7 (cut) R 1 7"), None);
        assert_eq!(process_ticks("no name here"), None);
        assert_eq!(ticks_duration(300), Duration::from_secs(3));
    }

    #[test]
    fn command_lines_are_joined_without_padding() {
        assert_eq!(
            command_line(b"postgres: 15/main: postgres hb_test_1_0 127.0.0.1(5) idle\0\0\0"),
            "postgres: 15/main: postgres hb_test_1_0 127.0.0.1(5) idle"
        );
        assert_eq!(
            command_line(b"nats-server\0-c\0a.conf\0"),
            "nats-server -c a.conf"
        );
    }

    #[test]
    fn this_process_is_found_by_its_name() {
        assert!(process_cpu(std::process::id()).is_some());
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let found = processes_named(comm.trim_end());
        assert!(found.iter().any(|p| p.pid == std::process::id()));
    }
}
