//! A trigger's in-flight window: how many of its deliveries may run at once.
//!
//! The window starts at the trigger's maximum. When an event fails for good with a
//! retriable error (its sink kept answering 5xx or 429, timing out or refusing
//! connections until the retries ran out), the window halves, down to a floor; every
//! delivered event widens it by one, back up to the maximum. So a sink that is down or
//! overloaded gets fewer concurrent requests (as its 503s ask), and its retries and dead
//! letters cannot take the CPU and connections that healthy triggers beside it need. A
//! permanent failure (a 4xx) says nothing about load and leaves the window alone.
//!
//! The window is a semaphore whose permits are handed back, forgotten (to narrow) or added
//! (to widen) as deliveries finish.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The narrowest window, as a fraction of the maximum: 1/16 (at least 1).
const FLOOR_DIVISOR: usize = 16;

/// An adaptive limit on a trigger's deliveries in flight.
pub(crate) struct Window {
    permits: Arc<Semaphore>,
    max: usize,
    min: usize,
    sizes: Mutex<Sizes>,
}

struct Sizes {
    /// The window the outcomes so far ask for.
    target: usize,
    /// Permits that exist now: free in the semaphore plus held by deliveries.
    issued: usize,
}

impl Window {
    /// A window of `max` deliveries (at least 1).
    pub(crate) fn new(max: usize) -> Self {
        let max = max.max(1);
        Window {
            permits: Arc::new(Semaphore::new(max)),
            max,
            min: (max / FLOOR_DIVISOR).max(1),
            sizes: Mutex::new(Sizes {
                target: max,
                issued: max,
            }),
        }
    }

    /// The semaphore deliveries take their permits from.
    pub(crate) fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// The current window.
    pub(crate) fn size(&self) -> usize {
        self.lock().target
    }

    /// The widest the window gets.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Returns a finished delivery's permit, and moves the window by its outcome: `Some(true)`
    /// delivered, `Some(false)` failed for good with a retriable error, `None` anything else.
    /// Returns the window's size.
    pub(crate) fn finish(&self, permit: OwnedSemaphorePermit, outcome: Option<bool>) -> usize {
        let mut sizes = self.lock();
        sizes.target = match outcome {
            Some(true) => (sizes.target + 1).min(self.max),
            Some(false) => (sizes.target / 2).max(self.min),
            None => sizes.target,
        };
        if sizes.issued > sizes.target {
            // Narrowing: this permit is not given back.
            permit.forget();
            sizes.issued -= 1;
        } else {
            drop(permit);
            if sizes.issued < sizes.target {
                self.permits.add_permits(sizes.target - sizes.issued);
                sizes.issued = sizes.target;
            }
        }
        sizes.target
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sizes> {
        // Every update leaves the sizes consistent, so a poisoned lock is still usable.
        self.sizes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn take(window: &Window, n: usize) -> Vec<OwnedSemaphorePermit> {
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(window.permits().clone().try_acquire_owned().unwrap());
        }
        held
    }

    #[tokio::test]
    async fn failures_halve_the_window_down_to_its_floor_and_deliveries_widen_it_by_one() {
        let window = Window::new(64);
        let mut held = take(&window, 64).await;
        assert_eq!(window.permits().available_permits(), 0);

        // Failed deliveries give nothing back until the window is below what is held.
        for expected in [32, 16, 8, 4, 4] {
            window.finish(held.pop().unwrap(), Some(false));
            assert_eq!(window.size(), expected);
        }
        assert_eq!(window.permits().available_permits(), 0);
        // 59 are still held; as they finish, only the window's 4 come back.
        while let Some(permit) = held.pop() {
            window.finish(permit, None);
        }
        assert_eq!(window.permits().available_permits(), 4);

        // Each delivered event widens the window by one, up to the maximum.
        let mut held = take(&window, 4).await;
        window.finish(held.pop().unwrap(), Some(true));
        assert_eq!(window.size(), 5);
        assert_eq!(window.permits().available_permits(), 2);
        for _ in 0..100 {
            let permit = window.permits().clone().try_acquire_owned().unwrap();
            window.finish(permit, Some(true));
        }
        assert_eq!(window.size(), 64);
        drop(held);
        assert_eq!(window.permits().available_permits(), 64);
    }

    #[tokio::test]
    async fn a_window_of_one_stays_one() {
        let window = Window::new(1);
        let permit = take(&window, 1).await.pop().unwrap();
        window.finish(permit, Some(false));
        assert_eq!(window.size(), 1);
        assert_eq!(window.permits().available_permits(), 1);
    }
}
