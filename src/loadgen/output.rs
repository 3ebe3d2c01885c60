//! The results: per phase and for the whole measured run, as a table for people, as JSON for
//! scripts, and as HdrHistogram files (`.hgrm` spectra, an `.hlog` interval log) for plotters.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::collect::{Collected, IntervalRecord};
use super::correction::Latencies;
use super::schedule::Schedule;
use super::tally::{ErrorKind, Tally};
use super::threshold::{Measured, Verdict};
use crate::metrics::{hgrm, hlog, Summary};
pub use crate::units::format_ns;

/// The `.hlog` tags, in the order of [`IntervalRecord::buckets`].
pub const HLOG_TAGS: [&str; 4] = ["corrected", "uncorrected", "send_lag", "connection_wait"];

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Spectrum {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

impl Spectrum {
    fn of(h: &Histogram<u64>) -> Self {
        let at = |q: f64| quantile_ns(h, q) as f64 / 1e3;
        Spectrum {
            count: h.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            p9999: at(0.9999),
            max: at(1.0),
        }
    }
}

/// `h` at quantile `q` (1.0: the max), 0 when empty.
fn quantile_ns(h: &Histogram<u64>, q: f64) -> u64 {
    match (h.is_empty(), q >= 1.0) {
        (true, _) => 0,
        (false, true) => h.max(),
        (false, false) => h.value_at_quantile(q),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyResults {
    /// From each request's intended send time.
    pub corrected: Spectrum,
    /// From its actual send.
    pub uncorrected: Spectrum,
    /// Corrected, of the responses that passed their checks alone (a server that sheds load
    /// answers its rejections fast: this is the latency of what it served).
    pub passed: Spectrum,
}

/// One phase's results, or the whole measured run's.
#[derive(Clone, Serialize)]
pub struct PhaseResults {
    pub label: String,
    /// The scheduled rate (its average, when ramping); `null` in a closed loop.
    pub target_rate: Option<f64>,
    /// Responses per second over `elapsed_s`.
    pub achieved_rate: f64,
    /// With `--slo`: responses that passed their checks within the SLO (corrected latency),
    /// per second over `elapsed_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput_rps: Option<f64>,
    /// The phase's scheduled length.
    pub duration_s: f64,
    /// From its start to its last response (at least `duration_s`).
    pub elapsed_s: f64,
    /// Requests issued: sent, or due and never sent.
    pub requests: u64,
    pub sent: u64,
    pub responses: u64,
    /// Every error, 4xx and 5xx responses included.
    pub errors: u64,
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Responses by status class: `2xx`, `4xx`, ...
    pub status: BTreeMap<&'static str, u64>,
    pub latency_us: LatencyResults,
    /// How late the generator took each request off its schedule.
    pub send_lag_us: Spectrum,
    /// How long each request then waited for a free connection.
    pub connection_wait_us: Spectrum,
    /// The TLS handshakes of the connections opened (https://), apart from the latencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_handshakes: Option<HandshakeResults>,
    /// The same per request name (with a request file, or a mix of several kinds).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_request: BTreeMap<String, PhaseResults>,
    #[serde(skip)]
    pub histograms: Latencies,
}

impl PhaseResults {
    /// The results of `tally`; its kinds' counts under their `names`.
    fn new(
        label: String,
        tally: &Tally,
        target_rate: Option<f64>,
        (duration_ns, elapsed_ns): (u64, u64),
        names: &[String],
    ) -> Self {
        let elapsed_ns = elapsed_ns.max(duration_ns);
        const CLASSES: [&str; 6] = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];
        PhaseResults {
            label,
            target_rate,
            achieved_rate: if elapsed_ns == 0 { 0.0 } else { tally.responses as f64 / (elapsed_ns as f64 / 1e9) },
            goodput_rps: None,
            duration_s: duration_ns as f64 / 1e9,
            elapsed_s: elapsed_ns as f64 / 1e9,
            requests: tally.requests(),
            sent: tally.sent,
            responses: tally.responses,
            errors: tally.error_count(),
            errors_by_kind: ErrorKind::ALL.iter().map(|&k| (k.name(), tally.errors[k as usize])).collect(),
            status: CLASSES.iter().zip(tally.status).filter(|(_, n)| *n > 0).map(|(c, n)| (*c, n)).collect(),
            latency_us: LatencyResults {
                corrected: Spectrum::of(&tally.latencies.corrected),
                uncorrected: Spectrum::of(&tally.latencies.uncorrected),
                passed: Spectrum::of(&tally.latencies.good),
            },
            send_lag_us: Spectrum::of(&tally.latencies.send_lag),
            connection_wait_us: Spectrum::of(&tally.latencies.connection_wait),
            tls_handshakes: tally.handshakes.as_ref().map(|h| HandshakeResults {
                count: h.count,
                resumed: h.resumed,
                time_us: Spectrum::of(&h.time),
            }),
            by_request: names
                .iter()
                .enumerate()
                .map(|(kind, name)| {
                    let empty = Tally::default();
                    let counts = tally.by_kind.get(&(kind as u32)).unwrap_or(&empty);
                    (name.clone(), PhaseResults::new(name.clone(), counts, None, (duration_ns, elapsed_ns), &[]))
                })
                .collect(),
            histograms: tally.latencies.clone(),
        }
    }

    /// Sets `goodput_rps` for `slo`, here and per request.
    pub fn set_goodput(&mut self, slo: Duration) {
        let good = &self.histograms.good;
        let within = if good.is_empty() { 0 } else { good.count_between(0, slo.as_nanos() as u64) };
        self.goodput_rps = Some(if self.elapsed_s > 0.0 { within as f64 / self.elapsed_s } else { 0.0 });
        for r in self.by_request.values_mut() {
            r.set_goodput(slo);
        }
    }

    /// Histogram `which` (0 corrected, 1 uncorrected, 2 send lag, 3 connection wait) at
    /// quantile `q` (1.0: max).
    pub fn latency_ns(&self, which: usize, q: f64) -> u64 {
        let h = &self.histograms;
        let h = [&h.corrected, &h.uncorrected, &h.send_lag, &h.connection_wait][which];
        quantile_ns(h, q)
    }
}

/// TLS handshakes: how many, how many resumed an earlier session, how long they took.
#[derive(Debug, Clone, Serialize)]
pub struct HandshakeResults {
    pub count: u64,
    pub resumed: u64,
    pub time_us: Spectrum,
}

/// How the run was driven, for the results' header.
#[derive(Debug, Clone, Serialize)]
pub struct RunShape {
    pub target: String,
    /// `open` (a schedule of send times) or `closed` (as fast as responses come).
    pub mode: &'static str,
    /// `constant` or `poisson`; `null` in a closed loop.
    pub arrival: Option<&'static str>,
    pub connections: usize,
    pub pipeline_depth: usize,
    pub threads: usize,
    /// In-process only, where there are no connections: how many requests may be in the
    /// pipeline at once (`connections` x `pipeline_depth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<usize>,
    /// Against an HTTP server: how the sending threads did their I/O (`uring` or `epoll`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io: Option<&'static str>,
}

/// Everything a run reports.
#[derive(Serialize)]
pub struct Results {
    #[serde(flatten)]
    pub shape: RunShape,
    /// The measured phases together.
    #[serde(flatten)]
    pub total: PhaseResults,
    pub warmup: Option<PhaseResults>,
    /// Each measured phase on its own, when there are several (`--sweep`).
    pub steps: Vec<PhaseResults>,
    pub thresholds: Vec<Verdict>,
    /// `--slo`: goodput counts the responses within it.
    #[serde(skip)]
    pub slo: Option<Duration>,
    /// In-process: the engine's own summary (its stages' queue and service times).
    pub engine: Option<Summary>,
    /// In-process, with `--record`: the engine's intervals.
    #[serde(skip)]
    pub recording: Option<crate::metrics::Recording>,
    #[serde(skip)]
    pub intervals: Vec<IntervalRecord>,
    #[serde(skip)]
    pub started: SystemTime,
    #[serde(skip)]
    pub interval_ns: u64,
}

impl Results {
    /// Builds the results of a run that started at `start_ns` (clock) and `started` (wall),
    /// its intervals `interval_ns` long.
    pub fn new(
        shape: RunShape,
        schedule: &Schedule,
        collected: Collected,
        start_ns: u64,
        started: SystemTime,
        interval_ns: u64,
        kind_names: &[String],
    ) -> Self {
        let elapsed_since = |tally: &Tally, from: u64| tally.last_done_ns.saturating_sub(start_ns + from);
        let mut warmup = None;
        let mut steps = Vec::new();
        let mut total = Tally::default();
        let (mut measured_ns, mut expected, mut first_measured) = (0, 0.0, None);
        for (i, (phase, tally)) in schedule.phases.iter().zip(&collected.phases).enumerate() {
            if phase.length_ns == 0 {
                // Cut off before it began (Ctrl-C): nothing was due in it.
                continue;
            }
            let target = phase.rate.map(|_| phase.expected_requests() / (phase.length_ns as f64 / 1e9));
            let start = schedule.phase_start_ns(i);
            let lengths = (phase.length_ns, elapsed_since(tally, start));
            let results = PhaseResults::new(phase.label.clone(), tally, target, lengths, kind_names);
            if phase.measured {
                total.add(tally);
                measured_ns += phase.length_ns;
                expected += phase.expected_requests();
                first_measured.get_or_insert(start);
                steps.push(results);
            } else {
                warmup = Some(results);
            }
        }
        let closed = schedule.phases.iter().all(|p| p.rate.is_none());
        let target = (!closed && measured_ns > 0).then(|| expected / (measured_ns as f64 / 1e9));
        let elapsed = elapsed_since(&total, first_measured.unwrap_or(0));
        let total = PhaseResults::new("total".into(), &total, target, (measured_ns, elapsed), kind_names);
        if steps.len() == 1 {
            steps.clear();
        }
        Results {
            shape,
            total,
            warmup,
            steps,
            thresholds: Vec::new(),
            slo: None,
            engine: None,
            recording: None,
            intervals: collected.intervals,
            started,
            interval_ns,
        }
    }

    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|v| v.passed)
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")
    }

    /// The corrected spectrum to `path`, the uncorrected one beside it
    /// (`run.hgrm` → `run.uncorrected.hgrm`); values in microseconds.
    pub fn write_hgrm(&self, path: &Path) -> std::io::Result<[PathBuf; 2]> {
        let uncorrected = beside(path, "uncorrected");
        for (file, h) in [(path, &self.total.histograms.corrected), (&uncorrected, &self.total.histograms.uncorrected)]
        {
            let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
            hgrm::write(&mut out, h, hgrm::NS_PER_US)?;
            out.flush()?;
        }
        Ok([path.to_path_buf(), uncorrected])
    }

    /// The measured intervals, each as four tagged histograms (corrected, uncorrected,
    /// send_lag, connection_wait), in nanoseconds.
    pub fn write_hlog(&self, path: &Path) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        let length = Duration::from_nanos(self.interval_ns);
        let entries = self.intervals.iter().flat_map(|record| {
            HLOG_TAGS.iter().enumerate().map(move |(which, tag)| hlog::Entry {
                tag: (*tag).to_string(),
                start: length * record.index as u32,
                length,
                histogram: record.histogram(which),
            })
        });
        hlog::write(&mut out, self.started, entries)?;
        out.flush()
    }
}

/// `dir/name.ext` → `dir/name.<what>.ext`.
fn beside(path: &Path, what: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{what}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{what}"),
    };
    path.with_file_name(name)
}

impl fmt::Display for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shape;
        let loop_kind = match s.arrival {
            Some(arrival) => format!("open loop, {arrival} arrivals"),
            None => "closed loop".into(),
        };
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let in_flight = match s.slots {
            // In-process there are no connections, only places for requests in flight.
            Some(slots) => format!("{} for requests in flight", plural(slots, "slot")),
            None => format!("{} x {} in flight", plural(s.connections, "connection"), s.pipeline_depth),
        };
        let io = s.io.map(|io| format!(", {io} I/O")).unwrap_or_default();
        writeln!(f, "seda load {}: {loop_kind}, {in_flight}, {}{io}", s.target, plural(s.threads, "thread"))?;
        if let Some(w) = &self.warmup {
            writeln!(
                f,
                "warmup: {:.1} s, {} requests, {} responses, {} errors (left out of the results below)",
                w.duration_s, w.requests, w.responses, w.errors
            )?;
        }
        let t = &self.total;
        let target = t.target_rate.map_or(String::new(), |r| format!(" of {r:.0}/s scheduled"));
        writeln!(
            f,
            "requests: {} ({} sent), {} responses in {:.3} s: {:.1}/s{target}",
            t.requests, t.sent, t.responses, t.elapsed_s, t.achieved_rate
        )?;
        if let (Some(goodput), Some(slo)) = (t.goodput_rps, self.slo) {
            writeln!(f, "goodput: {goodput:.1}/s answered within the {slo:?} SLO")?;
        }
        let kinds: Vec<String> =
            t.errors_by_kind.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
        let statuses: Vec<String> = t.status.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let share = if t.requests == 0 { 0.0 } else { t.errors as f64 / t.requests as f64 * 100.0 };
        writeln!(
            f,
            "errors: {} ({share:.3}%){}; status: {}",
            t.errors,
            if kinds.is_empty() { String::new() } else { format!(": {}", kinds.join(", ")) },
            if statuses.is_empty() { "none".into() } else { statuses.join(", ") }
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency (us)", "p50", "p90", "p99", "p99.9", "p99.99", "max", "count"
        )?;
        for (name, p) in [
            ("corrected", &t.latency_us.corrected),
            ("uncorrected", &t.latency_us.uncorrected),
            ("send lag", &t.send_lag_us),
            ("conn. wait", &t.connection_wait_us),
        ] {
            writeln!(
                f,
                "{name:<14} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10}",
                p.p50, p.p90, p.p99, p.p999, p.p9999, p.max, p.count
            )?;
        }
        if let Some(h) = &t.tls_handshakes {
            let p = &h.time_us;
            writeln!(
                f,
                "{:<14} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10}  ({} resumed)",
                "TLS handshake", p.p50, p.p90, p.p99, p.p999, p.p9999, p.max, p.count, h.resumed
            )?;
        }
        if !t.by_request.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "{:<20} {:>10} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10}  errors by kind",
                "by request", "requests", "responses", "errors", "p50 (us)", "p99", "p99.9", "max"
            )?;
            for (name, r) in &t.by_request {
                let kinds: Vec<String> =
                    r.errors_by_kind.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
                let c = &r.latency_us.corrected;
                writeln!(
                    f,
                    "{:<20} {:>10} {:>10} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2}  {}",
                    name,
                    r.requests,
                    r.responses,
                    r.errors,
                    c.p50,
                    c.p99,
                    c.p999,
                    c.max,
                    kinds.join(", ")
                )?;
            }
        }
        if !self.steps.is_empty() {
            writeln!(f)?;
            let goodput = if self.slo.is_some() { format!(" {:>10}", "goodput/s") } else { String::new() };
            writeln!(
                f,
                "{:<10} {:>10} {:>11}{goodput} {:>8} {:>10} {:>10} {:>10} {:>12} {:>10}",
                "step", "target/s", "achieved/s", "errors", "p50 (us)", "p99", "p99.9", "uncorr. p99", "lag p99"
            )?;
            for step in &self.steps {
                let goodput = step.goodput_rps.map_or(String::new(), |g| format!(" {g:>10.1}"));
                writeln!(
                    f,
                    "{:<10} {:>10.0} {:>11.1}{goodput} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>12.2} {:>10.2}",
                    step.label,
                    step.target_rate.unwrap_or(0.0),
                    step.achieved_rate,
                    step.errors,
                    step.latency_us.corrected.p50,
                    step.latency_us.corrected.p99,
                    step.latency_us.corrected.p999,
                    step.latency_us.uncorrected.p99,
                    step.send_lag_us.p99
                )?;
            }
        }
        if !self.thresholds.is_empty() {
            writeln!(f)?;
            for v in &self.thresholds {
                let verdict = if v.passed { "passed" } else { "FAILED" };
                writeln!(f, "threshold {}: {} (actual {})", v.threshold, verdict, v.shown)?;
            }
        }
        if let Some(engine) = &self.engine {
            writeln!(f)?;
            write!(f, "{engine}")?;
        }
        Ok(())
    }
}

/// What `--fail-if` checks a load run's results against.
impl Measured for PhaseResults {
    fn requests(&self) -> u64 {
        self.requests
    }

    fn errors(&self, kind: Option<ErrorKind>) -> u64 {
        match kind {
            Some(kind) => self.errors_by_kind.get(kind.name()).copied().unwrap_or(0),
            None => self.errors,
        }
    }

    fn rate(&self) -> f64 {
        self.achieved_rate
    }

    fn latency_ns(&self, which: usize, q: f64) -> Option<u64> {
        Some(PhaseResults::latency_ns(self, which, q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_ns(850), "850 ns");
        assert_eq!(format_ns(12_345), "12.3 us");
        assert_eq!(format_ns(4_560_000), "4.56 ms");
        assert_eq!(format_ns(1_234_000_000), "1.234 s");
    }

    #[test]
    fn the_uncorrected_spectrum_goes_beside_the_corrected_one() {
        assert_eq!(beside(Path::new("/tmp/run.hgrm"), "uncorrected"), Path::new("/tmp/run.uncorrected.hgrm"));
        assert_eq!(beside(Path::new("out"), "uncorrected"), Path::new("out.uncorrected"));
    }

    #[test]
    fn goodput_counts_the_responses_that_passed_their_checks_within_the_slo() {
        use crate::loadgen::correction::Timing;
        let mut tally = Tally::default();
        let took = |ms: u64| Timing { intended_ns: 0, dispatched_ns: 0, sent_ns: 0, done_ns: ms * 1_000_000 };
        // Within 20 ms: 5 ms and 19 ms; 30 ms is too late; the 503 in 1 ms failed its check.
        for ms in [5, 19, 30] {
            tally.checked_response(&took(ms), 200, None);
        }
        tally.checked_response(&took(1), 503, Some(ErrorKind::UnexpectedStatus));
        let mut results = PhaseResults::new("total".into(), &tally, Some(4.0), (2_000_000_000, 2_000_000_000), &[]);
        assert_eq!(results.goodput_rps, None);
        results.set_goodput(Duration::from_millis(20));
        assert_eq!(results.goodput_rps, Some(1.0), "2 good responses in 2 s");
        assert_eq!(results.achieved_rate, 2.0, "4 responses in 2 s");
    }
}
