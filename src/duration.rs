//! Durations as people type them on a command line: `500ms`, `5s`, `2m`,
//! `1h`, or a bare number of seconds (`1.5`). Pure parsing, no I/O.

use std::time::Duration;

use crate::error::Error;

/// Parses `text` as a duration; `what` names the option in the message
/// (`--grace`), so that a bad value says where it came from in one line.
pub fn parse(text: &str, what: &str) -> Result<Duration, Error> {
    let bad = |why: &str| Error::Usage(format!("invalid {what} '{text}': {why}"));
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(bad("a number with an optional unit (500ms, 5s, 2m, 1h)"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| bad("a number with an optional unit (500ms, 5s, 2m, 1h)"))?;
    let seconds_per_unit = match unit {
        "" | "s" | "sec" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad("the unit must be ms, s, m or h")),
    };
    let seconds = value * seconds_per_unit;
    // A week is far beyond anything a wait or a grace period needs, and
    // keeps the arithmetic on deadlines far from overflowing.
    if !seconds.is_finite() || seconds > 7.0 * 24.0 * 3600.0 {
        return Err(bad("too long (at most a week)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration as people read it: `250ms`, `1.5s`, `2m`.
pub fn display(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units_and_bare_seconds() {
        assert_eq!(parse("500ms", "--t").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("5s", "--t").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("2m", "--t").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("3", "--t").unwrap(), Duration::from_secs(3));
        assert_eq!(parse("1.5", "--t").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("0", "--t").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_what_is_not_a_duration_in_one_line() {
        for text in ["", "s", "5x", "-1", "1e9", "5 s s", "9999999h", "1.2.3"] {
            let err = parse(text, "--timeout").unwrap_err().to_string();
            assert!(err.starts_with("invalid --timeout"), "{text}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn shows_durations_shortly() {
        assert_eq!(display(Duration::from_millis(250)), "250ms");
        assert_eq!(display(Duration::from_secs(5)), "5s");
        assert_eq!(display(Duration::from_secs(120)), "2m");
        assert_eq!(display(Duration::from_millis(1500)), "1.5s");
    }
}
