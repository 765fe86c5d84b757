//! `catch-up`: how fast the projector replays the log into an empty read store.
//!
//! Times `hayabusa::rebuild` (drop the read models, replay every event from position
//! 0, the same code path as `hayabusa rebuild`) on the bulk log, in this process, and
//! divides the events replayed by the time taken.

use super::Context;
use crate::bulk_log::BulkLog;
use crate::report::{Row, thousands};
use std::time::Instant;

/// Rebuilds the bulk log's read models (in the run's read store) and reports the
/// replay rate.
pub async fn run(context: &Context, bulk: &BulkLog) -> anyhow::Result<Row> {
    let engines = context.engines_sharing_log(&bulk.engines).await;
    let started = Instant::now();
    let position = hayabusa::rebuild(&bulk.dir, &engines.backends()).await?;
    let elapsed = started.elapsed();
    let rate = bulk.events as f64 / elapsed.as_secs_f64();
    eprintln!(
        "  rebuilt up to {position} in {:.1} s: {rate:.0} events/s",
        elapsed.as_secs_f64()
    );
    let works = position == bulk.head && position > 0;
    let mut result = format!(
        "{} events/s ({} events in {:.1} s)",
        thousands(rate),
        thousands(bulk.events as f64),
        elapsed.as_secs_f64()
    );
    if !works {
        result.push_str(&format!(
            "; **stopped at {position}, log head {}**",
            bulk.head
        ));
    }
    Ok(Row::new(
        "catch-up",
        format!(
            "projector replay from an empty read store on {:?} (`hayabusa::rebuild`), mostly message_posted",
            context.args.backend
        ),
        "events/s; 1M events replayed in minutes, not hours",
        result,
        format!(
            "the log took them at {}/s (direct appends, big batches)",
            thousands(bulk.append_rate)
        ),
        works,
    ))
}
