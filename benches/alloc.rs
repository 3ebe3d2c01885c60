//! Does the hot path allocate? Runs the same pipelines with N and 2N requests under a counting
//! global allocator and reports the allocations per extra request: recycled requests and
//! batches, and reused latency counts, should make it zero in steady state.
//!
//! `cargo bench --bench alloc`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by one run of `config` with `requests` requests.
fn allocations(config: &str, requests: u64) -> u64 {
    let mut value: serde_json::Value = serde_json::from_str(config).unwrap();
    value["source"]["requests"] = requests.into();
    let plan = seda::config::validate(&value).unwrap_or_else(|e| panic!("{e}"));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let summary = seda::run::Runner::new(plan).run_to_end().unwrap().summary;
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(summary.ledger.completed, requests, "{}", summary.ledger.admitted);
    after - before
}

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    println!(
        "{:<24} {:>12} {:>12} {:>12} {:>12} {:>16}",
        "config", "N", "allocs(N)", "2N", "allocs(2N)", "per extra request"
    );
    for name in ["noop4", "noop4_dedicated", "branching"] {
        let config = std::fs::read_to_string(format!("{root}/configs/{name}.json")).unwrap();
        let n = 500_000;
        let (a, b) = (allocations(&config, n), allocations(&config, 2 * n));
        let per = (b as f64 - a as f64) / n as f64;
        println!("{name:<24} {n:>12} {a:>12} {:>12} {b:>12} {per:>16.5}", 2 * n);
    }
}
