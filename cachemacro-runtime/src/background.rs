//! Background work of a cache (refreshes ahead of expiry, reloads that went on past a soft
//! timeout), counted so that [`Cache::shutdown`](crate::Cache::shutdown) can wait for it,
//! and abandoned when that wait passes its bound.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// The tasks a cache runs in the background.
#[derive(Default)]
pub(crate) struct Background {
    running: AtomicUsize,
    idle: Notify,
    /// Set by [`abandon`](Background::abandon): tasks drop their work where it stands.
    abandoned: AtomicBool,
    abandon: Notify,
}

/// Waits until `done()` holds, woken by `notify` when it may have changed.
async fn wait_until(notify: &Notify, done: impl Fn() -> bool) {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        // Registered before the check: a change in between still wakes us.
        notified.as_mut().enable();
        if done() {
            return;
        }
        notified.await;
    }
}

/// Aborts a task when dropped: a body spawned for a load does not outlive the load.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One running task; dropped when it ends, is aborted or panics.
struct Running(Arc<Background>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Background {
    /// Runs `work` in a task of its own, counted until it ends.
    pub(crate) fn spawn<F>(self: &Arc<Self>, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.abandoned.load(Ordering::Acquire) {
            return;
        }
        self.running.fetch_add(1, Ordering::AcqRel);
        let running = Running(Arc::clone(self));
        let background = Arc::clone(self);
        tokio::spawn(async move {
            let _running = running;
            tokio::select! {
                // Checked first: abandoned work is not polled again, so it stores nothing.
                biased;
                () = background.until_abandoned() => {}
                () = work => {}
            }
        });
    }

    /// Ends every task where it stands (dropping its work: a load that has not stored yet
    /// stores nothing) and refuses new ones. Returns how many were running.
    pub(crate) fn abandon(&self) -> usize {
        self.abandoned.store(true, Ordering::Release);
        self.abandon.notify_waiters();
        self.running.load(Ordering::Acquire)
    }

    async fn until_abandoned(&self) {
        wait_until(&self.abandon, || self.abandoned.load(Ordering::Acquire)).await;
    }

    /// Waits until no task runs.
    pub(crate) async fn idle(&self) {
        wait_until(&self.idle, || self.running.load(Ordering::Acquire) == 0).await;
    }

    /// How many tasks run now.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_every_task_even_a_panicking_one() {
        let background = Arc::new(Background::default());
        background.idle().await;
        let done = Arc::new(AtomicUsize::new(0));
        for ms in [30, 60] {
            let done = Arc::clone(&done);
            background.spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        background.spawn(async { panic!("a failing refresh") });
        assert!(background.running() >= 2);
        background.idle().await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
        assert_eq!(background.running(), 0);
    }
}
