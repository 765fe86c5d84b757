//! How much of the machine other processes used while a scenario ran.
//!
//! On a small machine shared with builds and tests, a figure means little without
//! knowing whether something else was eating the CPU. A sample reads the machine's
//! busy and total time from `/proc/stat` and this process's own CPU time, plus that of
//! its reaped children (the servers), from `/proc/self/stat`; between two samples,
//! busy time that was not ours was someone else's.

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
}
