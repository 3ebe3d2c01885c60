//! A stage's shared handle on its admission controller: the controller under a lock, taken
//! once per batch, and what the engine needs around it (service classes, requests in service).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use seda_stages::Request;
use serde::{Deserialize, Serialize};

use super::codel::Codel;
use super::concurrency_limit::ConcurrencyLimit;
use super::latency_target::LatencyTarget;
use crate::config::{AdmissionPlan, ClassSource};
use crate::engine::Envelope;
use crate::metrics::ControllerReading;

/// Which controller shed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Controller {
    LatencyTarget,
    ConcurrencyLimit,
    Codel,
}

impl Controller {
    /// The name a config gives it.
    pub fn name(self) -> &'static str {
        match self {
            Controller::LatencyTarget => "latency_target",
            Controller::ConcurrencyLimit => "concurrency_limit",
            Controller::Codel => "codel",
        }
    }
}

pub(crate) struct Gate {
    kind: Controller,
    state: Mutex<State>,
    /// Requests of the batches workers have started at the stage and not finished: with the
    /// queue's depth, the requests at the stage (for `concurrency_limit`).
    in_service: AtomicUsize,
    /// Where a request's class comes from, and the classes' names, highest first.
    classes: Option<(ClassSource, Vec<String>)>,
}

enum State {
    LatencyTarget(LatencyTarget),
    ConcurrencyLimit(ConcurrencyLimit),
    Codel(Codel),
}

impl Gate {
    /// The controller `plan` describes, for a stage its pool's `workers` serve, at `now`.
    pub fn new(plan: &AdmissionPlan, workers: usize, now: u64) -> Self {
        let (kind, state, classes) = match plan {
            AdmissionPlan::LatencyTarget(p) => {
                let classes = p.classes.as_ref().map_or(1, |(_, names)| names.len());
                (
                    Controller::LatencyTarget,
                    State::LatencyTarget(LatencyTarget::new(p, classes, workers, now)),
                    p.classes.clone(),
                )
            }
            AdmissionPlan::ConcurrencyLimit(p) => {
                (Controller::ConcurrencyLimit, State::ConcurrencyLimit(ConcurrencyLimit::new(p, now)), None)
            }
            AdmissionPlan::Codel(p) => (Controller::Codel, State::Codel(Codel::new(p)), None),
        };
        Gate { kind, state: Mutex::new(state), in_service: AtomicUsize::new(0), classes }
    }

    pub fn kind(&self) -> Controller {
        self.kind
    }

    /// Whether it decides as requests are queued (else as they are taken).
    pub fn at_entry(&self) -> bool {
        self.kind != Controller::Codel
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The controllers do not panic while locked; were one to, its state is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request's class: its index in the order, the lowest when it names none.
    pub fn class_of(&self, req: &Request) -> usize {
        let Some((source, names)) = &self.classes else { return 0 };
        let lowest = names.len() - 1;
        let name: Option<&[u8]> = match source {
            ClassSource::Attribute(attribute) => req.attrs.get(attribute).map(str::as_bytes),
            ClassSource::Header(header) => req.http.header(header),
        };
        name.and_then(|v| names.iter().position(|n| n.as_bytes() == v)).unwrap_or(lowest)
    }

    /// Moves the requests of `items` the controller sheds as they are queued (in order) into
    /// `shed`, at `now`, with `queued` requests in the stage's queue.
    pub fn admit(&self, items: &mut Vec<Box<Envelope>>, queued: usize, now: u64, shed: &mut Vec<Box<Envelope>>) {
        let mut state = self.state();
        let in_service = self.in_service.load(Ordering::Relaxed);
        let mut i = 0;
        while i < items.len() {
            let admitted = match &mut *state {
                State::LatencyTarget(c) => c.admit(self.class_of(&items[i].req), queued + in_service + i, now),
                State::ConcurrencyLimit(c) => c.admit(queued + in_service + i, now),
                State::Codel(_) => true,
            };
            if admitted {
                i += 1;
            } else {
                shed.push(items.remove(i));
            }
        }
    }

    /// Moves the requests of `items`, taken from the queue at `now` after waiting
    /// `sojourn_ns`, that the controller sheds at dequeue into `shed`.
    pub fn dequeue(&self, items: &mut Vec<Box<Envelope>>, sojourn_ns: u64, now: u64, shed: &mut Vec<Box<Envelope>>) {
        let mut state = self.state();
        let State::Codel(c) = &mut *state else { return };
        let mut i = 0;
        while i < items.len() {
            if c.shed(sojourn_ns, now) {
                shed.push(items.remove(i));
            } else {
                i += 1;
            }
        }
    }

    /// A worker starts on `n` requests of the stage.
    pub fn started(&self, n: usize) {
        self.in_service.fetch_add(n, Ordering::Relaxed);
    }

    /// A worker has finished with `n` requests it started, `samples` being (class, response
    /// time) of those that ran, having been busy with them for `busy_ns`, at `now`.
    pub fn finished(&self, n: usize, samples: &[(usize, u64)], busy_ns: u64, now: u64) {
        self.in_service.fetch_sub(n, Ordering::Relaxed);
        let mut state = self.state();
        match &mut *state {
            State::LatencyTarget(c) => {
                c.busy(n, busy_ns);
                samples.iter().for_each(|&(class, ns)| c.observe(class, ns, now))
            }
            State::ConcurrencyLimit(c) => samples.iter().for_each(|&(_, ns)| c.observe(ns, now)),
            State::Codel(_) => {}
        }
    }

    /// The controller's state now, as a run record keeps it per interval.
    pub fn reading(&self) -> ControllerReading {
        let s = self.snapshot(0);
        let level = match self.kind {
            Controller::LatencyTarget => s.rate.unwrap_or(0.0),
            Controller::ConcurrencyLimit => s.limit.unwrap_or(0) as f64,
            Controller::Codel => f64::from(u8::from(s.dropping.unwrap_or(false))),
        };
        ControllerReading { controller: self.kind.name(), level, latency_ms: s.latency_ms }
    }

    /// The controller's state now, `queued` requests being in the stage's queue.
    pub fn snapshot(&self, queued: usize) -> AdmissionSnapshot {
        let ms = |ns: f64| ns / 1e6;
        let state = self.state();
        let mut s = AdmissionSnapshot { controller: self.kind, ..AdmissionSnapshot::default() };
        match &*state {
            State::LatencyTarget(c) => {
                let names = self.classes.as_ref().map(|(_, n)| n.clone()).unwrap_or_else(|| vec![String::new()]);
                s.classes = c
                    .classes()
                    .iter()
                    .zip(names)
                    .map(|(class, name)| ClassSnapshot {
                        name,
                        rate: class.rate,
                        latency_ms: class.estimate_ns.map(ms),
                        admitted: class.admitted_total,
                        shed: class.shed_total,
                    })
                    .collect();
                s.admitted = s.classes.iter().map(|c| c.admitted).sum();
                s.shed = s.classes.iter().map(|c| c.shed).sum();
                s.rate = Some(s.classes.iter().map(|c| c.rate).sum());
                s.latency_ms = s.classes.first().and_then(|c| c.latency_ms);
                if self.classes.is_none() {
                    s.classes.clear();
                }
            }
            State::ConcurrencyLimit(c) => {
                s.admitted = c.admitted_total;
                s.shed = c.shed_total;
                s.limit = Some(c.limit() as u64);
                s.at_stage = Some((queued + self.in_service.load(Ordering::Relaxed)) as u64);
                s.latency_ms = c.last_ns.map(|ns| ms(ns as f64));
            }
            State::Codel(c) => {
                s.admitted = c.kept_total;
                s.shed = c.shed_total;
                s.dropping = Some(c.dropping);
                s.latency_ms = Some(ms(c.last_sojourn_ns as f64));
            }
        }
        s
    }
}

/// A stage's admission controller, as `/stats` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdmissionSnapshot {
    pub controller: Controller,
    /// Requests it let through, and shed, since the start.
    pub admitted: u64,
    pub shed: u64,
    /// `latency_target`: the bucket's rate, requests per second (all classes').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `concurrency_limit`: the limit, and the requests at the stage now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_stage: Option<u64>,
    /// `codel`: whether it is shedding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropping: Option<bool>,
    /// The latency it steers by, ms: `latency_target`'s smoothed estimate (of the highest
    /// class), `concurrency_limit`'s last window's percentile, `codel`'s last queue wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// `latency_target` with classes: each class, highest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassSnapshot>,
}

impl Default for AdmissionSnapshot {
    fn default() -> Self {
        AdmissionSnapshot {
            controller: Controller::LatencyTarget,
            admitted: 0,
            shed: 0,
            rate: None,
            limit: None,
            at_stage: None,
            dropping: None,
            latency_ms: None,
            classes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSnapshot {
    pub name: String,
    pub rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    pub admitted: u64,
    pub shed: u64,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use seda_stages::http::Version;

    use super::*;
    use crate::config::{Adjust, LatencyTargetPlan};

    fn gate(source: ClassSource) -> Gate {
        let plan = LatencyTargetPlan {
            target: Duration::from_millis(20),
            percentile: 90.0,
            sample_every: 100,
            sample_window: Duration::from_millis(100),
            smoothing: 0.7,
            adjust: Adjust::Proportional,
            min_rate: 10.0,
            max_rate: 1e6,
            classes: Some((source, vec!["gold".into(), "silver".into(), "bronze".into()])),
            class_targets: vec![Duration::from_millis(20); 3],
        };
        Gate::new(&AdmissionPlan::LatencyTarget(plan), 1, 0)
    }

    fn http_request(headers: &[(&str, &str)]) -> Request {
        let mut req = Request::default();
        req.http.set_line("GET", "/", Version::Http11);
        for (name, value) in headers {
            req.http.push_header(name, value.as_bytes());
        }
        req
    }

    #[test]
    fn a_class_is_read_from_its_header_whatever_the_names_case_and_the_lowest_without_one() {
        let g = gate(ClassSource::Header("X-Tier".into()));
        assert_eq!(g.class_of(&http_request(&[("X-Tier", "gold")])), 0);
        assert_eq!(g.class_of(&http_request(&[("x-tier", "silver")])), 1);
        // The first value counts; a value is compared exactly.
        assert_eq!(g.class_of(&http_request(&[("X-Tier", "silver"), ("X-Tier", "gold")])), 1);
        assert_eq!(g.class_of(&http_request(&[("X-Tier", "Gold")])), 2);
        assert_eq!(g.class_of(&http_request(&[])), 2);
        // An attribute of the same name is not the header.
        let mut req = http_request(&[]);
        req.attrs.set("X-Tier".into(), "gold".into());
        assert_eq!(g.class_of(&req), 2);
    }

    #[test]
    fn a_class_is_read_from_its_attribute_and_the_lowest_without_one() {
        let g = gate(ClassSource::Attribute("tier".into()));
        let mut req = Request::default();
        assert_eq!(g.class_of(&req), 2);
        req.attrs.set("tier".into(), "silver".into());
        assert_eq!(g.class_of(&req), 1);
        assert_eq!(g.class_of(&http_request(&[("tier", "gold")])), 2);
    }
}
