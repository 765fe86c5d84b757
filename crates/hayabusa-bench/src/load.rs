//! The open-loop scheduler and its latency histogram.
//!
//! Requests are sent at a fixed arrival rate whatever the server does: request `i` is
//! due at `start + i / rate`, and its latency is measured from that *intended* time,
//! not from when it was actually sent. A server that stalls therefore shows its
//! queueing in the percentiles instead of silently slowing the generator down
//! (coordinated omission). Pacing runs on a dedicated OS thread with `nanosleep`
//! precision (tokio's timer wheel has millisecond ticks); each request runs as its own
//! tokio task, bounded by a timeout and by a cap on requests in flight.
//!
//! A ladder climbs stepped rates until a step misses the criterion (p99 at or below a
//! limit and no errors) twice in a row, then bisects between the last passing and the
//! first failing rate a few times.

use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One request of a load: gets its sequence number and intended send time, resolves
/// to `Err(reason)` on any failure (transport, non-2xx, wrong answer).
pub type RequestFn =
    Arc<dyn Fn(u64, Instant) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Wraps a closure as a [`RequestFn`].
pub fn request_fn<F>(f: F) -> RequestFn
where
    F: Fn(u64, Instant) -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
{
    Arc::new(f)
}

/// A histogram of latencies in microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Records `latency` (clamped into the histogram's range).
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, histogram.high());
    histogram.saturating_record(micros);
}

/// Milliseconds at quantile `q` (0.0 when empty).
pub fn quantile_ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    if histogram.is_empty() {
        0.0
    } else {
        histogram.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Errors counted across many tasks, keeping the first reason for the report.
#[derive(Default)]
pub struct Errors {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Errors {
    /// Counts one error.
    pub fn add(&self, reason: impl Into<String>) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            *self.first.lock() = Some(reason.into());
        }
    }

    /// Errors so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The first error's reason.
    pub fn first(&self) -> Option<String> {
        self.first.lock().clone()
    }
}

/// One fixed-rate run.
#[derive(Clone, Copy, Debug)]
pub struct OpenLoop {
    /// Requests per second.
    pub rate: f64,
    /// How long requests are sent.
    pub duration: Duration,
    /// More requests than this in flight: the next one is not sent and counts as an error.
    pub max_in_flight: usize,
    /// A request not answered within this time counts as an error.
    pub timeout: Duration,
}

impl OpenLoop {
    /// A run at `rate` for `duration` with the default caps (2,048 in flight, 5 s).
    pub fn new(rate: f64, duration: Duration) -> Self {
        OpenLoop {
            rate,
            duration,
            max_in_flight: 2048,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What one fixed-rate run measured.
pub struct StepOutcome {
    /// The intended rate.
    pub rate: f64,
    /// Requests due (sent or refused by the in-flight cap).
    pub due: u64,
    /// Successful requests.
    pub ok: u64,
    /// Failed, timed-out or unsent requests.
    pub errors: u64,
    /// The first error's reason.
    pub first_error: Option<String>,
    /// Latency of successful requests from their intended send time, µs.
    pub latency: Histogram<u64>,
    /// Successful requests per second of wall time (first due → last answer).
    pub achieved: f64,
    /// CPU time the server process used during the step, if measured.
    pub server_cpu: Option<Duration>,
}

impl StepOutcome {
    /// Median latency, ms.
    pub fn p50_ms(&self) -> f64 {
        quantile_ms(&self.latency, 0.50)
    }

    /// 99th percentile latency, ms.
    pub fn p99_ms(&self) -> f64 {
        quantile_ms(&self.latency, 0.99)
    }

    /// Whether the step meets the criterion: no errors, some successes, p99 ≤ limit.
    pub fn passes(&self, p99_limit: Duration) -> bool {
        self.errors == 0 && self.ok > 0 && self.p99_ms() <= p99_limit.as_secs_f64() * 1000.0
    }

    /// Server CPU per successful request, µs, if measured.
    pub fn server_cpu_per_request_us(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.ok > 0).then(|| cpu.as_secs_f64() * 1e6 / self.ok as f64)
    }

    /// One line for logs: rate, answers, percentiles.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{:>7.0}/s: {} ok of {} due, {} errors, achieved {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.rate,
            self.ok,
            self.due,
            self.errors,
            self.achieved,
            self.p50_ms(),
            self.p99_ms(),
            self.latency.max() as f64 / 1000.0,
        );
        if let Some(cpu) = self.server_cpu_per_request_us() {
            line.push_str(&format!(", server CPU {cpu:.0} µs/request"));
        }
        if let Some(error) = &self.first_error {
            line.push_str(&format!(" (first error: {error})"));
        }
        line
    }
}

struct Shared {
    latency: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    errors: Errors,
    in_flight: AtomicUsize,
    last_answer: Mutex<Option<Instant>>,
}

/// Sends requests at a fixed rate for a fixed time and measures them.
pub async fn run(config: OpenLoop, request: RequestFn) -> StepOutcome {
    let due = ((config.rate * config.duration.as_secs_f64()).round() as u64).max(1);
    let shared = Arc::new(Shared {
        latency: Mutex::new(histogram()),
        ok: AtomicU64::new(0),
        errors: Errors::default(),
        in_flight: AtomicUsize::new(0),
        last_answer: Mutex::new(None),
    });
    let runtime = tokio::runtime::Handle::current();
    let start = Instant::now() + Duration::from_millis(5);
    let pacer_shared = Arc::clone(&shared);
    let pacer = tokio::task::spawn_blocking(move || {
        let shared = pacer_shared;
        let mut tasks = Vec::with_capacity(usize::try_from(due).unwrap_or(0));
        for i in 0..due {
            let intended = start + Duration::from_secs_f64(i as f64 / config.rate);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            if shared.in_flight.load(Ordering::Relaxed) >= config.max_in_flight {
                shared.errors.add(format!(
                    "more than {} requests in flight: not sent",
                    config.max_in_flight
                ));
                continue;
            }
            shared.in_flight.fetch_add(1, Ordering::Relaxed);
            let future = request(i, intended);
            let shared = Arc::clone(&shared);
            tasks.push(runtime.spawn(async move {
                let answer = tokio::time::timeout(config.timeout, future).await;
                let done = Instant::now();
                match answer {
                    Ok(Ok(())) => {
                        record(&mut shared.latency.lock(), done - intended);
                        shared.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(reason)) => shared.errors.add(reason),
                    Err(_) => shared
                        .errors
                        .add(format!("no answer within {:?}", config.timeout)),
                }
                {
                    let mut last = shared.last_answer.lock();
                    if last.is_none_or(|at| at < done) {
                        *last = Some(done);
                    }
                }
                shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            }));
        }
        tasks
    });
    let tasks = pacer.await.unwrap_or_default();
    for task in tasks {
        // Each task is bounded by the timeout; a panicking one counts as an error.
        if task.await.is_err() {
            shared.errors.add("request task panicked");
        }
    }
    let ok = shared.ok.load(Ordering::Relaxed);
    let wall = shared
        .last_answer
        .lock()
        .map(|at| at.saturating_duration_since(start))
        .unwrap_or_default();
    let latency = shared.latency.lock().clone();
    StepOutcome {
        rate: config.rate,
        due,
        ok,
        errors: shared.errors.count(),
        first_error: shared.errors.first(),
        latency,
        achieved: if wall.is_zero() {
            0.0
        } else {
            ok as f64 / wall.as_secs_f64()
        },
        server_cpu: None,
    }
}

/// Stepped rates and the criterion a step must meet.
#[derive(Clone, Debug)]
pub struct Ladder {
    /// Rates to climb, ascending.
    pub rates: Vec<f64>,
    /// Duration of each step.
    pub step: Duration,
    /// A step passes with p99 at or below this and no errors.
    pub p99_limit: Duration,
    /// Bisection steps after the first failure.
    pub bisections: usize,
}

/// Every step a ladder ran, in order, and the best passing one.
pub struct LadderOutcome {
    /// All steps in the order they ran.
    pub steps: Vec<StepOutcome>,
    /// Index into `steps` of the highest passing rate.
    pub best: Option<usize>,
    /// The step limit the ladder was judged by.
    pub p99_limit: Duration,
}

impl LadderOutcome {
    /// The highest passing step.
    pub fn best_step(&self) -> Option<&StepOutcome> {
        self.best.map(|index| &self.steps[index])
    }

    /// The highest passing rate, 0 if none passed.
    pub fn best_rate(&self) -> f64 {
        self.best_step().map_or(0.0, |step| step.rate)
    }

    /// The first (lowest) step worked: answers and no errors. A functional check, not
    /// a performance one.
    pub fn works(&self) -> bool {
        self.steps
            .first()
            .is_some_and(|step| step.ok > 0 && step.errors == 0)
    }

    /// The lowest failing step, for the report.
    pub fn first_failure(&self) -> Option<&StepOutcome> {
        self.steps
            .iter()
            .filter(|step| !step.passes(self.p99_limit))
            .min_by(|a, b| a.rate.total_cmp(&b.rate))
    }
}

/// Reads the CPU time the process under test has used so far.
pub type CpuProbe = Arc<dyn Fn() -> Option<Duration> + Send + Sync>;

/// One fixed-rate run with the server's CPU time measured around it.
pub async fn run_measured(config: OpenLoop, request: RequestFn, cpu: &CpuProbe) -> StepOutcome {
    let before = cpu();
    let mut outcome = run(config, request).await;
    outcome.server_cpu = match (before, cpu()) {
        (Some(before), Some(after)) => after.checked_sub(before),
        _ => None,
    };
    outcome
}

/// Climbs the ladder with `request`, logging each step under `label`; `cpu` reads the
/// server's CPU time.
pub async fn climb(
    label: &str,
    ladder: &Ladder,
    request: RequestFn,
    cpu: CpuProbe,
) -> LadderOutcome {
    let mut steps: Vec<StepOutcome> = Vec::new();
    let mut best: Option<usize> = None;
    let mut failed_at: Option<f64> = None;
    // A failing step runs once more before it counts: on a small shared machine a
    // single step can fail because of something else running for a moment.
    let run_step = |rate: f64| {
        let request = Arc::clone(&request);
        let cpu = Arc::clone(&cpu);
        async move {
            let config = OpenLoop::new(rate, ladder.step);
            let first = run_measured(config, Arc::clone(&request), &cpu).await;
            eprintln!("  {label} {}", first.summary());
            if first.passes(ladder.p99_limit) {
                return first;
            }
            pause().await;
            let second = run_measured(config, request, &cpu).await;
            eprintln!("  {label} {} (second try)", second.summary());
            second
        }
    };
    for &rate in &ladder.rates {
        let outcome = run_step(rate).await;
        let passed = outcome.passes(ladder.p99_limit);
        steps.push(outcome);
        if passed {
            best = Some(steps.len() - 1);
        } else {
            failed_at = Some(rate);
            break;
        }
        pause().await;
    }
    if let Some(mut high) = failed_at {
        let mut low = best.map_or(0.0, |index| steps[index].rate);
        for _ in 0..ladder.bisections {
            let rate = ((low + high) / 2.0).round();
            if rate <= low || rate >= high {
                break;
            }
            pause().await;
            let outcome = run_step(rate).await;
            let passed = outcome.passes(ladder.p99_limit);
            steps.push(outcome);
            if passed {
                best = Some(steps.len() - 1);
                low = rate;
            } else {
                high = rate;
            }
        }
    }
    LadderOutcome {
        steps,
        best,
        p99_limit: ladder.p99_limit,
    }
}

/// Lets the server drain between steps.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(750)).await;
}
