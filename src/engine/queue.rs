//! A stage's bounded queue: a crossbeam injector of request batches, plus a count of requests
//! that enforces the capacity.
//!
//! Hand-offs move whole batches (a `Vec` of up to [`BATCH`] requests): one injector push and one
//! steal per batch, not per request. Empty batches go back to the queue's reusable, where the next
//! producer picks one up, so a steady stream allocates nothing.
//!
//! Room is counted in requests. Producers reserve room with one `fetch_add` for a whole batch and
//! give back what did not fit; a worker releases a batch's room when it starts on the batch. The
//! count can briefly overshoot while a producer gives back an over-reservation, which can only
//! make a racing producer see the queue full a moment early, never let it grow past capacity.
//!
//! `drop_oldest` takes the oldest request out of the oldest batch; the rest of that batch is
//! still older than anything behind it, so it waits in a slot at the front of the queue
//! ([`StageQueue::steal_oldest`]), which workers look at before the injector: the queue keeps
//! its order, and the next request dropped is the next oldest.
//!
//! A producer that must wait for room (`block`, a source waiting for room) sleeps in
//! [`StageQueue::wait_for_room`] once it has spun and yielded a little; the worker that
//! releases room wakes it once there is room for several batches (a wake-up per batch would
//! cost a system call on each side per batch). The waiters' count shares the length's cache
//! line, so a release looks for waiters at no extra cost. The wake-up is the sleep protocol's
//! argument again (either the release sees the waiter, or the waiter sees the room), so it is
//! built on the crate's sync shim and has a loom model of its own (below).

use std::time::Duration;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

use super::Envelope;
use crate::clock::now_ns;
use crate::config::{BatchPlan, QueuePlan, StageId};
use crate::sync::{mutant, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering};

/// Most requests in one batch (a queue's `batch` may make them fewer).
pub(crate) const BATCH: usize = crate::config::ranges::MAX_BATCH;

/// Requests handed over together, all for one stage. The hop's facts (the stage, when the batch
/// was queued) travel with the batch, not in each envelope, so a request whose stages do not
/// read it crosses cores by pointer alone.
pub(crate) struct Batch {
    pub stage: StageId,
    pub enqueued_ns: u64,
    pub items: Vec<Box<Envelope>>,
}

impl Batch {
    /// This empty batch, holding the first `n` of `items`, queued at `now`. All of them go as
    /// the vector itself, this batch's empty one taking its place, so a whole hand-off copies
    /// nothing.
    #[inline]
    pub fn fill_from(mut self, items: &mut Vec<Box<Envelope>>, n: usize, now: u64) -> Batch {
        debug_assert!(self.items.is_empty());
        if n == items.len() {
            std::mem::swap(&mut self.items, items);
        } else {
            self.items.extend(items.drain(..n));
        }
        self.enqueued_ns = now;
        self
    }
}

/// Empty batches a queue keeps for reuse.
const REUSABLE_BATCHES: usize = 1024;

pub(crate) struct StageQueue {
    injector: Injector<Batch>,
    /// What is left of the oldest batch after `drop_oldest` took its oldest request: older
    /// than everything in the injector, so it is taken first. Only a full `drop_oldest` queue
    /// ever fills it; `front_held` lets the workers skip the lock when it is empty.
    front: Mutex<Option<Batch>>,
    front_held: AtomicBool,
    room: CachePadded<Room>,
    /// Where producers sleep until a release makes room.
    room_lock: Mutex<()>,
    room_freed: Condvar,
    /// Room that wakes sleeping producers.
    wake_room: usize,
    reusable: ArrayQueue<Vec<Box<Envelope>>>,
    stage: StageId,
    pub plan: QueuePlan,
    /// How many requests a hand-off to this queue carries at most: fixed, or moved by the
    /// batching controller (`super::batch_size`).
    batch: std::sync::atomic::AtomicUsize,
    counts_taken: bool,
}

/// Requests counted in the queue, the most counted since the last look, and how many
/// producers sleep waiting for room.
#[derive(Default)]
struct Room {
    len: AtomicUsize,
    high_water: AtomicUsize,
    waiters: AtomicUsize,
    /// Requests taken by workers, in all: counted only for an adaptive batch, whose
    /// controller measures the stage's throughput by it (on a line each release writes anyway).
    /// (A plain atomic, not the sync shim's: no protocol turns on it.)
    taken: std::sync::atomic::AtomicU64,
}

impl StageQueue {
    pub fn new(stage: StageId, plan: QueuePlan) -> Self {
        StageQueue {
            injector: Injector::new(),
            front: Mutex::new(None),
            front_held: AtomicBool::new(false),
            room: CachePadded::default(),
            room_lock: Mutex::new(()),
            room_freed: Condvar::new(),
            wake_room: (plan.capacity / 4).clamp(1, 8 * BATCH),
            reusable: ArrayQueue::new(REUSABLE_BATCHES),
            stage,
            batch: std::sync::atomic::AtomicUsize::new(match plan.batch {
                BatchPlan::Fixed(n) => n.clamp(1, BATCH),
                BatchPlan::Adaptive => BATCH,
            }),
            counts_taken: plan.batch == BatchPlan::Adaptive,
            plan,
        }
    }

    /// The most requests a hand-off to this queue carries.
    #[inline]
    pub fn batch(&self) -> usize {
        self.batch.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the batch size (the batching controller).
    pub fn set_batch(&self, n: usize) {
        self.batch.store(n.clamp(1, BATCH), std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests taken by workers so far (an adaptive batch's queue only; 0 otherwise).
    pub fn taken(&self) -> u64 {
        self.room.taken.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reserves room for up to `n` requests; returns how many fit.
    #[inline]
    pub fn reserve(&self, n: usize) -> usize {
        let before = self.room.len.fetch_add(n, Ordering::AcqRel);
        let fit = self.plan.capacity.saturating_sub(before).min(n);
        if fit < n {
            self.room.len.fetch_sub(n - fit, Ordering::AcqRel);
        }
        self.note_depth(before + fit);
        fit
    }

    /// Keeps the high-water mark. Not a read-modify-write: two producers racing may leave the
    /// lower of their depths, a stat off by a batch, never a stall.
    #[inline]
    fn note_depth(&self, depth: usize) {
        if depth > self.room.high_water.load(Ordering::Relaxed) {
            self.room.high_water.store(depth, Ordering::Relaxed);
        }
    }

    /// The most requests queued since the last call (at least as many as are queued now);
    /// starts the next reading from what is queued now. For the stats: a producer keeps the
    /// mark, so no sample can miss a full queue, however late the reader runs.
    pub fn take_high_water(&self) -> usize {
        let now = self.depth();
        self.room.high_water.swap(now, Ordering::Relaxed).max(now)
    }

    /// Requests there is room for now.
    #[inline]
    pub fn room(&self) -> usize {
        self.plan.capacity.saturating_sub(self.depth())
    }

    /// Reserves room for all `n` requests, or for none: returns whether they fit.
    #[inline]
    pub fn reserve_all(&self, n: usize) -> bool {
        let before = self.room.len.fetch_add(n, Ordering::AcqRel);
        if before + n <= self.plan.capacity {
            self.note_depth(before + n);
            return true;
        }
        self.room.len.fetch_sub(n, Ordering::AcqRel);
        false
    }

    /// Pushes a batch whose room was reserved.
    #[inline]
    pub fn push_reserved(&self, batch: Batch) {
        debug_assert!(!batch.items.is_empty() && batch.stage == self.stage);
        self.injector.push(batch);
    }

    /// Releases the room of a batch a worker starts on, waking any producer waiting for it.
    #[inline]
    pub fn release(&self, n: usize) {
        // SeqCst, with the waiter's count-then-look in `wait_for_room`: either this sees the
        // waiter, or the waiter sees the room.
        let len = self.room.len.fetch_sub(n, Ordering::SeqCst) - n;
        if self.counts_taken {
            self.room.taken.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if self.room.waiters.load(Ordering::SeqCst) != 0 && len + self.wake_room <= self.plan.capacity {
            self.wake_room_waiters();
        }
    }

    #[cold]
    fn wake_room_waiters(&self) {
        // Taking the lock orders this after a waiter's look at the room, or before it.
        let _guard = self.room_lock.lock().unwrap();
        self.room_freed.notify_all();
    }

    /// Sleeps until a release makes room for several batches or the clock reads `until`;
    /// returns at once when there is room. (A waiter that may give up for another reason,
    /// such as shutdown, which wakes nobody here, passes an `until` near enough to look again.)
    pub fn wait_for_room(&self, until: u64) {
        self.room.waiters.fetch_add(1, Ordering::SeqCst);
        let guard = self.room_lock.lock().unwrap();
        // A read-modify-write, not a load: it reads the latest count, so either it sees the
        // release that made room, or it comes before that release, which then reads from it
        // and so sees this waiter. (A plain load leans on SeqCst's single order alone, which
        // loom does not model: it found a lost wake-up there.)
        if mutant("no_room_recheck") || self.room.len.fetch_add(0, Ordering::SeqCst) >= self.plan.capacity {
            let _ = self.room_freed.wait_timeout(guard, Duration::from_nanos(until.saturating_sub(now_ns()))).unwrap();
        }
        self.room.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// An empty batch for this stage, to fill.
    #[inline]
    pub fn reusable(&self) -> Batch {
        let items = self.reusable.pop().unwrap_or_else(|| Vec::with_capacity(BATCH));
        Batch { stage: self.stage, enqueued_ns: 0, items }
    }

    /// A batch of the first `n` of `items`, queued at `now`, in one of this queue's reusable
    /// (see [`Batch::fill_from`]).
    #[inline]
    pub fn batch_from(&self, items: &mut Vec<Box<Envelope>>, n: usize, now: u64) -> Batch {
        self.reusable().fill_from(items, n, now)
    }

    /// Gives back an emptied batch.
    #[inline]
    pub fn give_back(&self, batch: Batch) {
        debug_assert!(batch.items.is_empty());
        let _ = self.reusable.push(batch.items);
    }

    /// Moves a few batches into `local` and pops one of them (the front slot's first, if held).
    #[inline]
    pub fn steal_into(&self, local: &Worker<Batch>) -> Option<Batch> {
        if self.front_held.load(Ordering::Acquire) {
            if let Some(batch) = self.take_front() {
                return Some(batch);
            }
        }
        loop {
            match self.injector.steal_batch_with_limit_and_pop(local, 4) {
                Steal::Success(batch) => return Some(batch),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    #[cold]
    fn take_front(&self) -> Option<Batch> {
        let mut front = self.front.lock().unwrap();
        self.front_held.store(false, Ordering::Release);
        front.take()
    }

    /// Takes the oldest queued request (for `drop_oldest`), keeping its room reserved for the
    /// caller's new one. The rest of its batch waits in the front slot, ahead of the injector,
    /// so the queue keeps its order.
    pub fn steal_oldest(&self) -> Option<Box<Envelope>> {
        let mut front = self.front.lock().unwrap();
        let mut batch = match front.take() {
            Some(batch) => batch,
            None => loop {
                match self.injector.steal() {
                    Steal::Success(batch) => break batch,
                    Steal::Empty => return None,
                    Steal::Retry => continue,
                }
            },
        };
        let oldest = batch.items.remove(0);
        if batch.items.is_empty() {
            self.front_held.store(false, Ordering::Release);
            self.give_back(batch);
        } else {
            *front = Some(batch);
            self.front_held.store(true, Ordering::Release);
        }
        Some(oldest)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.injector.is_empty() && !self.front_held.load(Ordering::Acquire)
    }

    /// Requests queued and not yet started (reserved room included).
    pub fn depth(&self) -> usize {
        self.room.len.load(Ordering::Relaxed)
    }
}

/// Steals batches from a sibling worker's local deque.
#[inline]
pub(crate) fn steal_from(stealer: &Stealer<Batch>, local: &Worker<Batch>) -> Option<Batch> {
    loop {
        match stealer.steal_batch_and_pop(local) {
            Steal::Success(batch) => return Some(batch),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}

#[cfg(all(test, seda_loom))]
mod loom_model {
    //! The room wake-up: a producer waiting for room in a full queue ([`StageQueue::wait_for_room`],
    //! as `push_as_room_allows` calls it) and the worker releasing room as it starts a batch
    //! ([`StageQueue::release`]). In loom a wait never times out, so a lost wake-up is a
    //! deadlock, not the real waiter's bounded sleep.

    use super::*;
    use crate::config::WhenFull;
    use loom::sync::Arc;
    use loom::thread;

    fn full_queue(capacity: usize) -> Arc<StageQueue> {
        let q = StageQueue::new(
            0,
            QueuePlan {
                capacity,
                when_full: WhenFull::Block,
                block_timeout: Duration::ZERO,
                batch: BatchPlan::Fixed(BATCH),
            },
        );
        assert_eq!(q.reserve(capacity), capacity);
        Arc::new(q)
    }

    /// A producer's wait for one place, as `push_as_room_allows` does it once done spinning.
    fn wait_then_reserve_one(q: &StageQueue) {
        while q.reserve(1) == 0 {
            q.wait_for_room(u64::MAX);
        }
    }

    #[test]
    fn a_producer_waiting_for_room_is_woken_by_the_release_that_makes_it() {
        loom::model(|| {
            // Capacity 4: a release of one place is enough to wake a waiter.
            let q = full_queue(4);
            let p = q.clone();
            let producer = thread::spawn(move || wait_then_reserve_one(&p));
            q.release(1);
            producer.join().unwrap();
            assert_eq!(q.depth(), 4);
        });
    }

    #[test]
    fn two_producers_waiting_for_room_are_both_woken_by_two_releases() {
        loom::model(|| {
            let q = full_queue(4);
            let producers: Vec<_> = (0..2)
                .map(|_| {
                    let p = q.clone();
                    thread::spawn(move || wait_then_reserve_one(&p))
                })
                .collect();
            q.release(1);
            q.release(1);
            for p in producers {
                p.join().unwrap();
            }
            assert_eq!(q.depth(), 4);
        });
    }
}

#[cfg(all(test, not(seda_loom)))]
mod tests {
    use super::*;
    use crate::config::WhenFull;
    use std::time::Instant;

    fn queue(capacity: usize) -> StageQueue {
        StageQueue::new(
            0,
            QueuePlan {
                capacity,
                when_full: WhenFull::Block,
                block_timeout: Duration::ZERO,
                batch: BatchPlan::Fixed(BATCH),
            },
        )
    }

    #[test]
    fn a_producer_waiting_for_room_is_woken_by_the_release_that_makes_it() {
        let q = queue(64);
        assert_eq!(q.reserve(64), 64);
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                // Released once the producer has counted itself a waiter (not after a sleep that
                // hopes it has): the release must then wake it, whether it is asleep yet or not.
                // Every interleaving is the loom model's (`loom_model` above).
                while q.room.waiters.load(Ordering::SeqCst) == 0 {
                    std::thread::yield_now();
                }
                // A quarter of the capacity: enough room to wake a waiter.
                q.release(16);
            });
            // Without the wake-up this sleeps the whole minute.
            q.wait_for_room(now_ns() + 60_000_000_000);
        });
        assert_eq!(q.room(), 16);
        assert!(started.elapsed() < Duration::from_secs(30), "woken by the release: {:?}", started.elapsed());
    }

    #[test]
    fn the_high_water_mark_is_the_most_queued_since_the_last_look() {
        let q = queue(64);
        assert_eq!(q.reserve(40), 40);
        q.release(30);
        assert_eq!(q.reserve(4), 4);
        assert_eq!(q.take_high_water(), 40, "the peak, not the 14 queued now");
        assert_eq!(q.take_high_water(), 14, "the next reading starts from what is queued");
        assert!(q.reserve_all(50));
        assert!(!q.reserve_all(1), "full: nothing reserved, the mark stays");
        assert_eq!(q.take_high_water(), 64);
    }

    #[test]
    fn a_wait_for_room_returns_at_once_when_there_is_room_or_at_its_deadline() {
        let q = queue(64);
        assert_eq!(q.reserve(63), 63);
        q.wait_for_room(u64::MAX);
        assert_eq!(q.reserve(1), 1);
        let until = now_ns() + 5_000_000;
        q.wait_for_room(until);
        assert!(now_ns() >= until);
    }
}
