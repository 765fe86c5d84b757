//! The processes under test: the real `hayabusa serve` binary and the baseline
//! hello-world, each a child process on a free loopback port, with its output in a
//! log file. Also reads a process's resident memory from `/proc/PID/status`.
//!
//! Children are killed when dropped, so an aborted run leaves no server behind.

use crate::client::Api;
use anyhow::{Context, bail};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How to start `hayabusa serve`.
#[derive(Clone, Debug)]
pub struct ServerBinary {
    /// The executable.
    pub path: PathBuf,
    /// Extra arguments after `serve --data-dir DIR --listen ADDR`.
    pub extra_args: Vec<String>,
}

impl ServerBinary {
    /// The binary at `path` (or `hayabusa` next to this executable), with the flag that
    /// switches rate limits off if this build has one, plus `extra_args`.
    pub async fn locate(path: Option<PathBuf>, extra_args: Vec<String>) -> anyhow::Result<Self> {
        let path = match path {
            Some(path) => path,
            None => std::env::current_exe()
                .context("locating this executable")?
                .with_file_name("hayabusa"),
        };
        if !path.is_file() {
            bail!(
                "no server binary at {} (build it with `cargo build --release -p hayabusa`, or pass --server-bin)",
                path.display()
            );
        }
        let help = Command::new(&path)
            .args(["serve", "--help"])
            .output()
            .await
            .with_context(|| format!("running {} serve --help", path.display()))?;
        let help = String::from_utf8_lossy(&help.stdout);
        let mut args = rate_limit_off_args(&help);
        args.extend(extra_args);
        Ok(ServerBinary {
            path,
            extra_args: args,
        })
    }
}

/// The arguments that switch rate limits off, judged from `serve --help`: rate limits
/// would otherwise turn a load test into a test of the limiter.
fn rate_limit_off_args(help: &str) -> Vec<String> {
    let flags: Vec<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == ']')
        .filter(|word| word.starts_with("--"))
        .collect();
    let has = |flag: &str| flags.contains(&flag);
    if has("--no-rate-limits") {
        vec!["--no-rate-limits".into()]
    } else if has("--no-rate-limit") {
        vec!["--no-rate-limit".into()]
    } else if has("--rate-limits") {
        vec!["--rate-limits=off".into()]
    } else if has("--rate-limit") {
        vec!["--rate-limit=off".into()]
    } else {
        Vec::new()
    }
}

/// A free port on 127.0.0.1 (bound and released; the tiny race is acceptable here).
pub fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free loopback port")?;
    Ok(listener.local_addr()?)
}

/// A running child process serving HTTP on a loopback address.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stdout and stderr.
    pub log: PathBuf,
    label: String,
}

impl ServerProcess {
    /// Starts `hayabusa serve` on `data_dir` and waits until `/healthz` answers.
    pub async fn start_hayabusa(
        binary: &ServerBinary,
        data_dir: &Path,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let server = Self::spawn_hayabusa(binary, data_dir, log)?;
        server.wait_up(Duration::from_secs(120)).await?;
        Ok(server)
    }

    /// Starts `hayabusa serve` on `data_dir` without waiting.
    pub fn spawn_hayabusa(
        binary: &ServerBinary,
        data_dir: &Path,
        log: &Path,
    ) -> anyhow::Result<Self> {
        Self::spawn_hayabusa_with(binary, data_dir, log, &[])
    }

    /// Starts `hayabusa serve` on `data_dir` with `args` before the binary's extra
    /// arguments (e.g. a cluster node's role and engines), without waiting.
    pub fn spawn_hayabusa_with(
        binary: &ServerBinary,
        data_dir: &Path,
        log: &Path,
        args: &[String],
    ) -> anyhow::Result<Self> {
        let addr = free_loopback_addr()?;
        let mut command = Command::new(&binary.path);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .args(&binary.extra_args)
            // The server's log level: `info` unless HAYABUSA_BENCH_SERVER_LOG says
            // otherwise (e.g. `hayabusa_sqlite=debug` to see the event log's work).
            .env(
                "RUST_LOG",
                std::env::var("HAYABUSA_BENCH_SERVER_LOG").unwrap_or_else(|_| "info".into()),
            );
        Self::spawn(command, addr, log, "hayabusa")
    }

    /// Starts this executable's `baseline-server` and waits until it answers.
    pub async fn start_baseline(log: &Path) -> anyhow::Result<Self> {
        let addr = free_loopback_addr()?;
        let mut command =
            Command::new(std::env::current_exe().context("locating this executable")?);
        command
            .arg("baseline-server")
            .arg("--listen")
            .arg(addr.to_string());
        let server = Self::spawn(command, addr, log, "baseline")?;
        server.wait_up(Duration::from_secs(30)).await?;
        Ok(server)
    }

    fn spawn(
        mut command: Command,
        addr: SocketAddr,
        log: &Path,
        label: &str,
    ) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting the {label} server"))?;
        Ok(ServerProcess {
            child,
            addr,
            log: log.to_owned(),
            label: label.to_string(),
        })
    }

    /// A client for this server.
    pub fn api(&self) -> anyhow::Result<Api> {
        Api::new(self.addr)
    }

    /// Polls `/healthz` every few milliseconds until it answers or `limit` passes.
    /// Returns how long that took.
    pub async fn wait_up(&self, limit: Duration) -> anyhow::Result<Duration> {
        let api = self.api()?;
        let start = Instant::now();
        while start.elapsed() < limit {
            if api.is_up().await {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bail!(
            "the {} server did not answer /healthz within {limit:?} (see {})",
            self.label,
            self.log.display()
        )
    }

    /// Whether the process has ended (it is reaped if so).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Its process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the server has exited")
    }

    /// Its resident set size in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.pid()?)
    }

    /// A probe of its CPU time for the load generator.
    pub fn cpu_probe(&self) -> crate::load::CpuProbe {
        let pid = self.child.id();
        std::sync::Arc::new(move || cpu_time(pid?))
    }

    /// SIGTERM, then waits (up to 30 s) for a graceful exit; SIGKILL after that.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
                Ok(status) => {
                    status?;
                }
                Err(_) => {
                    self.child.kill().await?;
                    bail!("the {} server ignored SIGTERM for 30 s", self.label);
                }
            }
        }
        Ok(())
    }

    /// `kill -9` and reap.
    pub async fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("SIGKILL")?;
        Ok(())
    }
}

/// CPU time (utime + stime) of a process, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    crate::cpu::process_cpu(pid)
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

/// Reads `DATA_DIR/admin.token`, waiting (bounded) for the server to write it.
pub async fn admin_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(hayabusa::data_dir::ADMIN_TOKEN_FILE);
    for _ in 0..500 {
        if let Ok(token) = std::fs::read_to_string(&path)
            && !token.trim().is_empty()
        {
            return Ok(token.trim().to_string());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("no admin token at {}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_switched_off_by_whatever_flag_the_build_has() {
        assert!(rate_limit_off_args("  --listen <LISTEN>\n").is_empty());
        assert_eq!(
            rate_limit_off_args("  --rate-limit <MODE>  on|off\n"),
            vec!["--rate-limit=off"]
        );
        assert_eq!(
            rate_limit_off_args("  --no-rate-limit  disable\n"),
            vec!["--no-rate-limit"]
        );
        let help =
            "      --rate-limit-requests <N>\n      --no-rate-limits  Switch all rate limits off\n";
        assert_eq!(rate_limit_off_args(help), vec!["--no-rate-limits"]);
        assert!(rate_limit_off_args("      --rate-limit-requests <N>\n").is_empty());
    }

    #[test]
    fn this_process_has_a_resident_set_and_a_cpu_time() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(cpu_time(std::process::id()).is_some());
    }
}
