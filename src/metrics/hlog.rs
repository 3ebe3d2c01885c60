//! HdrHistogram interval logs (`.hlog`, format version 1.3), which HistogramLogAnalyzer and
//! HistogramLogProcessor read:
//!
//! ```text
//! #[Histogram log format version 1.3]
//! #[StartTime: 1700000000.123 (seconds since epoch), 2023-11-14T22:13:20Z]
//! #[BaseTime: 1700000000.123 (seconds since epoch)]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! #[MaxValueDivisor: 1000000.000]
//! Tag=e2e,0.000,0.050,1.234,HISTFAAA...
//! ```
//!
//! Interval start timestamps are seconds since the BaseTime (which is the StartTime). Histograms
//! are in nanoseconds; the `Interval_Max` column is in milliseconds (the max divided by 10^6,
//! Java's default `maxValueUnitRatio`), for people only. The histograms are HdrHistogram's V2
//! encoding compressed with deflate, in base64, written by the `hdrhistogram` crate.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

/// The `Interval_Max` column: nanoseconds to milliseconds.
pub const MAX_VALUE_DIVISOR: f64 = 1_000_000.0;

/// One interval histogram of the log.
pub struct Entry {
    pub tag: String,
    /// Since the log's start time.
    pub start: Duration,
    pub length: Duration,
    pub histogram: Histogram<u64>,
}

/// Writes an interval log starting at `started` with `entries` (in order of start), taking
/// them one at a time.
pub fn write<W: Write>(out: &mut W, started: SystemTime, entries: impl IntoIterator<Item = Entry>) -> io::Result<()> {
    let since_epoch = started.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs_f64();
    writeln!(out, "#[Histogram log format version 1.3]")?;
    writeln!(out, "#[StartTime: {secs:.3} (seconds since epoch), {}]", utc_date(since_epoch.as_secs()))?;
    writeln!(out, "#[BaseTime: {secs:.3} (seconds since epoch)]")?;
    writeln!(out, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")?;
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .with_max_value_divisor(MAX_VALUE_DIVISOR)
        .begin_log_with(out, &mut serializer)?;
    for e in entries {
        let tag = Tag::new(&e.tag).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` cannot be an .hlog tag (no ',' or spaces)", e.tag),
            )
        })?;
        log.write_histogram(&e.histogram, e.start, e.length, Some(tag)).map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(())
}

/// `secs` since the epoch as an ISO 8601 UTC date, e.g. `2023-11-14T22:13:20Z`.
fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3_600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc_date(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn a_log_reads_back() {
        let mut h = new_histogram();
        for v in [1_000u64, 2_000, 3_000_000] {
            h.record(v).unwrap();
        }
        let started = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let mut out = Vec::new();
        let entries = [
            Entry {
                tag: "a.service".into(),
                start: Duration::ZERO,
                length: Duration::from_millis(50),
                histogram: h.clone(),
            },
            Entry {
                tag: "e2e".into(),
                start: Duration::from_millis(50),
                length: Duration::from_millis(50),
                histogram: h.clone(),
            },
        ];
        write(&mut out, started, entries).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#[Histogram log format version 1.3]");
        assert_eq!(lines[1], "#[StartTime: 1700000000.250 (seconds since epoch), 2023-11-14T22:13:20Z]");
        assert_eq!(
            lines[3],
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        );
        assert!(lines.iter().any(|l| l.starts_with("Tag=e2e,0.050,0.050,3.00")), "{text}");

        let mut read = Vec::new();
        for entry in IntervalLogIterator::new(&out) {
            match entry.unwrap() {
                LogEntry::StartTime(t) => assert_eq!(t, Duration::from_millis(1_700_000_000_250)),
                LogEntry::BaseTime(_) => {}
                LogEntry::Interval(i) => {
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD.decode(i.encoded_histogram()).unwrap();
                    let back: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                    assert_eq!(back, h);
                    read.push((i.tag().unwrap().as_str().to_owned(), i.start_timestamp()));
                }
            }
        }
        assert_eq!(read, [("a.service".into(), Duration::ZERO), ("e2e".into(), Duration::from_millis(50))]);
    }

    #[test]
    fn a_tag_with_a_comma_is_an_error() {
        let entry = Entry {
            tag: "a,b".into(),
            start: Duration::ZERO,
            length: Duration::from_secs(1),
            histogram: new_histogram(),
        };
        assert!(write(&mut Vec::new(), UNIX_EPOCH, [entry]).is_err());
    }
}
