//! The synchronisation primitives of our own protocols, swapped for loom's when model checking
//! (`RUSTFLAGS="--cfg seda_loom"`), so that loom explores every interleaving of the real code.
//!
//! Also the switch for the models' mutants: [`mutant`] says whether the model run asked for a
//! protocol with one of its steps taken out (`SEDA_MUTANT=no_recheck`, ...), so that CI can
//! check that the models catch each such mistake (`.ci/run`). It exists only in loom builds;
//! in every other build it is a constant `false` and the code it guards is the code that runs.
//! (A runtime switch rather than one `--cfg` per mutant: a change of `RUSTFLAGS` rebuilds every
//! dependency, minutes per mutant on a small machine, where one loom build serves them all.)

#[cfg(seda_loom)]
pub(crate) use loom::thread_local;
#[cfg(not(seda_loom))]
pub(crate) use std::thread_local;

#[cfg(seda_loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    Condvar, Mutex,
};
#[cfg(not(seda_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    Condvar, Mutex,
};

/// Whether this loom run is of the mutant `name`.
///
/// The mutants the models must catch, each named for the step it takes out:
///
/// - `no_recheck`: a worker registered as a sleeper does not look for work again before it
///   sleeps ([`crate::engine::Sleep`], step 2);
/// - `no_producer_fence`: a producer does not fence between its push and its look at the
///   sleepers ([`crate::engine::Sleep::wake_one`], step 1);
/// - `no_poller_wake`: waking a worker that sleeps in its poller sets its token but does not
///   call its poller's waker;
/// - `no_room_recheck`: a producer waiting for room in a full queue does not look at the room
///   again after counting itself as a waiter;
/// - `idle_misses_queues`: a worker's last look before sleeping checks its siblings' deques
///   but not the pool's stage queues.
#[cfg(seda_loom)]
pub(crate) fn mutant(name: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| std::env::var("SEDA_MUTANT").ok()).as_deref() == Some(name)
}

/// Outside loom builds there are no mutants.
#[cfg(not(seda_loom))]
#[inline(always)]
pub(crate) const fn mutant(_name: &str) -> bool {
    false
}
