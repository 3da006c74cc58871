//! Human units for scenario files: rates ("100mbit"), durations ("20ms"), sizes
//! ("64kb"), queue limits ("100 packets") and probabilities ("1%"), with errors that
//! say what was expected.
//!
//! Units follow `tc`/netem, which readers of network experiments know: rates are SI
//! bits per second (`kbit` = 1000 bit/s); sizes are bytes with binary multiples
//! (`kb` = 1024 bytes). `mbps` is refused because `tc` reads it as megabytes per second
//! while most people mean megabits.

use mptcp_proto::Duration;

use crate::link::Rate;

/// A value that does not parse, with a hint. Displays as
/// `"'10 mbps' is not a rate; try '10mbit'"`; callers prefix the field name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not {what}; {hint}")]
pub struct UnitError {
    pub input: String,
    pub what: &'static str,
    pub hint: String,
}

fn err(input: &str, what: &'static str, hint: impl Into<String>) -> UnitError {
    UnitError {
        input: input.to_owned(),
        what,
        hint: hint.into(),
    }
}

/// Split "12.5 mbit" into (12.5, "mbit"); the unit is lower-cased.
fn split(input: &str) -> Option<(f64, String, &str)> {
    let s = input.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let digits = &s[..end];
    if digits.is_empty() {
        return None;
    }
    let number: f64 = digits.replace('_', "").parse().ok()?;
    if !number.is_finite() {
        return None;
    }
    Some((number, s[end..].trim().to_ascii_lowercase(), digits))
}

/// A rate: `bit`, `kbit`, `mbit`, `gbit`, `tbit` (optionally `/s`, or `bits`).
pub fn parse_rate(input: &str) -> Result<Rate, UnitError> {
    const WHAT: &str = "a rate";
    let Some((number, unit, digits)) = split(input) else {
        return Err(err(input, WHAT, "write a number and a unit, e.g. '10mbit'"));
    };
    let unit = unit.trim_end_matches("/s");
    let unit = unit
        .strip_suffix('s')
        .filter(|u| u.ends_with("bit"))
        .unwrap_or(unit);
    let multiplier: f64 = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "" => return Err(err(input, WHAT, format!("add a unit, e.g. '{digits}mbit'"))),
        other => {
            let prefix = match other.chars().next() {
                Some(p @ ('k' | 'm' | 'g' | 't')) => p.to_string(),
                _ => "m".to_owned(),
            };
            return Err(err(input, WHAT, format!("try '{digits}{prefix}bit'")));
        }
    };
    let bps = number * multiplier;
    if bps > u64::MAX as f64 {
        return Err(err(input, WHAT, "it is too large"));
    }
    Ok(Rate(bps.round() as u64))
}

/// A duration: `us`, `ms`, `s`, `min`, `h` (and spelled-out forms). A bare `0` is zero.
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    const WHAT: &str = "a duration";
    let Some((number, unit, digits)) = split(input) else {
        return Err(err(input, WHAT, "write a number and a unit, e.g. '20ms'"));
    };
    let micros_per: f64 = match unit.as_str() {
        "us" | "µs" | "usec" | "usecs" => 1.0,
        "ms" | "msec" | "msecs" => 1e3,
        "s" | "sec" | "secs" | "second" | "seconds" => 1e6,
        "min" | "mins" | "minute" | "minutes" => 60e6,
        "h" | "hour" | "hours" => 3600e6,
        "" if number == 0.0 => 0.0,
        "" => return Err(err(input, WHAT, format!("add a unit, e.g. '{digits}ms'"))),
        "ns" => return Err(err(input, WHAT, "the simulator's resolution is 1us")),
        _ => return Err(err(input, WHAT, format!("try '{digits}ms' or '{digits}s'"))),
    };
    let micros = number * micros_per;
    if micros > u64::MAX as f64 {
        return Err(err(input, WHAT, "it is too large"));
    }
    Ok(Duration::from_micros(micros.round() as u64))
}

/// A size in bytes: `b`, `kb`/`k`/`kib` (1024), `mb`/`m`/`mib`, `gb`/`g`/`gib`.
pub fn parse_size(input: &str) -> Result<u64, UnitError> {
    const WHAT: &str = "a size";
    let Some((number, unit, digits)) = split(input) else {
        return Err(err(input, WHAT, "write a number and a unit, e.g. '64kb'"));
    };
    let multiplier: f64 = match unit.as_str() {
        "" | "b" | "byte" | "bytes" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(err(input, WHAT, format!("try '{digits}b' or '{digits}kb'"))),
    };
    Ok((number * multiplier).round() as u64)
}

/// Queue limits: packets, bytes, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLimit {
    pub packets: Option<usize>,
    pub bytes: Option<usize>,
}

/// `"100 packets"`, `"100p"`, `"64kb"`, `"100 packets, 150kb"` or `"unlimited"`.
pub fn parse_queue(input: &str) -> Result<QueueLimit, UnitError> {
    const WHAT: &str = "a queue limit";
    let mut limit = QueueLimit::default();
    if input.trim().eq_ignore_ascii_case("unlimited") {
        return Ok(limit);
    }
    for part in input.split([',', '+']) {
        let Some((number, unit, _)) = split(part) else {
            return Err(err(
                input,
                WHAT,
                "try '100 packets', '64kb' or both, comma-separated",
            ));
        };
        match unit.as_str() {
            "p" | "pkt" | "pkts" | "packet" | "packets" => {
                if number.fract() != 0.0 {
                    return Err(err(input, WHAT, "a packet count is a whole number"));
                }
                limit.packets = Some(number as usize);
            }
            _ => {
                let bytes = parse_size(part).map_err(|e| err(input, WHAT, e.hint))?;
                limit.bytes = Some(bytes as usize);
            }
        }
    }
    Ok(limit)
}

/// A probability as a fraction (`0.01`) or a percentage (`"1%"`).
pub fn parse_probability_str(input: &str) -> Result<f64, UnitError> {
    const WHAT: &str = "a probability";
    let s = input.trim();
    let (number, scale) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (s, 1.0),
    };
    let p = number.parse::<f64>().map_err(|_| {
        err(
            input,
            WHAT,
            "write a fraction like 0.01 or a percentage like '1%'",
        )
    })? / scale;
    check_probability(p).map_err(|_| err(input, WHAT, "it must be between 0 and 1 (0% and 100%)"))
}

pub(crate) fn check_probability(p: f64) -> Result<f64, ()> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100mbit"), Ok(Rate::mbit(100)));
        assert_eq!(parse_rate("1gbit"), Ok(Rate::gbit(1)));
        assert_eq!(parse_rate("1.5 Mbit/s"), Ok(Rate(1_500_000)));
        assert_eq!(parse_rate("64kbits"), Ok(Rate(64_000)));
        assert_eq!(parse_rate("9600bit"), Ok(Rate(9600)));
        assert_eq!(
            parse_rate("10 mbps").unwrap_err().to_string(),
            "'10 mbps' is not a rate; try '10mbit'"
        );
        assert_eq!(
            parse_rate("100").unwrap_err().to_string(),
            "'100' is not a rate; add a unit, e.g. '100mbit'"
        );
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2 min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("20").unwrap_err().to_string(),
            "'20' is not a duration; add a unit, e.g. '20ms'"
        );
        assert_eq!(
            parse_duration("20 fortnights").unwrap_err().to_string(),
            "'20 fortnights' is not a duration; try '20ms' or '20s'"
        );
        assert!(parse_duration("-5ms").is_err());
    }

    #[test]
    fn sizes_and_queues() {
        assert_eq!(parse_size("64kb"), Ok(65_536));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        assert_eq!(
            parse_queue("100 packets"),
            Ok(QueueLimit {
                packets: Some(100),
                bytes: None
            })
        );
        assert_eq!(
            parse_queue("64kb"),
            Ok(QueueLimit {
                packets: None,
                bytes: Some(65_536)
            })
        );
        assert_eq!(
            parse_queue("50p, 100kb"),
            Ok(QueueLimit {
                packets: Some(50),
                bytes: Some(102_400)
            })
        );
        assert_eq!(parse_queue("unlimited"), Ok(QueueLimit::default()));
        assert_eq!(
            parse_queue("lots").unwrap_err().to_string(),
            "'lots' is not a queue limit; try '100 packets', '64kb' or both, comma-separated"
        );
        assert!(parse_queue("1.5 packets").is_err());
    }

    #[test]
    fn probabilities() {
        assert_eq!(parse_probability_str("1%"), Ok(0.01));
        assert_eq!(parse_probability_str("0.25"), Ok(0.25));
        assert_eq!(
            parse_probability_str("150%").unwrap_err().to_string(),
            "'150%' is not a probability; it must be between 0 and 1 (0% and 100%)"
        );
    }

    proptest! {
        #[test]
        fn unit_parsers_never_panic(s in "\\PC{0,20}") {
            let _ = parse_rate(&s);
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
            let _ = parse_queue(&s);
            let _ = parse_probability_str(&s);
        }
    }
}
