//! The in-process generator: `requests` synthetic requests, at a fixed rate or as fast as the
//! entry admits them, each stamped with its intended start time so that end-to-end latency
//! counts any delay in sending it.
//!
//! Requests are recycled: the engine hands them back in batches ([`Origin::finish_batch`]) and
//! the generator reuses them, so a steady run does not allocate, and a request's return costs
//! one cross-thread hand-off per batch, not one each.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use seda_stages::{splitmix64, Request};

use crate::clock::now_ns;
use crate::config::{Rate, SourcePlan};
use crate::engine::{Admission, Envelope, Origin, Outcome, Submitter};

/// Requests handed over per batch.
const BATCH: usize = 32;
/// Batches of requests kept for reuse at most (of up to 32 each; a worker that runs out of work
/// hands back what it has, so many are small).
const RECYCLE_BATCHES: usize = 1 << 14;

pub struct Generator {
    requests: u64,
    rate: Rate,
    payload_bytes: usize,
    cpu: Option<usize>,
    attributes: Vec<Attribute>,
    /// Ended requests, a batch at a time, for reuse.
    recycled: ArrayQueue<Vec<Box<Envelope>>>,
    /// Emptied batch vectors, going back to the workers that fill them.
    empties: ArrayQueue<Vec<Box<Envelope>>>,
}

/// An attribute to draw: its name, its values with cumulative weights, the weights' total, and
/// a seed from the name, so that attributes are drawn independently.
type Attribute = (Arc<str>, Vec<(Arc<str>, u64)>, u64, u64);

impl Origin for Generator {
    fn finish(&self, env: Box<Envelope>, _outcome: &Outcome) {
        // The engine hands a batching origin its requests through `finish_batch`; one at a
        // time they would cost a vector each.
        drop(env);
    }

    fn batches(&self) -> bool {
        true
    }

    fn finish_batch(&self, ended: &mut Vec<(Box<Envelope>, Outcome)>) {
        let mut envs = self.empties.pop().unwrap_or_else(|| Vec::with_capacity(BATCH));
        envs.extend(ended.drain(..).map(|(env, _)| env));
        // A full bin frees them: only when far more are in flight than it holds.
        let _ = self.recycled.push(envs);
    }
}

impl Generator {
    pub fn new(source: &SourcePlan) -> Self {
        let SourcePlan::Generator { requests, rate, payload_bytes, cpu, attributes, .. } = source else {
            panic!("Generator::new takes a generator source");
        };
        let attributes = attributes
            .iter()
            .map(|(name, values)| {
                let mut total = 0;
                let values = values
                    .iter()
                    .map(|(v, w)| {
                        total += u64::from(*w);
                        (Arc::from(v.as_str()), total)
                    })
                    .collect();
                let seed = name.bytes().fold(0, |h, b| splitmix64(h ^ u64::from(b)));
                (Arc::from(name.as_str()), values, total, seed)
            })
            .collect();
        Generator {
            requests: *requests,
            rate: *rate,
            payload_bytes: *payload_bytes,
            cpu: *cpu,
            attributes,
            recycled: ArrayQueue::new(RECYCLE_BATCHES),
            empties: ArrayQueue::new(RECYCLE_BATCHES),
        }
    }

    /// Sends every request (or until `stop`); returns how many were submitted.
    pub fn run(&self, mut submitter: Submitter<'_>, stop: &AtomicBool) -> u64 {
        if let Some(cpu) = self.cpu {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        }
        let mut batch = Vec::with_capacity(BATCH);
        let mut reuse = Vec::with_capacity(BATCH);
        let mut id = 0;
        let start = now_ns();
        while id < self.requests && !stop.load(Ordering::Relaxed) && submitter.admitting() {
            match self.rate {
                Rate::Max => {
                    let now = now_ns();
                    while batch.len() < BATCH && id < self.requests {
                        batch.push(self.make(&mut reuse, id, now));
                        id += 1;
                    }
                    submitter.submit_batch(&mut batch, Admission::WaitForRoom);
                }
                Rate::PerSecond(rate) => {
                    let due = |id: u64| start + (id as f64 * 1e9 / rate) as u64;
                    wait_until(due(id));
                    // Everything due by now goes in one batch.
                    let now = now_ns();
                    while batch.len() < BATCH && id < self.requests && due(id) <= now {
                        batch.push(self.make(&mut reuse, id, due(id)));
                        id += 1;
                    }
                    submitter.submit_batch(&mut batch, Admission::Policy);
                }
            }
        }
        id
    }

    /// Request `id`, meant to start at `intended_ns`, reusing a finished one when there is one
    /// (`reuse` holds the batch of them being drawn from).
    fn make(&self, reuse: &mut Vec<Box<Envelope>>, id: u64, intended_ns: u64) -> Box<Envelope> {
        if reuse.is_empty() {
            if let Some(full) = self.recycled.pop() {
                let empty = std::mem::replace(reuse, full);
                let _ = self.empties.push(empty);
            }
        }
        let mut env = reuse.pop().unwrap_or_else(|| Envelope::new(Request::default()));
        env.req.reset(id);
        if env.req.payload.len() != self.payload_bytes {
            env.req.payload.resize(self.payload_bytes, 0xa5);
        }
        self.set_attributes(&mut env.req);
        env.intended_ns = intended_ns;
        env
    }

    /// Sets the configured attributes on `req`, drawn by weight from a hash of its id.
    pub fn set_attributes(&self, req: &mut Request) {
        for (name, values, total, seed) in &self.attributes {
            let draw = splitmix64(req.id ^ seed) % total;
            let value = &values.iter().find(|(_, bound)| draw < *bound).expect("draw is below the total").0;
            req.attrs.set(name.clone(), value.clone());
        }
    }
}

/// Waits until the clock reads `ns`: sleeping while it is far, spinning when it is near.
fn wait_until(ns: u64) {
    loop {
        let now = now_ns();
        if now >= ns {
            return;
        }
        let left = ns - now;
        if left > 200_000 {
            std::thread::sleep(Duration::from_nanos(left - 100_000));
        } else {
            std::hint::spin_loop();
        }
    }
}
