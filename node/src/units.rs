//! Durations and sizes as people write them in flags and files: `250ms`, `10m`, `512MiB`.
//!
//! Pure text parsers shared by the node's configuration and `.eventide.toml`, and the
//! `--min-free-disk` watermark ([`MinFreeDisk`]) that the configuration parses and the
//! runner's gate applies; they return `None` for anything they do not understand and
//! never panic.

use std::time::Duration;

/// Parses `250ms`, `2s`, `1.5s`, `10m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && (0.0..1e9).contains(&seconds)).then(|| Duration::from_secs_f64(seconds))
}

/// Parses a byte count: `512MiB`, `1GiB`, `2TiB`, `10GB`, `4096` (bytes), `1.5GiB`.
/// Binary (`KiB`, `MiB`, `GiB`, `TiB`) and decimal (`KB`, `MB`, `GB`, `TB`) units are
/// accepted, case-insensitively; values past `u64::MAX` bytes are refused.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return None,
    };
    let bytes = number * multiplier;
    // u64::MAX as f64 rounds up to 2^64, so `<` keeps the cast in range.
    (bytes.is_finite() && (0.0..u64::MAX as f64).contains(&bytes)).then(|| bytes.round() as u64)
}

/// Formats a byte count for people, in the largest binary unit that keeps it >= 1:
/// `120 MiB`, `1.5 GiB`, `512 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 || value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The free space the data dir's file system must keep for the runner to claim jobs:
/// `--min-free-disk`, a size (`1GiB`) or a percentage of the file system (`5%`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MinFreeDisk {
    Bytes(u64),
    /// Percent of the file system's total size, in (0, 100].
    Percent(f64),
}

impl MinFreeDisk {
    /// The default: room for a checkout and its output on a small disk.
    pub const DEFAULT: MinFreeDisk = MinFreeDisk::Bytes(1 << 30);

    /// Parses `512MiB`, `1GiB`, `10GB`, `0` (never pause) or `5%`.
    pub fn parse(text: &str) -> Option<MinFreeDisk> {
        let text = text.trim();
        match text.strip_suffix('%') {
            Some(number) => {
                let percent: f64 = number.trim().parse().ok()?;
                (percent.is_finite() && percent > 0.0 && percent <= 100.0)
                    .then_some(MinFreeDisk::Percent(percent))
            }
            None => parse_size(text).map(MinFreeDisk::Bytes),
        }
    }

    /// The number of free bytes required on a file system of `total` bytes.
    pub fn required(self, total: u64) -> u64 {
        match self {
            MinFreeDisk::Bytes(bytes) => bytes,
            MinFreeDisk::Percent(percent) => (total as f64 * percent / 100.0).ceil() as u64,
        }
    }

    /// How the watermark reads in a message, as a size (a percentage with its size).
    pub fn describe(self, total: u64) -> String {
        match self {
            MinFreeDisk::Bytes(bytes) => format_size(bytes),
            MinFreeDisk::Percent(percent) => {
                format!("{percent}% ({})", format_size(self.required(total)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        for bad in ["", "s", "fast", "-1s", "1x", "1e400s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("512MiB"), Some(512 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("1gib"), Some(1 << 30));
        assert_eq!(parse_size("1.5 GiB"), Some(3 << 29));
        assert_eq!(parse_size("1000TiB"), Some(1000 << 40));
        assert_eq!(parse_size("10GB"), Some(10_000_000_000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0"), Some(0));
        for bad in ["", "MiB", "lots", "-1GiB", "1PiB", "1e30", "99999999999999TiB", "1..2G"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes_format_in_the_largest_unit() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(120 * 1024 * 1024), "120 MiB");
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(1000 << 40), "1000 TiB");
    }

    #[test]
    fn the_watermark_parses_sizes_and_percentages() {
        assert_eq!(MinFreeDisk::parse("512MiB"), Some(MinFreeDisk::Bytes(512 << 20)));
        assert_eq!(MinFreeDisk::parse("1000TiB"), Some(MinFreeDisk::Bytes(1000 << 40)));
        assert_eq!(MinFreeDisk::parse("0"), Some(MinFreeDisk::Bytes(0)));
        assert_eq!(MinFreeDisk::parse("5%"), Some(MinFreeDisk::Percent(5.0)));
        assert_eq!(MinFreeDisk::parse(" 2.5 %"), Some(MinFreeDisk::Percent(2.5)));
        for bad in ["", "%", "0%", "101%", "-1%", "NaN%", "lots", "1XB"] {
            assert_eq!(MinFreeDisk::parse(bad), None, "{bad:?}");
        }
    }
}
