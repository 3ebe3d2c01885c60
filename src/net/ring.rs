//! The io_uring layer both completion users share: the HTTP server's backend
//! (`backend::uring`) and the load generator's sending threads (`loadgen::http::ring_driver`).
//!
//! What is here is what any user of a ring needs and nothing about connections:
//!
//! 1. [`Ring::new`]: a ring set up so completions are posted when its own thread next enters
//!    the kernel, never by interrupting it, with a ring of provided buffers ([`BufferRing`])
//!    that receives complete into. Where the kernel allows (Linux 6.1), the ring is for a single
//!    thread with its completion work deferred (`SINGLE_ISSUER`, `DEFER_TASKRUN`): the kernel
//!    does that work only when the ring's thread asks for completions, in a batch, instead of
//!    on the way back from any system call. The ring starts disabled and is enabled by the first
//!    thread that enters the kernel with it ([`Ring::enter`], [`Ring::submit`]), so a ring made
//!    on one thread and handed to another (an HTTP worker's) belongs to the one that uses it.
//! 2. [`user_data`] and [`parse`]: each operation carries its kind, slot and the slot's
//!    generation, so a completion for something that has gone (the slot reused since) is
//!    recognised and dropped.
//! 3. [`Ring::push`] queues an operation (submitting first if the queue is full);
//!    [`Ring::enter`] submits what is queued and waits for a completion up to a timeout, or,
//!    for a zero timeout, enters the kernel only if completions wait there to be posted.
//! 4. [`WakeFd`]: an eventfd another thread writes to end a wait.
//!
//! What the user keeps: which operations it has in flight (and so what dropping its ring must
//! wait for), and the buffers its operations point to, which must stay put until their last
//! completion.

#![deny(unsafe_op_in_unsafe_fn)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::types::{BufRingEntry, Fd, SubmitArgs, Timespec};
use io_uring::{opcode, squeue, IoUring};

/// Provided buffers for receives: how many, and how large each.
pub(crate) const BUFFERS: u16 = 512;
pub(crate) const BUFFER_SIZE: usize = 8 * 1024;
pub(crate) const BUFFER_GROUP: u16 = 0;

/// An operation's `user_data`: its kind (a user's own numbering, not 0) in the top byte, then
/// 16 bits of its slot's generation, then the slot.
pub(crate) fn user_data(kind: u8, slot: usize, generation: u32) -> u64 {
    u64::from(kind) << 56 | u64::from(generation & 0xffff) << 32 | (slot as u64 & 0xffff_ffff)
}

/// The kind, slot and generation in a `user_data` made by [`user_data`].
pub(crate) fn parse(user_data: u64) -> (u8, usize, u32) {
    ((user_data >> 56) as u8, (user_data & 0xffff_ffff) as usize, ((user_data >> 32) & 0xffff) as u32)
}

/// Whether this kernel gives a ring with what our users need (io_uring not disabled, provided
/// buffer rings: Linux 5.19).
pub(crate) fn available() -> io::Result<()> {
    let ring = IoUring::builder().setup_coop_taskrun().setup_taskrun_flag().build(8)?;
    let probe = BufferRing::new(&ring)?;
    let _ = ring.submitter().unregister_buf_ring(BUFFER_GROUP);
    drop(probe);
    Ok(())
}

/// A ring and its provided buffers, used by one thread.
pub(crate) struct Ring {
    pub ring: IoUring,
    pub buffers: BufferRing,
    /// Made disabled (for a single thread), and not yet enabled by the thread that uses it.
    disabled: bool,
    /// The kernel can make a wait gather completions for a while ([`Ring::enter_gathering`]:
    /// Linux 6.12).
    can_gather: bool,
}

/// How a sleeping wait gathers completions, so that one wake-up serves several: it returns
/// once `completions` are there, or, after `patience`, as soon as there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gather {
    pub completions: u32,
    pub patience: Duration,
}

impl Ring {
    /// A ring with `entries` submission entries (the completion queue is four times as long),
    /// or why this kernel cannot give one.
    pub fn new(entries: u32) -> io::Result<Ring> {
        let build = |single_thread: bool| {
            let mut builder = IoUring::builder();
            builder
                .setup_cqsize(entries * 4)
                // Completions are posted when this thread next enters the kernel, not by
                // interrupting it; the flag says when there are some waiting to be posted.
                .setup_coop_taskrun()
                .setup_taskrun_flag();
            if single_thread {
                builder.setup_single_issuer().setup_defer_taskrun().setup_r_disabled();
            }
            builder.build(entries)
        };
        // Before Linux 6.1 the kernel refuses the single-thread flags: the ring goes without.
        let (ring, disabled) = match build(true) {
            Ok(ring) => (ring, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (build(false)?, false),
            Err(e) => return Err(e),
        };
        let buffers = BufferRing::new(&ring)?;
        let can_gather = ring.params().is_feature_min_timeout();
        Ok(Ring { ring, buffers, disabled, can_gather })
    }

    /// Makes the calling thread the ring's own, the first time it enters the kernel with it.
    #[inline]
    fn enable(&mut self) {
        if self.disabled {
            self.disabled = false;
            if let Err(e) = self.ring.submitter().register_enable_rings() {
                panic!("cannot enable an io_uring: {e}");
            }
        }
    }

    /// Queues `entry`, submitting what is queued first if the queue is full.
    ///
    /// # Safety
    /// Every buffer `entry` points to stays where it is until its last completion.
    pub unsafe fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: the caller keeps what the entry points to alive (this function's contract).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                break;
            }
            self.submit();
        }
    }

    /// For a non-zero `timeout`, submits what is queued and waits up to it for a completion
    /// (not at all if some are there already); for zero, enters the kernel only if completions
    /// wait there to be posted. True if it entered the kernel (so nothing queued is left).
    pub fn enter(&mut self, timeout: Duration) -> bool {
        self.enter_gathering(timeout, None)
    }

    /// [`Ring::enter`], but a wait that sleeps gathers completions as `gather` says, where the
    /// kernel can (else it returns at the first, as [`Ring::enter`] does).
    pub fn enter_gathering(&mut self, timeout: Duration, gather: Option<Gather>) -> bool {
        let ready = !self.ring.completion().is_empty();
        let (queued, must_enter) = {
            let submission = self.ring.submission();
            (!submission.is_empty(), submission.taskrun() || submission.cq_overflow())
        };
        let waits = !timeout.is_zero() && !ready;
        if !(waits || must_enter || (queued && !timeout.is_zero())) {
            return false;
        }
        self.enable();
        let result = if waits {
            let timespec = Timespec::from(timeout);
            let args = SubmitArgs::new().timespec(&timespec);
            match gather.filter(|g| self.can_gather && g.completions > 1 && g.patience < timeout) {
                Some(g) => {
                    let patience_us = g.patience.as_micros().min(u128::from(u32::MAX)) as u32;
                    self.ring.submitter().submit_with_args(g.completions as usize, &args.min_wait_usec(patience_us))
                }
                None => self.ring.submitter().submit_with_args(1, &args),
            }
        } else {
            self.ring.submit()
        };
        match result {
            Ok(_) => {}
            // Out of time, interrupted, or completions to reap first: all normal.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {}
            Err(e) => panic!("io_uring_enter failed: {e}"),
        }
        true
    }

    /// Submits what is queued, without waiting.
    pub fn submit(&mut self) {
        self.enable();
        if let Err(e) = self.ring.submit() {
            assert!(matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)), "{e}");
        }
    }

    /// Whether nothing is queued for submission.
    pub fn nothing_queued(&mut self) -> bool {
        self.ring.submission().is_empty()
    }
}

/// An eventfd another thread writes to end a [`Ring::enter`]: its read is kept in flight.
pub(crate) struct WakeFd {
    fd: Arc<OwnedFd>,
    /// Where the read puts its count: the kernel writes it while the read is in flight.
    count: Box<u64>,
}

impl WakeFd {
    pub fn new() -> io::Result<WakeFd> {
        // SAFETY: eventfd takes no pointers; the descriptor it returns is ours alone.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(WakeFd { fd: Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }), count: Box::new(0) })
    }

    /// The read that completes when another thread wakes this one.
    pub fn read(&mut self, user_data: u64) -> squeue::Entry {
        let count: *mut u64 = &mut *self.count;
        opcode::Read::new(Fd(self.fd.as_raw_fd()), count.cast(), 8).build().user_data(user_data)
    }

    /// What wakes the ring's thread from another thread.
    pub fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let wake = self.fd.clone();
        Arc::new(move || {
            let one = 1u64;
            // SAFETY: writes 8 bytes from `one` to an eventfd this closure keeps open.
            let _ = unsafe { libc::write(wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        })
    }

    /// Leaves the count's memory to the kernel, whose read may still be in flight.
    pub fn leak(&mut self) {
        std::mem::forget(std::mem::replace(&mut self.count, Box::new(0)));
    }
}

/// The provided buffers receives complete into: a ring of buffer descriptions the kernel
/// takes from, and the buffers themselves, given back as soon as their bytes are used.
pub(crate) struct BufferRing {
    /// The ring of descriptions, page-aligned as the kernel requires.
    entries: *mut BufRingEntry,
    layout: Layout,
    memory: Box<[u8]>,
    /// The next tail to publish.
    tail: u16,
    leaked: bool,
}

// SAFETY: the ring's memory is owned by this struct alone (and lent to the kernel), and is
// used only by the thread that owns the ring.
unsafe impl Send for BufferRing {}

impl BufferRing {
    fn new(ring: &IoUring) -> io::Result<BufferRing> {
        let layout = Layout::from_size_align(usize::from(BUFFERS) * std::mem::size_of::<BufRingEntry>(), 4096)
            .expect("a valid layout");
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let mut buffers = BufferRing {
            entries,
            layout,
            memory: vec![0; usize::from(BUFFERS) * BUFFER_SIZE].into_boxed_slice(),
            tail: 0,
            leaked: false,
        };
        // SAFETY: the ring memory is valid for BUFFERS entries and stays so until it is
        // unregistered or leaked (see the users' `Drop`).
        unsafe { ring.submitter().register_buf_ring_with_flags(entries as u64, BUFFERS, BUFFER_GROUP, 0)? };
        for id in 0..BUFFERS {
            buffers.give_back(id);
        }
        Ok(buffers)
    }

    pub fn bytes(&self, id: u16) -> &[u8] {
        let at = usize::from(id) * BUFFER_SIZE;
        &self.memory[at..at + BUFFER_SIZE]
    }

    /// Hands buffer `id` to the kernel again.
    pub fn give_back(&mut self, id: u16) {
        let addr = self.bytes(id).as_ptr() as u64;
        // SAFETY: `tail & mask` is within the ring's BUFFERS entries; the kernel reads an entry
        // only once the tail published below covers it.
        unsafe {
            let entry = &mut *self.entries.add(usize::from(self.tail & (BUFFERS - 1)));
            entry.set_addr(addr);
            entry.set_len(BUFFER_SIZE as u32);
            entry.set_bid(id);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is a u16 in the first entry, which the kernel reads; the release store
        // publishes the entry written above before the tail that covers it.
        unsafe { (*BufRingEntry::tail(self.entries).cast::<AtomicU16>()).store(self.tail, Ordering::Release) };
    }

    /// Leaves the buffers to the kernel, which may still write into them.
    pub fn leak(&mut self) {
        self.leaked = true;
        std::mem::forget(std::mem::take(&mut self.memory));
    }
}

impl Drop for BufferRing {
    fn drop(&mut self) {
        if !self.leaked {
            // SAFETY: allocated in `new` with this layout; the kernel no longer uses it.
            unsafe { dealloc(self.entries.cast(), self.layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_gives_back_its_kind_slot_and_generation() {
        let data = user_data(4, 123_456, 0x1_2345);
        assert_eq!(parse(data), (4, 123_456, 0x2345));
    }
}
