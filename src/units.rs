//! Rates and durations as people write them, shared by the command line and the config files so
//! that `20k` or `1m30s` means the same in both.

use std::time::Duration;

/// Requests per second: `2000`, `2000/s`, `1.5k`, `0.1M`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches("/s");
    let (digits, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        _ => (t, 1.0),
    };
    match digits.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r * scale),
        Ok(_) => Err(format!("rate `{s}` must be above zero")),
        Err(_) => Err(format!("rate `{s}` is not requests per second (e.g. 2000, 2000/s, 100k)")),
    }
}

/// The longest duration accepted, so that adding it to a clock reading cannot overflow.
const MAX_SECONDS: f64 = 1e9;

/// A duration: `10s`, `500ms`, `2m`, `1.5s`, `1m30s`, `1h2m`, or plain seconds (`10`). Units:
/// `h`, `m`, `s`, `ms`, `us`, `ns`; each part of a compound is a number and its unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration (e.g. 10s, 500ms, 2m, 1m30s)");
    let t = s.trim();
    if let Ok(seconds) = t.parse::<f64>() {
        return seconds_to_duration(seconds).ok_or_else(bad);
    }
    let mut total = 0.0;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let unit_len = rest[digits..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - digits);
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        let value: f64 = number.parse().map_err(|_| bad())?;
        total += value * scale;
        rest = &rest[digits + unit_len..];
    }
    seconds_to_duration(total).ok_or_else(bad)
}

fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && (0.0..MAX_SECONDS).contains(&seconds)).then(|| Duration::from_secs_f64(seconds))
}

/// A duration for people: `850 ns`, `12.3 us`, `4.56 ms`, `1.234 s`.
pub fn format_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} us", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

/// `5ms`, `250us`, `1.5s`, `800ns` in nanoseconds.
pub fn duration_ns(s: &str) -> Option<f64> {
    let (digits, scale) = [("ns", 1.0), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)]
        .iter()
        .find_map(|&(unit, scale)| s.strip_suffix(unit).map(|d| (d, scale)))?;
    digits.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).map(|v| v * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_durations_add_their_parts() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h2m3s").unwrap(), Duration::from_secs(3723));
        assert_eq!(parse_duration("1s500ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration(" 2 ").unwrap(), Duration::from_secs(2));
        for bad in ["", "m", "1x", "1m30", "s1", "1..5s", "-1s", "1e10"] {
            assert!(parse_duration(bad).unwrap_err().contains("is not a duration"), "{bad}");
        }
    }

    #[test]
    fn rates_take_a_thousand_or_a_million() {
        assert_eq!(parse_rate("20k").unwrap(), 20_000.0);
        assert_eq!(parse_rate("0.5M/s").unwrap(), 500_000.0);
        assert!(parse_rate("-3").unwrap_err().contains("above zero"));
    }
}
