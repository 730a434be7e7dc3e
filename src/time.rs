//! Timestamps as text: `YYYY-MM-DD` or RFC 3339 in, RFC 3339 UTC out, microseconds since
//! 1970-01-01T00:00:00Z in between (the stored [`crate::schema::Value::Timestamp`]).
//!
//! One parser for every place that reads a timestamp (filter literals, JSON-lines metadata,
//! sidecars), below all of them.

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Parses `YYYY-MM-DD` or RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; a missing zone is
/// UTC) to microseconds since 1970-01-01T00:00:00Z.
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let date = s.get(..10)?;
    let (y, m, d) = (digits(date.get(..4)?)?, digits(date.get(5..7)?)?, digits(date.get(8..10)?)?);
    if date.as_bytes().get(4) != Some(&b'-') || date.as_bytes().get(7) != Some(&b'-') || !(1..=12).contains(&m) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if d < 1 || d > *mdays.get((m - 1) as usize)? {
        return None;
    }
    let mut micros = days_from_civil(y, m, d) * 86_400_000_000;
    let rest = s.get(10..)?;
    if rest.is_empty() {
        return Some(micros);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hh, mm, ss) = (digits(rest.get(..2)?)?, digits(rest.get(3..5)?)?, digits(rest.get(6..8)?)?);
    if rest.as_bytes().get(2) != Some(&b':') || rest.as_bytes().get(5) != Some(&b':') || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    micros += ((hh * 60 + mm) * 60 + ss) * 1_000_000;
    let mut tail = rest.get(8..)?;
    if let Some(frac) = tail.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let f = frac.get(..n)?;
        let mut us = 0i64;
        for (i, c) in f.bytes().take(6).enumerate() {
            us += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
        }
        micros += us;
        tail = frac.get(n..)?;
    }
    match tail {
        "" | "Z" | "z" => Some(micros),
        z => {
            let sign = match z.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (digits(z.get(1..3)?)?, digits(z.get(4..6)?)?);
            if z.len() != 6 || z.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            Some(micros - sign * (oh * 3600 + om * 60) * 1_000_000)
        }
    }
}

/// Formats microseconds since 1970 as RFC 3339 UTC.
#[must_use]
pub fn format_timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("1970-01-02T00:00:01Z"), Some(86_401_000_000));
        assert_eq!(parse_timestamp("2021-06-01T12:00:00+02:00"), parse_timestamp("2021-06-01T10:00:00Z"));
        assert_eq!(parse_timestamp("2020-02-30"), None);
        assert_eq!(parse_timestamp("Port"), None);
        assert_eq!(
            parse_timestamp("2021-06-01T10:00:00.5Z"),
            Some(parse_timestamp("2021-06-01T10:00:00Z").unwrap() + 500_000)
        );
        for t in ["2021-06-01T10:00:00Z", "1969-12-31T23:59:59Z", "2000-02-29T00:00:00Z"] {
            assert_eq!(format_timestamp(parse_timestamp(t).unwrap()), t);
        }
    }
}
