//! `--fail-if` thresholds: a condition on the results that must hold, or the run fails (for CI).
//!
//! `METRIC OP VALUE`, with OP one of `<`, `<=`, `>`, `>=`:
//! - `p50`, `p90`, `p99`, `p99.9`, `p99.99`, `max`: corrected latency; `uncorrected.p99` and
//!   the like: uncorrected latency; `lag.p99` and the like: send lag; `wait.p99` and the like:
//!   connection wait. The value takes
//!   a unit: `ns`, `us`, `ms` or `s` (`p99<5ms`).
//! - `errors`: with `%`, errors as a share of requests (`errors<0.1%`); without, a count;
//!   `errors.KIND` the same for one kind of error (`errors.unexpected_status<1%`).
//! - `rate`: achieved requests per second (`rate>=9900`, `rate>=99k`).
//!
//! A threshold says what must be true: `p99<5ms` fails the run when p99 is 5 ms or more.
//!
//! `seda run` takes the same thresholds ([`Threshold::for_run`]) against its summary: latency
//! is end to end (`p50`, `p90`, `p99`, `p99.9`, `max`; it has no uncorrected, lag or wait
//! series), `errors` are the admitted requests that did not complete (rejected, failed, timed
//! out), and `rate` is completed requests per second.

use serde::Serialize;

use super::tally::ErrorKind;
use crate::metrics::Summary;
use crate::units::{duration_ns, format_ns, parse_rate};

/// What a threshold is checked against: the stats of a load run or of a pipeline run.
pub trait Measured {
    /// Requests sent (or admitted).
    fn requests(&self) -> u64;
    /// Of those, the ones that did not succeed: of every kind, or of one.
    fn errors(&self, kind: Option<ErrorKind>) -> u64;
    /// Achieved requests per second.
    fn rate(&self) -> f64;
    /// Latency (ns) of series `which` (0 corrected, 1 uncorrected, 2 send lag, 3 connection
    /// wait) at quantile `q` (1.0: max); `None` when it is not measured.
    fn latency_ns(&self, which: usize, q: f64) -> Option<u64>;
}

impl Measured for Summary {
    fn requests(&self) -> u64 {
        self.ledger.admitted
    }

    /// A pipeline run's errors have no kinds: [`Threshold::for_run`] refuses a kind.
    fn errors(&self, _kind: Option<ErrorKind>) -> u64 {
        self.ledger.admitted - self.ledger.completed.min(self.ledger.admitted)
    }

    fn rate(&self) -> f64 {
        self.throughput_rps
    }

    fn latency_ns(&self, which: usize, q: f64) -> Option<u64> {
        let p = &self.latency_us;
        let us = match (which, q) {
            (0, 0.5) => p.p50,
            (0, 0.9) => p.p90,
            (0, 0.99) => p.p99,
            (0, 0.999) => p.p999,
            (0, 1.0) => p.max,
            _ => return None,
        };
        Some((us * 1_000.0).round() as u64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    /// Which histogram (0 corrected, 1 uncorrected, 2 send lag) at which quantile (1.0: max).
    Latency(usize, f64),
    /// Errors of every kind, or of one kind (`errors.unexpected_status`).
    ErrorShare(Option<ErrorKind>),
    ErrorCount(Option<ErrorKind>),
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// One parsed `--fail-if`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    metric: Metric,
    op: Op,
    /// Nanoseconds, a share (0..1), a count or requests per second, after the metric.
    bound: f64,
}

/// A threshold against a run's results. In JSON `actual` is a number in `unit`, so a script
/// compares it without parsing text.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub threshold: String,
    pub actual: f64,
    /// `us` (a latency), `%` (a share of errors), `errors` (a count) or `requests/s`.
    pub unit: &'static str,
    /// `actual` for people: `4.56 ms`, `0.1000%`.
    #[serde(skip)]
    pub shown: String,
    pub passed: bool,
}

impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let at = compact
            .find(['<', '>'])
            .ok_or_else(|| format!("`{text}`: expected METRIC<VALUE or METRIC>VALUE, e.g. `p99<5ms`"))?;
        let (name, rest) = compact.split_at(at);
        let (op, value) = match rest.as_bytes() {
            [b'<', b'=', ..] => (Op::Le, &rest[2..]),
            [b'>', b'=', ..] => (Op::Ge, &rest[2..]),
            [b'<', ..] => (Op::Lt, &rest[1..]),
            _ => (Op::Gt, &rest[1..]),
        };
        let bad = |why: &str| format!("`{text}`: {why}");
        let errors_of = match name.strip_prefix("errors") {
            Some("") => Some(None),
            Some(kind) => match kind.strip_prefix('.').and_then(ErrorKind::named) {
                Some(kind) => Some(Some(kind)),
                None => {
                    let known: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
                    return Err(bad(&format!("unknown error kind in `{name}` (known: {})", known.join(", "))));
                }
            },
            None => None,
        };
        let (metric, bound) = match (errors_of, name) {
            (Some(kind), _) => match value.strip_suffix('%') {
                Some(share) => {
                    (Metric::ErrorShare(kind), number(share).ok_or_else(|| bad("not a percentage"))? / 100.0)
                }
                None => (Metric::ErrorCount(kind), number(value).ok_or_else(|| bad("not a count of errors"))?),
            },
            (None, "rate") => (Metric::Rate, parse_rate(value).map_err(|e| bad(&e))?),
            (None, _) => {
                let (which, quantile) = latency_metric(name).ok_or_else(|| {
                    bad(&format!(
                        "unknown metric `{name}` (known: p50, p90, p99, p99.9, p99.99, max, \
                         uncorrected.p99 ..., lag.p99 ..., wait.p99 ..., errors, errors.KIND, rate)"
                    ))
                })?;
                let ns = duration_ns(value).ok_or_else(|| bad("a latency needs a unit: ns, us, ms or s (`5ms`)"))?;
                (Metric::Latency(which, quantile), ns)
            }
        };
        Ok(Threshold { text: text.to_string(), metric, op, bound })
    }
}

fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

fn latency_metric(name: &str) -> Option<(usize, f64)> {
    let (which, q) = match name.split_once('.') {
        Some(("uncorrected", q)) => (1, q),
        Some(("lag", q)) => (2, q),
        Some(("wait", q)) => (3, q),
        _ => (0, name),
    };
    let quantile = match q {
        "p50" => 0.5,
        "p90" => 0.9,
        "p99" => 0.99,
        "p99.9" | "p999" => 0.999,
        "p99.99" | "p9999" => 0.9999,
        "max" => 1.0,
        _ => return None,
    };
    Some((which, quantile))
}

impl Threshold {
    /// Parses a threshold for `seda run`, refusing a metric its summary does not measure.
    pub fn for_run(text: &str) -> Result<Threshold, String> {
        let threshold: Threshold = text.parse()?;
        match threshold.metric {
            Metric::Latency(which, q) if which != 0 || q == 0.9999 => {
                Err(format!("`{text}`: seda run measures end-to-end latency at p50, p90, p99, p99.9 and max only"))
            }
            Metric::ErrorShare(Some(_)) | Metric::ErrorCount(Some(_)) => {
                Err(format!("`{text}`: seda run counts requests that did not complete as errors, of no kind"))
            }
            _ => Ok(()),
        }?;
        Ok(threshold)
    }

    /// Checks the threshold against `r`. A latency `r` does not measure fails the threshold.
    pub fn check(&self, r: &dyn Measured) -> Verdict {
        // (compared with the bound, reported in `unit`, the unit, shown to people)
        let (actual, reported, unit, shown) = match self.metric {
            Metric::Latency(which, q) => match r.latency_ns(which, q) {
                Some(ns) => (ns as f64, ns as f64 / 1e3, "us", format_ns(ns)),
                None => (f64::NAN, f64::NAN, "us", "not measured".to_owned()),
            },
            Metric::ErrorShare(kind) => {
                let errors = r.errors(kind);
                let share = if r.requests() == 0 { 0.0 } else { errors as f64 / r.requests() as f64 };
                (share, share * 100.0, "%", format!("{:.4}%", share * 100.0))
            }
            Metric::ErrorCount(kind) => {
                let errors = r.errors(kind);
                (errors as f64, errors as f64, "errors", errors.to_string())
            }
            Metric::Rate => (r.rate(), r.rate(), "requests/s", format!("{:.1}/s", r.rate())),
        };
        let passed = match self.op {
            Op::Lt => actual < self.bound,
            Op::Le => actual <= self.bound,
            Op::Gt => actual > self.bound,
            Op::Ge => actual >= self.bound,
        };
        Verdict { threshold: self.text.clone(), actual: reported, unit, shown, passed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Threshold {
        s.parse().unwrap()
    }

    #[test]
    fn thresholds_parse_with_units_and_shares() {
        assert_eq!(
            (parse("p99<5ms").metric, parse("p99<5ms").op, parse("p99<5ms").bound),
            (Metric::Latency(0, 0.99), Op::Lt, 5e6)
        );
        assert_eq!(parse("uncorrected.p99.9 <= 250us").metric, Metric::Latency(1, 0.999));
        assert_eq!(parse("uncorrected.p99.9 <= 250us").bound, 250e3);
        assert_eq!(parse("lag.max<1s").metric, Metric::Latency(2, 1.0));
        assert_eq!((parse("errors<0.1%").metric, parse("errors<0.1%").bound), (Metric::ErrorShare(None), 0.001));
        assert_eq!((parse("errors<=3").metric, parse("errors<=3").op), (Metric::ErrorCount(None), Op::Le));
        let status = parse("errors.unexpected_status<1%");
        assert_eq!((status.metric, status.bound), (Metric::ErrorShare(Some(ErrorKind::UnexpectedStatus)), 0.01));
        assert_eq!(parse("errors.missing_text<=0").metric, Metric::ErrorCount(Some(ErrorKind::MissingText)));
        assert_eq!((parse("rate>=99k").metric, parse("rate>=99k").bound), (Metric::Rate, 99_000.0));
    }

    #[test]
    fn malformed_thresholds_say_what_is_wrong() {
        let err = |s: &str| s.parse::<Threshold>().unwrap_err();
        assert!(err("p99").contains("expected METRIC<VALUE"));
        assert!(err("p99<5").contains("needs a unit"));
        assert!(err("p98<5ms").contains("unknown metric `p98`"));
        assert!(err("errors<lots%").contains("not a percentage"));
        assert!(err("errors.oops<1").contains("unknown error kind in `errors.oops` (known: connect, timeout"));
        assert!(err("rate>fast").contains("rate"));
    }
}
