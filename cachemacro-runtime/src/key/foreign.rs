//! [`KeyPart`] for types of other crates, each behind the cargo feature of that crate's name.
//!
//! Dates and times are written as ISO 8601 / RFC 3339 text, escaped like any text (`:` is
//! `%3A`), the same for `chrono` and `time`: `2024-05-17`, `13%3A05%3A00.250`,
//! `2024-05-17T13%3A05%3A00Z`, `2024-05-17T15%3A05%3A00+02%3A00`. The fraction of a second
//! has 0, 3, 6 or 9 digits, as few as show it exactly; a year outside 0..=9999 has a sign;
//! an offset is `Z` when zero and shows its seconds when it has any. So the text is a
//! function of every field of the value, and two different values never share one.

#[cfg(any(feature = "chrono", feature = "time"))]
use super::write_text;
#[cfg(any(feature = "chrono", feature = "time", feature = "uuid"))]
use super::KeyPart;

/// A `fmt::Write` that escapes what it is given as [`write_text`] does, so that formatted
/// text reaches the key without a temporary `String`.
#[cfg(any(feature = "chrono", feature = "time"))]
struct Escaping<'a>(&'a mut String);

#[cfg(any(feature = "chrono", feature = "time"))]
impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        write_text(s, self.0);
        Ok(())
    }
}

/// `2024-05-17`; years outside 0..=9999 carry a sign (`+10000-01-01`, `-0044-03-15`).
#[cfg(any(feature = "chrono", feature = "time"))]
fn write_date(year: i32, month: u32, day: u32, out: &mut String) {
    use std::fmt::Write as _;
    let mut w = Escaping(out);
    // Writing to a String cannot fail.
    let _ = match year {
        0..=9999 => write!(w, "{year:04}"),
        10000.. => write!(w, "+{year}"),
        _ => write!(w, "-{:04}", year.unsigned_abs()),
    };
    let _ = write!(w, "-{month:02}-{day:02}");
}

/// `13:05:00`, then the fraction in 3, 6 or 9 digits when it is not zero. `second` may be 60
/// (a leap second).
#[cfg(any(feature = "chrono", feature = "time"))]
fn write_time(hour: u32, minute: u32, second: u32, nanos: u32, out: &mut String) {
    use std::fmt::Write as _;
    let mut w = Escaping(out);
    let _ = write!(w, "{hour:02}:{minute:02}:{second:02}");
    let _ = if nanos == 0 {
        Ok(())
    } else if nanos.is_multiple_of(1_000_000) {
        write!(w, ".{:03}", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        write!(w, ".{:06}", nanos / 1_000)
    } else {
        write!(w, ".{nanos:09}")
    };
}

/// `Z`, `+02:00`, `-03:30`, or `+00:01:15` for an offset with seconds.
#[cfg(any(feature = "chrono", feature = "time"))]
fn write_offset(seconds: i32, out: &mut String) {
    use std::fmt::Write as _;
    if seconds == 0 {
        out.push('Z');
        return;
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let mut w = Escaping(out);
    let _ = write!(w, "{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60);
    if !abs.is_multiple_of(60) {
        let _ = write!(w, ":{:02}", abs % 60);
    }
}

#[cfg(feature = "uuid")]
/// Hyphenated, lower case: `67e55044-10b1-426f-9247-bb680e5fe0c8`.
impl KeyPart for uuid::Uuid {
    #[inline]
    fn write_key_part(&self, out: &mut String) {
        let mut buf = uuid::Uuid::encode_buffer();
        out.push_str(self.hyphenated().encode_lower(&mut buf));
    }
}

#[cfg(feature = "chrono")]
mod chrono_impls {
    use chrono::{Datelike, Offset, TimeZone, Timelike};

    use super::{write_date, write_offset, write_time, KeyPart};

    fn date(d: &chrono::NaiveDate, out: &mut String) {
        write_date(d.year(), d.month(), d.day(), out);
    }

    fn time(t: &chrono::NaiveTime, out: &mut String) {
        // chrono keeps a leap second as second 59 with a nanosecond field of 1e9 or more.
        let (second, nanos) = match t.nanosecond() {
            n if n >= 1_000_000_000 => (t.second() + 1, n - 1_000_000_000),
            n => (t.second(), n),
        };
        write_time(t.hour(), t.minute(), second, nanos, out);
    }

    /// `2024-05-17`.
    impl KeyPart for chrono::NaiveDate {
        fn write_key_part(&self, out: &mut String) {
            date(self, out);
        }
    }

    /// `13%3A05%3A00.250` (`13:05:00.250`, escaped).
    impl KeyPart for chrono::NaiveTime {
        fn write_key_part(&self, out: &mut String) {
            time(self, out);
        }
    }

    /// `2024-05-17T13%3A05%3A00` (`2024-05-17T13:05:00`, escaped).
    impl KeyPart for chrono::NaiveDateTime {
        fn write_key_part(&self, out: &mut String) {
            date(&self.date(), out);
            out.push('T');
            time(&self.time(), out);
        }
    }

    /// The local date and time, then the offset: `2024-05-17T13%3A05%3A00Z`,
    /// `2024-05-17T15%3A05%3A00+02%3A00`.
    impl<Tz: TimeZone> KeyPart for chrono::DateTime<Tz> {
        fn write_key_part(&self, out: &mut String) {
            self.naive_local().write_key_part(out);
            write_offset(self.offset().fix().local_minus_utc(), out);
        }
    }
}

#[cfg(feature = "time")]
mod time_impls {
    use super::{write_date, write_offset, write_time, KeyPart};

    fn date(d: &time::Date, out: &mut String) {
        let (year, month, day) = d.to_calendar_date();
        write_date(year, u32::from(u8::from(month)), u32::from(day), out);
    }

    fn time(t: &time::Time, out: &mut String) {
        let (h, m, s, nanos) = t.as_hms_nano();
        write_time(u32::from(h), u32::from(m), u32::from(s), nanos, out);
    }

    /// `2024-05-17`.
    impl KeyPart for time::Date {
        fn write_key_part(&self, out: &mut String) {
            date(self, out);
        }
    }

    /// `13%3A05%3A00.250` (`13:05:00.250`, escaped).
    impl KeyPart for time::Time {
        fn write_key_part(&self, out: &mut String) {
            time(self, out);
        }
    }

    /// `2024-05-17T13%3A05%3A00` (`2024-05-17T13:05:00`, escaped).
    impl KeyPart for time::PrimitiveDateTime {
        fn write_key_part(&self, out: &mut String) {
            date(&self.date(), out);
            out.push('T');
            time(&self.time(), out);
        }
    }

    /// The local date and time, then the offset: `2024-05-17T13%3A05%3A00Z`,
    /// `2024-05-17T15%3A05%3A00+02%3A00`.
    impl KeyPart for time::OffsetDateTime {
        fn write_key_part(&self, out: &mut String) {
            date(&self.date(), out);
            out.push('T');
            time(&self.time(), out);
            write_offset(self.offset().whole_seconds(), out);
        }
    }
}

#[cfg(all(test, feature = "chrono", feature = "time", feature = "uuid"))]
mod tests {
    use super::KeyPart;

    fn enc<T: KeyPart + ?Sized>(v: &T) -> String {
        let mut s = String::new();
        v.write_key_part(&mut s);
        s
    }

    #[test]
    fn chrono_and_time_write_the_same_text() {
        use chrono::TimeZone;
        let c = chrono::FixedOffset::east_opt(2 * 3600)
            .unwrap()
            .with_ymd_and_hms(2024, 5, 17, 15, 5, 0)
            .unwrap()
            + chrono::Duration::milliseconds(250);
        let t = time::OffsetDateTime::new_in_offset(
            time::Date::from_calendar_date(2024, time::Month::May, 17).unwrap(),
            time::Time::from_hms_milli(15, 5, 0, 250).unwrap(),
            time::UtcOffset::from_hms(2, 0, 0).unwrap(),
        );
        assert_eq!(enc(&c), "2024-05-17T15%3A05%3A00.250+02%3A00");
        assert_eq!(enc(&t), enc(&c));
        assert_eq!(
            enc(&chrono::Utc.with_ymd_and_hms(2024, 5, 17, 13, 5, 0).unwrap()),
            "2024-05-17T13%3A05%3A00Z"
        );
    }

    #[test]
    fn uuids_are_hyphenated_lower_case() {
        let id = uuid::Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
        assert_eq!(enc(&id), "67e55044-10b1-426f-9247-bb680e5fe0c8");
    }
}
