//! The synchronisation primitives of our own protocols, swapped for loom's when model checking
//! (`RUSTFLAGS="--cfg loom"`), so that loom explores every interleaving of the real code.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    Condvar, Mutex,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    Condvar, Mutex,
};
