//! Priority slots: a counting semaphore whose waiters are served highest priority first (ties
//! in the order they asked), where tokio's semaphore serves them strictly in order of arrival.
//!
//! The executor's task slots and the lake's gold model slots are of this kind, and a task asks
//! with its priority weight (see [`crate::dag::Dag::priority_weights`]: Airflow's default
//! `weight_rule = downstream`, one plus the number of tasks downstream of it). So when a slot
//! frees, the task with the most work waiting on it runs first: in the gold DAG, `fact_rounds`
//! (which most models read) no longer waits behind course summaries that nothing reads.

use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// `n` slots, handed out by priority.
#[derive(Clone)]
pub struct PrioritySlots {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PrioritySlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("PrioritySlots").field("free", &st.free).field("waiting", &st.waiting.len()).finish()
    }
}

struct Inner {
    state: Mutex<State>,
}

struct State {
    free: usize,
    /// Asks so far: the tie-break that keeps equal priorities in arrival order.
    asked: u64,
    waiting: BinaryHeap<Waiter>,
}

/// One waiting ask. A waiter whose future was dropped stays in the heap until its turn comes;
/// then the slot it is sent comes back and goes to the next one.
struct Waiter {
    priority: u64,
    seq: u64,
    tx: oneshot::Sender<SlotPermit>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}

impl Eq for Waiter {}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiter {
    /// The heap's greatest is served first: higher priority, then the earlier ask.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority.cmp(&other.priority).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// A held slot; dropping it frees the slot for the highest-priority waiter.
#[must_use = "the slot is freed when the permit is dropped"]
pub struct SlotPermit {
    /// `None` once handed back (a permit that could not be delivered is defused).
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for SlotPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlotPermit")
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            Inner::release(&inner);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement, so a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives a freed slot to the highest-priority waiter still waiting, else back to the pool.
    fn release(this: &Arc<Inner>) {
        let mut st = this.lock();
        while let Some(w) = st.waiting.pop() {
            match w.tx.send(SlotPermit { inner: Some(this.clone()) }) {
                Ok(()) => return,
                // Its ask was dropped: defuse the permit (dropping it would re-enter this lock)
                // and try the next waiter.
                Err(mut undelivered) => undelivered.inner = None,
            }
        }
        st.free += 1;
    }
}

impl PrioritySlots {
    /// `n` slots (at least one).
    pub fn new(n: usize) -> Self {
        let state = State { free: n.max(1), asked: 0, waiting: BinaryHeap::new() };
        PrioritySlots { inner: Arc::new(Inner { state: Mutex::new(state) }) }
    }

    /// Waits for a slot. A free slot is taken at once only if nobody waits; otherwise the slot
    /// goes to the highest `priority` among the waiters when one is freed. Dropping the future
    /// gives up the ask (cancel-safe).
    pub async fn acquire(&self, priority: u64) -> SlotPermit {
        let rx = {
            let mut st = self.inner.lock();
            if st.free > 0 && st.waiting.is_empty() {
                st.free -= 1;
                return SlotPermit { inner: Some(self.inner.clone()) };
            }
            let (tx, rx) = oneshot::channel();
            st.asked += 1;
            let seq = st.asked;
            st.waiting.push(Waiter { priority, seq, tx });
            rx
        };
        match rx.await {
            Ok(permit) => permit,
            // Unreachable: a waiter's sender is only dropped after a send. Should it happen,
            // asking again is still correct.
            Err(_) => Box::pin(self.acquire(priority)).await,
        }
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.inner.lock().free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Lets spawned tasks run up to their next wait.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn freed_slots_go_to_the_highest_priority_then_the_earliest_ask() {
        let slots = PrioritySlots::new(1);
        let held = slots.acquire(1).await;
        assert_eq!(slots.available(), 0);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for (name, priority) in [("low", 1), ("high-first", 9), ("mid", 5), ("high-second", 9)] {
            let (slots, order) = (slots.clone(), order.clone());
            handles.push(tokio::spawn(async move {
                let _p = slots.acquire(priority).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            // Asks arrive in this order.
            settle().await;
        }
        drop(held);
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec!["high-first", "high-second", "mid", "low"]);
        assert_eq!(slots.available(), 1, "every slot is back");
    }

    #[tokio::test]
    async fn a_dropped_ask_passes_its_slot_on() {
        let slots = PrioritySlots::new(1);
        let held = slots.acquire(1).await;
        // A high-priority ask that gives up (a cancelled task) before a slot frees.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), slots.acquire(100)).await;
        assert!(gave_up.is_err());
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire(1).await })
        };
        settle().await;
        drop(held);
        let permit = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("slot passed on").unwrap();
        assert_eq!(slots.available(), 0);
        drop(permit);
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test]
    async fn n_slots_run_n_at_once() {
        let slots = PrioritySlots::new(3);
        let a = slots.acquire(0).await;
        let b = slots.acquire(0).await;
        let c = slots.acquire(0).await;
        assert!(tokio::time::timeout(Duration::from_millis(20), slots.acquire(0)).await.is_err());
        drop((a, b, c));
        assert_eq!(slots.available(), 3);
        assert_eq!(PrioritySlots::new(0).available(), 1, "at least one slot");
    }
}
