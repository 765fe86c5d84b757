//! How far the read models have got ([`ProjectionWatch`]): the position the projector
//! has committed, and waiting for one. The projector announces; reads, the page cache
//! and the consistency tracker wait.

use hayabusa_store::Position;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The position the read models have reached, and a way to wait for one.
///
/// Waiters are kept by the position they wait for and woken once, when the
/// projection passes it: a single pump task follows the projector's announcements
/// for all of them. (Each waiter watching every announcement itself would cost
/// waiters × batches wake-ups, which grows fastest exactly when reads pile up behind
/// a lagging projector.)
#[derive(Clone, Debug)]
pub struct ProjectionWatch {
    receiver: watch::Receiver<Position>,
    waiters: Arc<Waiters>,
}

/// How many positions may have waiters before those that gave up are purged.
const PURGE_WAITERS_AT: usize = 4_096;

/// Waiters by the position they wait for, and the pump that wakes them.
#[derive(Debug, Default)]
struct Waiters {
    pending: parking_lot::Mutex<BTreeMap<Position, Vec<oneshot::Sender<()>>>>,
    pump: std::sync::OnceLock<()>,
}

impl Waiters {
    /// Wakes every waiter for a position at or below `reached` (all, if `None`: the
    /// projector is gone and waiters should look for themselves).
    fn wake_up_to(&self, reached: Option<Position>) {
        let woken = {
            let mut pending = self.pending.lock();
            match reached {
                Some(reached) => {
                    let later = pending.split_off(&(reached.saturating_add(1)));
                    std::mem::replace(&mut *pending, later)
                }
                None => std::mem::take(&mut *pending),
            }
        };
        for sender in woken.into_values().flatten() {
            let _ = sender.send(());
        }
    }
}

impl ProjectionWatch {
    /// A watch over positions sent on `receiver` (for tests of its users).
    pub fn from_receiver(receiver: watch::Receiver<Position>) -> Self {
        ProjectionWatch {
            receiver,
            waiters: Arc::default(),
        }
    }

    /// The position the read models reflect now.
    pub fn current(&self) -> Position {
        *self.receiver.borrow()
    }

    /// Waits until the read models reflect `position`, at most `timeout`. Returns
    /// whether they do.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        if self.current() >= position {
            return true;
        }
        self.start_pump();
        let (sender, woken) = oneshot::channel();
        {
            let mut pending = self.waiters.pending.lock();
            // Taken after the insertion under the lock: an announcement of `position`
            // either shows here or finds the entry when the pump drains.
            if self.current() >= position {
                return true;
            }
            if pending.len() >= PURGE_WAITERS_AT {
                // Waiters that gave up (timed out behind a stuck projector) leave.
                pending.retain(|_, senders| {
                    senders.retain(|sender| !sender.is_closed());
                    !senders.is_empty()
                });
            }
            pending.entry(position).or_default().push(sender);
        }
        let _ = tokio::time::timeout(timeout, woken).await;
        self.current() >= position
    }

    /// Starts (once per watch and its clones) the task that wakes waiters as the
    /// projection advances. It ends when the projector is dropped.
    fn start_pump(&self) {
        self.waiters.pump.get_or_init(|| {
            let mut receiver = self.receiver.clone();
            let waiters = Arc::downgrade(&self.waiters);
            tokio::spawn(async move {
                loop {
                    let changed = receiver.changed().await;
                    let Some(waiters) = waiters.upgrade() else {
                        return;
                    };
                    match changed {
                        Ok(()) => waiters.wake_up_to(Some(*receiver.borrow_and_update())),
                        Err(_) => {
                            waiters.wake_up_to(None);
                            return;
                        }
                    }
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_when_the_projection_passes_their_position_and_only_then() {
        let (sender, receiver) = watch::channel(0);
        let watch = ProjectionWatch::from_receiver(receiver);
        let waiting: Vec<_> = (1..=1_000u64)
            .map(|position| {
                let watch = watch.clone();
                tokio::spawn(async move { watch.wait_for(position, Duration::from_secs(5)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        // Half way: the first 500 are done, the rest still wait.
        sender.send_replace(500);
        let mut later = Vec::new();
        for (index, task) in waiting.into_iter().enumerate() {
            if index < 500 {
                assert!(task.await.unwrap(), "waiter for {} not woken", index + 1);
            } else {
                later.push(task);
            }
        }
        tokio::task::yield_now().await;
        assert!(later.iter().all(|task| !task.is_finished()), "woken early");
        sender.send_replace(1_000);
        for task in later {
            assert!(task.await.unwrap());
        }
        assert!(watch.waiters.pending.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_times_out_says_so_and_is_purged_later() {
        let (sender, receiver) = watch::channel(0);
        let watch = ProjectionWatch::from_receiver(receiver);
        assert!(!watch.wait_for(7, Duration::from_millis(10)).await);
        // Behind a stuck projector, waiters that gave up do not pile up for ever.
        for position in 0..PURGE_WAITERS_AT as u64 + 10 {
            assert!(
                !watch
                    .wait_for(10 + position, Duration::from_millis(1))
                    .await
            );
        }
        assert!(watch.waiters.pending.lock().len() < PURGE_WAITERS_AT);
        sender.send_replace(7);
        assert!(watch.wait_for(7, Duration::from_millis(1)).await);
    }
}
