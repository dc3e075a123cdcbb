//! Checks of the test harness itself that need no engine: if these are
//! wrong, the ordering assertions of the deploy tests mean nothing.

mod common;

use common::parse_rfc3339_nanos;

#[test]
fn docker_times_parse_to_nanoseconds_since_the_epoch() {
    assert_eq!(parse_rfc3339_nanos("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339_nanos("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
    // `date -u -d 2026-11-22T22:22:12Z +%s` = 1795386132
    assert_eq!(parse_rfc3339_nanos("2026-11-22T22:22:12.630377075Z"), Some(1_795_386_132_630_377_075));
    // The same instant written with an offset.
    assert_eq!(parse_rfc3339_nanos("2026-11-22T23:22:12.630377075+01:00"), Some(1_795_386_132_630_377_075));
    assert_eq!(parse_rfc3339_nanos("2026-11-22T20:52:12.630377075-01:30"), Some(1_795_386_132_630_377_075));
    // A leap day, and the zero time Docker prints for "never".
    assert_eq!(parse_rfc3339_nanos("2024-02-29T00:00:00Z"), Some(1_709_164_800_000_000_000));
    assert!(parse_rfc3339_nanos("0001-01-01T00:00:00Z").is_some_and(|t| t < 0));
}

#[test]
fn things_that_are_not_times_are_refused() {
    for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-22", "2026-11-22T22:22Z", "2026-11-22T22:22:12.x1Z"] {
        assert_eq!(parse_rfc3339_nanos(bad), None, "{bad:?}");
    }
}
