//! The access table's cells, formatted once for the text and HTML reports
//! (each escapes the values for its own output): counts, and duration
//! percentiles in milliseconds.

use super::summary::Summary;

/// Nearest-rank percentile of sorted `values`: the smallest value with at
/// least `p` percent of the values at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Milliseconds with at most three decimals, without trailing zeros.
pub fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) => {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// Formatted rows of the access table, shared by the text and HTML reports
/// (each escapes the values for its own output).
pub fn access_rows(s: &Summary) -> Vec<[String; 10]> {
    s.access
        .iter()
        .map(|((source, destination, route), a)| {
            let c = &a.counts;
            [
                source.clone(),
                destination.clone(),
                route.clone(),
                c.total.to_string(),
                c.allowed.to_string(),
                c.denied.to_string(),
                c.error.to_string(),
                c.violations.to_string(),
                fmt_ms(percentile(&a.durations, 50.0)),
                fmt_ms(percentile(&a.durations, 99.0)),
            ]
        })
        .collect()
}

pub const ACCESS_HEADER: [&str; 10] = [
    "SOURCE",
    "DESTINATION",
    "ROUTE",
    "REQUESTS",
    "ALLOWED",
    "DENIED",
    "ERROR",
    "VIOLATIONS",
    "P50 MS",
    "P99 MS",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn milliseconds_are_printed_without_noise() {
        assert_eq!(fmt_ms(Some(50.0)), "50");
        assert_eq!(fmt_ms(Some(1.2344)), "1.234");
        assert_eq!(fmt_ms(Some(0.5)), "0.5");
        assert_eq!(fmt_ms(None), "-");
    }
}
