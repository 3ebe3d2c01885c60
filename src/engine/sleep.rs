//! Sleep and wake for one pool's workers. No wake-up is ever lost.
//!
//! A worker that found no work after spinning and yielding goes to sleep; a producer that made
//! one of the pool's queues non-empty wakes one sleeper. The protocol is Dekker's:
//!
//! Worker (`sleep`):
//! 1. under the `idle` lock, push itself on the idle list and store the list's length in
//!    `sleepers` (SeqCst);
//! 2. SeqCst fence, then look at the queues again (`has_work`); if there is work (or the engine
//!    is stopping), take itself off the idle list and return;
//! 3. otherwise park until its token is set, consuming it.
//!
//! Producer (`wake_one`), after pushing:
//! 1. SeqCst fence, then load `sleepers`; zero means nobody sleeps: done, with no lock taken;
//! 2. otherwise pop a sleeper off the idle list under the lock and set its token.
//!
//! Either the worker's step 2 sees the producer's push, or the producer's step 1 sees the
//! worker's registration (the fences order each side's store before its load). A token set
//! before the worker parks makes its park return at once, so a wake between steps 2 and 3 is
//! not lost either. A stale token only causes one spurious wake-up, after which the worker looks
//! for work and goes through the protocol again.
//!
//! A worker that sleeps in its poller is still listed while its poll handles what woke it, and
//! that is where an HTTP reactor admits the requests it read: it is its own producer. Popping
//! itself there, it sets no token and calls no waker (a futex and a wake-up of its own poller
//! for every request at low load): it is awake, and looks for work as soon as its poll returns.
//!
//! `loom` checks this protocol, for a worker that parks and for one that sleeps in its poller
//! (`loom_model` below; `worker.rs` has the model of a worker's idle decision), and finds the
//! lost wake-up when step 2's look, the producer's fence or a poller's waker is taken out
//! (the mutants of `crate::sync::mutant`, which `.ci/run` checks are caught):
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg seda_loom" CARGO_TARGET_DIR=target/loom cargo test
//! --profile loom --lib loom_model` (see docs/design.md, "The models").

use std::cell::Cell;

use crate::sync::{fence, mutant, thread_local, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering};

thread_local! {
    /// The worker this thread is while it turns its poller in [`Sleep::sleep_polling`]: the
    /// address of its pool's `Sleep` and its index ([`NOT_POLLING`] otherwise).
    // Not a `const` initialiser: loom's `thread_local!`, which the models use, takes none.
    #[allow(clippy::missing_const_for_thread_local)]
    static POLLING: Cell<(usize, usize)> = Cell::new(NOT_POLLING);
}

const NOT_POLLING: (usize, usize) = (0, usize::MAX);

pub struct Sleep {
    /// How many workers are on the idle list: lets producers skip the lock when none sleeps.
    sleepers: AtomicUsize,
    idle: Mutex<Vec<usize>>,
    tokens: Vec<Token>,
    /// Per worker, for one that sleeps in its poller ([`Sleep::sleep_polling`]): what wakes it.
    wakers: Vec<Option<Waker>>,
}

/// Wakes a worker blocked in its poller.
pub type Waker = std::sync::Arc<dyn Fn() + Send + Sync>;

/// A one-bit semaphore a worker parks on.
struct Token {
    set: Mutex<bool>,
    cond: Condvar,
    /// Mirrors `set` for a lock-free look (tests, stats).
    parked: AtomicBool,
}

impl Sleep {
    pub fn new(workers: usize) -> Self {
        Sleep::with_wakers((0..workers).map(|_| None).collect())
    }

    /// A pool whose worker `i` sleeps in its poller when `wakers[i]` is given.
    pub fn with_wakers(wakers: Vec<Option<Waker>>) -> Self {
        let workers = wakers.len();
        Sleep {
            wakers,
            sleepers: AtomicUsize::new(0),
            idle: Mutex::new(Vec::with_capacity(workers)),
            tokens: (0..workers)
                .map(|_| Token { set: Mutex::new(false), cond: Condvar::new(), parked: AtomicBool::new(false) })
                .collect(),
        }
    }

    /// Worker `me` sleeps unless `has_work` says otherwise after registering. Returns when
    /// woken (or at once, if there was work).
    pub fn sleep(&self, me: usize, has_work: impl Fn() -> bool) {
        if self.register(me, has_work) {
            self.tokens[me].wait();
        }
    }

    /// Steps 1 and 2: puts worker `me` on the idle list, then looks for work again. Returns
    /// whether it is to sleep (false: there was work, and it is off the list again).
    fn register(&self, me: usize, has_work: impl Fn() -> bool) -> bool {
        {
            let mut idle = self.idle.lock().unwrap();
            idle.push(me);
            self.sleepers.store(idle.len(), Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        if !mutant("no_recheck") && has_work() {
            self.unregister(me);
            return false;
        }
        true
    }

    /// [`Sleep::sleep`] for a worker that sleeps in its poller: `poll(woken)` blocks there
    /// (until its waker is called, its own I/O is ready, or its own deadline), or, when `woken`
    /// says a wake-up is already due, only looks without blocking.
    pub fn sleep_polling(&self, me: usize, has_work: impl Fn() -> bool, poll: impl FnOnce(bool)) {
        if !self.register(me, has_work) {
            return;
        }
        let woken = self.tokens[me].take();
        POLLING.with(|p| p.set((self as *const Sleep as usize, me)));
        poll(woken);
        POLLING.with(|p| p.set(NOT_POLLING));
        // Woken by its own I/O, it may still be listed: a producer would wake it for nothing.
        // (A producer that pops it after this leaves a token: one spurious wake-up later.)
        if !self.tokens[me].take() {
            self.unregister(me);
        }
    }

    /// Wakes one sleeping worker, if any sleeps. Call after making a queue non-empty.
    #[inline]
    pub fn wake_one(&self) {
        if !mutant("no_producer_fence") {
            fence(Ordering::SeqCst);
        }
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            self.wake_one_slow();
        }
    }

    #[cold]
    fn wake_one_slow(&self) {
        let woken = {
            let mut idle = self.idle.lock().unwrap();
            let woken = idle.pop();
            self.sleepers.store(idle.len(), Ordering::SeqCst);
            woken
        };
        if let Some(w) = woken.filter(|&w| !self.polling_here(w)) {
            self.notify(w);
        }
    }

    /// Whether this thread is worker `w` of this pool, inside its poll: awake, then.
    fn polling_here(&self, w: usize) -> bool {
        POLLING.with(|p| p.get()) == (self as *const Sleep as usize, w)
    }

    fn notify(&self, w: usize) {
        self.tokens[w].notify();
        if mutant("no_poller_wake") {
            return;
        }
        if let Some(waker) = &self.wakers[w] {
            waker();
        }
    }

    /// Wakes every worker: for shutdown.
    pub fn wake_all(&self) {
        let woken: Vec<usize> = {
            let mut idle = self.idle.lock().unwrap();
            self.sleepers.store(0, Ordering::SeqCst);
            idle.drain(..).collect()
        };
        for w in woken {
            self.notify(w);
        }
    }

    /// How many workers sleep now.
    pub fn sleepers(&self) -> usize {
        self.sleepers.load(Ordering::SeqCst)
    }

    fn unregister(&self, me: usize) {
        let mut idle = self.idle.lock().unwrap();
        // Absent means a producer popped us and set our token: the next park returns at once.
        if let Some(at) = idle.iter().position(|&w| w == me) {
            idle.swap_remove(at);
            self.sleepers.store(idle.len(), Ordering::SeqCst);
        }
    }
}

impl Token {
    fn wait(&self) {
        let mut set = self.set.lock().unwrap();
        self.parked.store(true, Ordering::Relaxed);
        while !*set {
            set = self.cond.wait(set).unwrap();
        }
        *set = false;
        self.parked.store(false, Ordering::Relaxed);
    }

    fn notify(&self) {
        *self.set.lock().unwrap() = true;
        self.cond.notify_one();
    }

    /// Consumes the token if set, without waiting.
    fn take(&self) -> bool {
        std::mem::take(&mut *self.set.lock().unwrap())
    }
}

#[cfg(all(test, seda_loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use loom::thread;

    /// A queue reduced to its length, with the same release/acquire a real push and pop have.
    struct Queue(AtomicUsize);

    impl Queue {
        fn push(&self) {
            self.0.fetch_add(1, Ordering::Release);
        }
        fn try_pop(&self) -> bool {
            let mut n = self.0.load(Ordering::Acquire);
            while n > 0 {
                match self.0.compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return true,
                    Err(now) => n = now,
                }
            }
            false
        }
        fn has_work(&self) -> bool {
            self.0.load(Ordering::Acquire) > 0
        }
    }

    /// The worker loop's shape: take work until `items` are done, sleeping when none is seen.
    fn worker(sleep: &Sleep, queue: &Queue, done: &AtomicUsize, me: usize, items: usize) {
        while done.load(Ordering::Acquire) < items {
            if queue.try_pop() {
                done.fetch_add(1, Ordering::AcqRel);
                continue;
            }
            if done.load(Ordering::Acquire) >= items {
                break;
            }
            sleep.sleep(me, || queue.has_work() || done.load(Ordering::Acquire) >= items);
        }
        // Whoever finishes the last item wakes the rest so they can see that all is done.
        sleep.wake_all();
    }

    #[test]
    fn one_producer_one_worker_never_loses_a_wake_up() {
        loom::model(|| {
            let sleep = Arc::new(Sleep::new(1));
            let queue = Arc::new(Queue(AtomicUsize::new(0)));
            let done = Arc::new(AtomicUsize::new(0));
            let (s, q, d) = (sleep.clone(), queue.clone(), done.clone());
            let w = thread::spawn(move || worker(&s, &q, &d, 0, 1));
            queue.push();
            sleep.wake_one();
            w.join().unwrap();
            assert_eq!(done.load(Ordering::Acquire), 1);
        });
    }

    /// A poller reduced to what the protocol sees of it: readiness that its waker (or its own
    /// I/O) sets and a turn consumes, blocking until it is set unless told only to look. (A
    /// real turn may also end at its own deadline; never ending is the harder case.)
    #[derive(Default)]
    struct Poll {
        ready: Mutex<bool>,
        cond: Condvar,
    }

    impl Poll {
        fn ready(&self) {
            *self.ready.lock().unwrap() = true;
            self.cond.notify_one();
        }
        /// Returns whether it found its readiness set.
        fn turn(&self, block: bool) -> bool {
            let mut ready = self.ready.lock().unwrap();
            while block && !*ready {
                ready = self.cond.wait(ready).unwrap();
            }
            std::mem::take(&mut *ready)
        }
    }

    /// A pool of one worker that sleeps in `poll`, as a worker running the HTTP reactor or
    /// the generator does.
    fn polling_pool(poll: &Arc<Poll>) -> Sleep {
        let p = poll.clone();
        Sleep::with_wakers(vec![Some(std::sync::Arc::new(move || p.ready()))])
    }

    /// The worker loop's shape for a worker with a poller: as [`worker`], sleeping in its
    /// poller through [`Sleep::sleep_polling`] as `worker.rs` does (a turn that only looks when
    /// the token says a wake-up is due, else one that blocks).
    fn polling_worker(sleep: &Sleep, queue: &Queue, done: &AtomicUsize, poll: &Poll, items: usize) {
        polling_worker_turning(sleep, queue, done, items, |woken| {
            poll.turn(!woken);
        });
    }

    /// [`polling_worker`] with its own turn, given whether a wake-up is due.
    fn polling_worker_turning(sleep: &Sleep, queue: &Queue, done: &AtomicUsize, items: usize, turn: impl Fn(bool)) {
        while done.load(Ordering::Acquire) < items {
            if queue.try_pop() {
                done.fetch_add(1, Ordering::AcqRel);
                continue;
            }
            if done.load(Ordering::Acquire) >= items {
                break;
            }
            let has_work = || queue.has_work() || done.load(Ordering::Acquire) >= items;
            sleep.sleep_polling(0, has_work, &turn);
        }
        sleep.wake_all();
    }

    #[test]
    fn a_worker_that_admits_work_in_its_own_poll_runs_it() {
        // As a reactor does: its I/O wakes it, and its turn queues what it read and wakes the
        // pool, popping itself (it is still listed): no token, no waker, and still done.
        loom::model(|| {
            let poll = Arc::new(Poll::default());
            let sleep = Arc::new(polling_pool(&poll));
            let queue = Arc::new(Queue(AtomicUsize::new(0)));
            let done = Arc::new(AtomicUsize::new(0));
            let (s, q, d, p) = (sleep.clone(), queue.clone(), done.clone(), poll.clone());
            let w = thread::spawn(move || {
                polling_worker_turning(&s, &q, &d, 1, |woken| {
                    if p.turn(!woken) {
                        q.push();
                        s.wake_one();
                    }
                })
            });
            let p = poll.clone();
            let io = thread::spawn(move || p.ready());
            io.join().unwrap();
            w.join().unwrap();
            assert_eq!(done.load(Ordering::Acquire), 1);
        });
    }

    #[test]
    fn a_worker_sleeping_in_its_poller_never_loses_a_wake_up() {
        loom::model(|| {
            let poll = Arc::new(Poll::default());
            let sleep = Arc::new(polling_pool(&poll));
            let queue = Arc::new(Queue(AtomicUsize::new(0)));
            let done = Arc::new(AtomicUsize::new(0));
            let (s, q, d, p) = (sleep.clone(), queue.clone(), done.clone(), poll.clone());
            let w = thread::spawn(move || polling_worker(&s, &q, &d, &p, 1));
            queue.push();
            sleep.wake_one();
            w.join().unwrap();
            assert_eq!(done.load(Ordering::Acquire), 1);
        });
    }

    #[test]
    fn a_worker_woken_by_its_own_io_stays_wakeable_by_producers() {
        // Its own I/O wakes it while it is listed as a sleeper (its token not set): it must
        // come off the list, and a producer's later wake-up, whether it finds it listed or
        // not, must still reach it.
        loom::model(|| {
            let poll = Arc::new(Poll::default());
            let sleep = Arc::new(polling_pool(&poll));
            let queue = Arc::new(Queue(AtomicUsize::new(0)));
            let done = Arc::new(AtomicUsize::new(0));
            let (s, q, d, p) = (sleep.clone(), queue.clone(), done.clone(), poll.clone());
            let w = thread::spawn(move || polling_worker(&s, &q, &d, &p, 1));
            let p = poll.clone();
            let io = thread::spawn(move || p.ready());
            queue.push();
            sleep.wake_one();
            io.join().unwrap();
            w.join().unwrap();
            assert_eq!(done.load(Ordering::Acquire), 1);
        });
    }

    #[test]
    fn two_pushes_two_workers_never_lose_a_wake_up() {
        loom::model(|| {
            let sleep = Arc::new(Sleep::new(2));
            let queue = Arc::new(Queue(AtomicUsize::new(0)));
            let done = Arc::new(AtomicUsize::new(0));
            let workers: Vec<_> = (0..2)
                .map(|me| {
                    let (s, q, d) = (sleep.clone(), queue.clone(), done.clone());
                    thread::spawn(move || worker(&s, &q, &d, me, 2))
                })
                .collect();
            for _ in 0..2 {
                queue.push();
                sleep.wake_one();
            }
            for w in workers {
                w.join().unwrap();
            }
            assert_eq!(done.load(Ordering::Acquire), 2);
        });
    }
}

#[cfg(all(test, not(seda_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sleep_returns_at_once_when_work_appeared() {
        let sleep = Sleep::new(1);
        sleep.sleep(0, || true);
        assert_eq!(sleep.sleepers(), 0);
    }

    #[test]
    fn wake_one_wakes_a_parked_worker() {
        let sleep = Arc::new(Sleep::new(1));
        let s = sleep.clone();
        let t = std::thread::spawn(move || s.sleep(0, || false));
        while !sleep.tokens[0].parked.load(Ordering::Relaxed) {
            std::thread::yield_now();
        }
        assert_eq!(sleep.sleepers(), 1);
        sleep.wake_one();
        t.join().unwrap();
        assert_eq!(sleep.sleepers(), 0);
    }

    #[test]
    fn a_worker_waking_its_pool_from_inside_its_own_poll_does_not_wake_itself() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let sleep = Sleep::with_wakers(vec![Some(Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }))]);
        sleep.sleep_polling(
            0,
            || false,
            |_| {
                assert_eq!(sleep.sleepers(), 1);
                sleep.wake_one();
            },
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(sleep.sleepers(), 0);
        assert!(!sleep.tokens[0].take());
        // Outside its poll, the same thread's wake-up is a real one.
        assert!(sleep.register(0, || false));
        sleep.wake_one();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(sleep.tokens[0].take());
    }
}
