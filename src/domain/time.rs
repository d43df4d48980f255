//! Instants as Unix milliseconds, so the domain can compare and add time without a clock.

use std::fmt;

/// An instant in UTC, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `ms` milliseconds (saturating).
    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// RFC 3339 in UTC with whole seconds, as the API writes timestamps.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        match ::time::OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => {
                let d = t.date();
                let tm = t.time();
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                    d.year(),
                    u8::from(d.month()),
                    d.day(),
                    tm.hour(),
                    tm.minute(),
                    tm.second()
                )
            }
            Err(_) => "1970-01-01T00:00:00Z".to_owned(),
        }
    }
}

impl Timestamp {
    /// Parses an RFC 3339 instant (`2026-11-23T17:41:36Z`, any offset, fractions kept to the
    /// millisecond); `None` for anything else.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let t =
            ::time::OffsetDateTime::parse(text, &::time::format_description::well_known::Rfc3339)
                .ok()?;
        i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000))
            .ok()
            .map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc_seconds() {
        assert_eq!(
            Timestamp(1_795_455_696_789).to_rfc3339(),
            "2026-11-23T17:41:36Z"
        );
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_what_it_writes_and_refuses_the_rest() {
        let t = Timestamp(1_795_455_696_000);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-23T18:41:36.5+01:00"),
            Some(Timestamp(1_795_455_696_500))
        );
        for bad in ["", "yesterday", "2026-11-23", "2026-13-01T00:00:00Z"] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }
}
