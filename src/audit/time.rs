//! RFC 3339 timestamps with microseconds (`2026-11-21T14:03:05.123456Z`),
//! without a date-time crate: the filter only ever needs UTC.

/// Formats nanoseconds since the Unix epoch.
pub fn format_rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let micros = (nanos % 1_000_000_000) / 1_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    // Written digit by digit: one per request, and `format!` costs 10×.
    let mut out = String::with_capacity(27);
    let mut digits = |v: u64, width: u32, then: char| {
        for i in (0..width).rev() {
            out.push(char::from(b'0' + (v / 10u64.pow(i) % 10) as u8));
        }
        out.push(then);
    };
    // u64 nanoseconds end in 2554: four digits always suffice.
    digits(u64::try_from(y).unwrap_or(0), 4, '-');
    digits(u64::from(m), 2, '-');
    digits(u64::from(d), 2, 'T');
    digits(rem / 3600, 2, ':');
    digits((rem % 3600) / 60, 2, ':');
    digits(rem % 60, 2, '.');
    digits(micros, 6, 'Z');
    out
}

/// Parses what [`format_rfc3339`] writes (any fraction length up to 9 digits).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let rest = s.get(19..)?;
    let rest = rest.strip_suffix('Z')?;
    let frac_nanos = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        None => return None,
        Some(f) if f.is_empty() || f.len() > 9 || !f.bytes().all(|c| c.is_ascii_digit()) => {
            return None
        }
        Some(f) => f.parse::<u64>().ok()? * 10u64.pow(9 - f.len() as u32),
    };
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    if days < 0 {
        return None;
    }
    Some(((days as u64) * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000_000 + frac_nanos)
}

/// Parses an HTTP date in its preferred form, IMF-fixdate (RFC 9110 §5.6.7:
/// `Sun, 06 Nov 1994 08:49:37 GMT`), to nanoseconds since the Unix epoch.
/// The two obsolete forms are not read: a caller treats them as absent.
pub fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_weekday, rest) = s.trim().split_once(", ")?;
    let mut parts = rest.split(' ');
    let (day, month, year, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() || zone != "GMT" || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let m = MONTHS.iter().position(|&name| name == month)? as u32 + 1;
    let (d, y) = (day.parse::<u32>().ok()?, year.parse::<i64>().ok()?);
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| if p.len() == 2 { p.parse().ok() } else { None })
        .collect::<Option<_>>()?;
    let [h, mi, se] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&d) || *h > 23 || *mi > 59 || *se > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000_000)
}

// Howard Hinnant's civil-calendar algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_the_format_string_would() {
        let mut n = 1u64;
        for _ in 0..5000 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let secs = n / 1_000_000_000;
            let (y, m, d) = civil_from_days((secs / 86_400) as i64);
            let rem = secs % 86_400;
            let want = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
                rem / 3600,
                (rem % 3600) / 60,
                rem % 60,
                (n % 1_000_000_000) / 1_000
            );
            assert_eq!(format_rfc3339(n), want);
        }
        assert_eq!(format_rfc3339(u64::MAX), "2554-07-21T23:34:33.709551Z");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_rfc3339(1_795_269_785_123_456_789),
            "2026-11-21T14:03:05.123456Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn parses_imf_fixdate_http_dates_only() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000_000_000)
        );
        assert_eq!(
            parse_http_date("Sat, 21 Nov 2026 14:03:05 GMT").map(format_rfc3339),
            Some("2026-11-21T14:03:05.000000Z".to_string())
        );
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_what_it_formats() {
        for n in [
            0u64,
            1_795_269_785_123_456_000,
            951_782_400_000_001_000,
            4_102_444_799_999_999_000,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(n)), Some(n));
        }
        assert_eq!(
            parse_rfc3339("2026-11-21T14:03:05Z"),
            Some(1_795_269_785_000_000_000)
        );
        assert_eq!(parse_rfc3339("2026-11-21 14:03:05Z"), None);
        assert_eq!(parse_rfc3339("2026-13-21T14:03:05Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
