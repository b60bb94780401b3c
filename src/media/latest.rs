//! `Latest<T>`: a hand-off that keeps only the newest value.
//!
//! This is how latency stays bounded: between every two stages of the
//! pipeline (capture -> send, receive -> decode) there is one of these
//! instead of a queue. A producer never waits; if the consumer has not taken
//! the previous value yet, that stale value is dropped (and counted) and the
//! new one takes its place. The consumer can wait from a thread (blocking) or
//! from a task (async). A producer whose values must not be dropped (an
//! inter-coded video stream) can instead wait until the slot is empty.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// A single-value, overwrite-on-put hand-off between one producer and one consumer.
#[derive(Debug, Default)]
pub struct Latest<T> {
    state: Mutex<State<T>>,
    /// Wakes a blocking consumer (a thread).
    ready: Condvar,
    /// Wakes an async consumer (a task).
    notify: Notify,
    /// Wakes a producer waiting for the slot to empty.
    emptied: Notify,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct State<T> {
    value: Option<T>,
    closed: bool,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        State {
            value: None,
            closed: false,
        }
    }
}

impl<T> Latest<T> {
    /// An empty, open slot.
    pub fn new() -> Self {
        Latest {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            notify: Notify::new(),
            emptied: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offers a value, replacing (and counting as dropped) any value not yet
    /// taken. Returns false if the slot is closed.
    pub fn put(&self, value: T) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        if state.value.replace(value).is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop(state);
        self.ready.notify_one();
        self.notify.notify_one();
        true
    }

    /// Takes the value if there is one, without waiting.
    pub fn try_take(&self) -> Option<T> {
        let value = self.lock().value.take();
        if value.is_some() {
            self.emptied.notify_waiters();
        }
        value
    }

    /// Whether no value waits in the slot.
    pub fn is_empty(&self) -> bool {
        self.lock().value.is_none()
    }

    /// Waits (asynchronously) until no value waits in the slot, or it is
    /// closed: a producer that must not replace a value waits here first.
    pub async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            // Registered before the check, so a take in between still wakes us.
            emptied.as_mut().enable();
            {
                let state = self.lock();
                if state.value.is_none() || state.closed {
                    return;
                }
            }
            emptied.await;
        }
    }

    /// Waits (blocking the thread) for a value; `None` once closed and empty.
    /// Wakes up at least every `poll` so the caller can check a stop flag.
    pub fn take_blocking(&self, poll: Duration) -> Option<Option<T>> {
        let mut state = self.lock();
        loop {
            if let Some(value) = state.value.take() {
                drop(state);
                self.emptied.notify_waiters();
                return Some(Some(value));
            }
            if state.closed {
                return None;
            }
            let (next, timeout) = self
                .ready
                .wait_timeout(state, poll)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            if timeout.timed_out() && state.value.is_none() && !state.closed {
                return Some(None);
            }
        }
    }

    /// Waits (asynchronously) for a value; `None` once closed and empty.
    pub async fn take(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            {
                let mut state = self.lock();
                if let Some(value) = state.value.take() {
                    drop(state);
                    self.emptied.notify_waiters();
                    return Some(value);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Closes the slot: consumers see `None` once it is empty, producers are refused.
    pub fn close(&self) {
        self.lock().closed = true;
        self.emptied.notify_waiters();
        self.ready.notify_all();
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// How many values were replaced before being taken.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn keeps_only_the_newest_and_counts_the_rest() {
        let slot = Latest::new();
        for i in 0..5 {
            assert!(slot.put(i));
        }
        assert_eq!(slot.try_take(), Some(4));
        assert_eq!(slot.try_take(), None);
        assert_eq!(slot.dropped(), 4);
    }

    #[test]
    fn closing_wakes_a_blocked_thread() {
        let slot = Arc::new(Latest::<u32>::new());
        let waiter = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.take_blocking(Duration::from_secs(60)))
        };
        slot.close();
        assert_eq!(waiter.join().unwrap(), None);
        assert!(!slot.put(1), "closed slots refuse values");
    }

    #[test]
    fn a_blocked_thread_gets_the_value() {
        let slot = Arc::new(Latest::<u32>::new());
        let waiter = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.take_blocking(Duration::from_secs(60)))
        };
        slot.put(7);
        assert_eq!(waiter.join().unwrap(), Some(Some(7)));
    }

    #[tokio::test]
    async fn a_producer_can_wait_for_the_slot_to_empty() {
        let slot = Arc::new(Latest::<u32>::new());
        slot.wait_empty().await;
        slot.put(1);
        let waiter = {
            let slot = slot.clone();
            tokio::spawn(async move { slot.wait_empty().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let taker = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.take_blocking(Duration::from_secs(5)))
        };
        waiter.await.unwrap();
        assert_eq!(taker.join().unwrap(), Some(Some(1)));
        assert_eq!(slot.dropped(), 0);
        // A closed slot never keeps a producer waiting.
        slot.put(2);
        slot.close();
        slot.wait_empty().await;
    }

    #[tokio::test]
    async fn an_async_consumer_gets_the_value_or_sees_the_close() {
        let slot = Arc::new(Latest::<u32>::new());
        let task = {
            let slot = slot.clone();
            tokio::spawn(async move { (slot.take().await, slot.take().await) })
        };
        slot.put(3);
        // The task may or may not have taken 3 before the close; either way
        // it must see 3 and then the end, never hang.
        tokio::task::yield_now().await;
        slot.close();
        let (first, second) = task.await.unwrap();
        assert_eq!(first, Some(3));
        assert_eq!(second, None);
    }
}
