//! Percentile spectra in the classic four-column `.hgrm` format (HdrHistogram's
//! `outputPercentileDistribution`), which the HdrHistogram plotter reads.
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!        1.234 0.000000000000          1           1.00
//!        ...
//!       98.765 1.000000000000       5000            inf
//! #[Mean    =        2.345, StdDeviation   =        1.234]
//! #[Max     =       98.765, Total count    =         5000]
//! #[Buckets =           27, SubBuckets     =         2048]
//! ```
//!
//! Rows are printed as Java's `%12.3f %2.12f %10d %14.2f`. Java leaves the fourth column out of
//! the last row (percentile 1.0); like HdrHistogram_c, this writes `inf` there, so that every
//! data row has four columns.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// Nanoseconds to microseconds.
pub const NS_PER_US: f64 = 1_000.0;

/// Quantile ticks per half distance to 100%, as HdrHistogram's default.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Writes `h`'s percentile spectrum, its values divided by `value_unit_ratio` (e.g.
/// [`NS_PER_US`] for a histogram in nanoseconds printed in microseconds).
pub fn write<W: Write + ?Sized>(out: &mut W, h: &Histogram<u64>, value_unit_ratio: f64) -> io::Result<()> {
    writeln!(out, "{:>12} {:>14} {:>10} {:>14}", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    writeln!(out)?;
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / value_unit_ratio;
            if q < 1.0 {
                writeln!(out, "{value:12.3} {q:2.12} {total:10} {:14.2}", 1.0 / (1.0 - q))?;
            } else {
                writeln!(out, "{value:12.3} {q:2.12} {total:10} {:>14}", "inf")?;
            }
        }
    }
    let (mean, stdev) = if h.is_empty() { (0.0, 0.0) } else { (h.mean(), h.stdev()) };
    let max = if h.is_empty() { 0 } else { h.max() };
    writeln!(out, "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]", mean / value_unit_ratio, stdev / value_unit_ratio)?;
    writeln!(out, "#[Max     = {:12.3}, Total count    = {:12}]", max as f64 / value_unit_ratio, h.len())?;
    // HdrHistogram's sub-bucket count: the power of two that holds 2 * 10^sigfig.
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), sub_buckets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    fn spectrum(h: &Histogram<u64>) -> String {
        let mut out = Vec::new();
        write(&mut out, h, NS_PER_US).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_have_four_columns_and_end_at_the_max() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1_000).unwrap();
        }
        let text = spectrum(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines[1], "");
        let rows: Vec<&str> = lines[2..].iter().copied().filter(|l| !l.starts_with('#')).collect();
        assert!(rows.len() > 20);
        for row in &rows {
            assert_eq!(row.split_whitespace().count(), 4, "{row}");
        }
        let first: Vec<&str> = rows[0].split_whitespace().collect();
        assert_eq!(first[1], "0.000000000000");
        assert_eq!(first[3], "1.00");
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "10000");
        assert_eq!(last[3], "inf");
        // 10 ms in microseconds, to the histogram's precision.
        let max: f64 = last[0].parse().unwrap();
        assert!((max - 10_000.0).abs() < 10.0, "{max}");
        let footer: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("#[")).collect();
        assert_eq!(footer.len(), 3);
        assert!(footer[0].starts_with("#[Mean    = ") && footer[0].contains(", StdDeviation   = "));
        assert!(footer[1].ends_with("Total count    =        10000]"), "{}", footer[1]);
        assert!(footer[2].ends_with("SubBuckets     =         2048]"), "{}", footer[2]);
    }

    #[test]
    fn an_empty_histogram_has_the_header_and_footer_only() {
        let text = spectrum(&new_histogram());
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("Total count    =            0]"));
    }
}
