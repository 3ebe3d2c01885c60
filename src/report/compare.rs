//! Two runs side by side: each row of the table for run A, then for run B, then the change from
//! A to B, absolute and in per cent, to see what a config change did.

use std::fmt;

use crate::metrics::Percentiles;

use super::table::{Row, RunTable};

pub struct Comparison<'a> {
    pub a: &'a RunTable,
    pub b: &'a RunTable,
}

/// Name, metric and which line: the columns left of the stats.
const LEFT: usize = 16 + 1 + 8 + 1 + 8;

impl fmt::Display for Comparison<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "A = {}", self.a.heading)?;
        writeln!(f, "B = {}", self.b.heading)?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<LEFT$} {:>10} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
            "latency (us)", "count", "rate/s", "p50", "p90", "p99", "p99.9", "max", "rejected", "failed"
        )?;
        // Rows in A's order, then those only B has.
        let keys = self
            .a
            .rows
            .iter()
            .map(Row::key)
            .chain(self.b.rows.iter().map(Row::key).filter(|(n, m)| self.a.row(n, m).is_none()));
        let mut previous = "";
        for (name, metric) in keys {
            let shown = if name == previous { "" } else { name };
            previous = name;
            let (a, b) = (self.a.row(name, metric), self.b.row(name, metric));
            for (which, row) in [("A", a), ("B", b)] {
                let label = format!("{:<16} {:<8} {:<8}", if which == "A" { shown } else { "" }, metric, which);
                match row {
                    Some(r) => stats(f, &label, r)?,
                    None => writeln!(f, "{label} (not in this run)")?,
                }
            }
            if let (Some(a), Some(b)) = (a, b) {
                change(f, a, b)?;
            }
        }
        for (which, table) in [("A", self.a), ("B", self.b)] {
            if let Some(tail) = &table.tail {
                writeln!(f, "{which} {tail}")?;
            }
        }
        Ok(())
    }
}

fn stats(f: &mut fmt::Formatter<'_>, label: &str, r: &Row) -> fmt::Result {
    let p = &r.latency;
    writeln!(
        f,
        "{label} {:>10} {:>12.0} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>8} {:>8}",
        p.count, r.rate, p.p50, p.p90, p.p99, p.p999, p.max, r.rejected, r.failed
    )
}

/// The stats of a row as numbers, in the table's column order.
fn columns(r: &Row) -> [f64; 9] {
    let p: &Percentiles = &r.latency;
    [p.count as f64, r.rate, p.p50, p.p90, p.p99, p.p999, p.max, r.rejected as f64, r.failed as f64]
}

/// Wider than a single run's table, for changes of a large latency with their sign.
const WIDTHS: [usize; 9] = [10, 12, 10, 10, 10, 10, 10, 8, 8];
const DECIMALS: [usize; 9] = [0, 0, 2, 2, 2, 2, 2, 0, 0];

fn change(f: &mut fmt::Formatter<'_>, a: &Row, b: &Row) -> fmt::Result {
    let (a, b) = (columns(a), columns(b));
    write!(f, "{:<LEFT$}", format!("{:<16} {:<8} {:<8}", "", "", "change"))?;
    for i in 0..a.len() {
        write!(f, " {:>+w$.d$}", b[i] - a[i], w = WIDTHS[i], d = DECIMALS[i])?;
    }
    writeln!(f)?;
    write!(f, "{:<LEFT$}", format!("{:<16} {:<8} {:<8}", "", "", "change %"))?;
    for i in 0..a.len() {
        write!(f, " {:>w$}", percent(a[i], b[i]), w = WIDTHS[i])?;
    }
    writeln!(f)
}

/// The change from `a` to `b` in per cent; `-` where `a` is 0 (no base to compare with).
pub fn percent(a: f64, b: f64) -> String {
    if a == 0.0 {
        if b == 0.0 {
            "0.0%".to_owned()
        } else {
            "-".to_owned()
        }
    } else {
        format!("{:+.1}%", 100.0 * (b - a) / a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cent_changes() {
        assert_eq!(percent(200.0, 150.0), "-25.0%");
        assert_eq!(percent(2.0, 3.0), "+50.0%");
        assert_eq!(percent(0.0, 0.0), "0.0%");
        assert_eq!(percent(0.0, 3.0), "-");
    }
}
