//! Lock helpers shared by the crate.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering it when poisoned: every value the crate guards (counters, maps of calls and
/// sessions) stays valid when a holder panics, and a panicking skill must not take the bridge down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
