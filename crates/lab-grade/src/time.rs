//! UTC timestamps as evidence and sheets write them.

use std::time::{SystemTime, UNIX_EPOCH};

/// UTC time as RFC 3339 with seconds (`2026-07-01T12:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let (secs, _) = split(t);
    let (date, hms) = civil(secs);
    format!("{date}T{hms}Z")
}

/// UTC time as RFC 3339 with milliseconds (`2026-07-01T12:00:00.250Z`).
pub fn rfc3339_millis(t: SystemTime) -> String {
    let (secs, millis) = split(t);
    let (date, hms) = civil(secs);
    format!("{date}T{hms}.{millis:03}Z")
}

fn split(t: SystemTime) -> (u64, u32) {
    t.duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs(), d.subsec_millis()))
        .unwrap_or((0, 0))
}

fn civil(secs: u64) -> (String, String) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn utc_times_with_and_without_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_782_907_200_250);
        assert_eq!(rfc3339(t), "2026-07-01T12:00:00Z");
        assert_eq!(rfc3339_millis(t), "2026-07-01T12:00:00.250Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800);
        assert_eq!(rfc3339(leap), "2024-02-29T00:00:00Z");
    }
}
