//! Numbers, sizes and durations written for people: thousands separators and units.

use num_format::{Locale, ToFormattedString};

/// `1234567` as `1,234,567`.
pub fn int(n: i64) -> String {
    n.to_formatted_string(&Locale::en)
}

/// `-1234.5` with one decimal as `-1,234.5`.
pub fn float(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let text = format!("{:.*}", decimals, x.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let whole: i64 = whole.parse().unwrap_or(0);
    // Rounding may leave "-0.0": no sign on a number shown as zero.
    let negative = x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0');
    let sign = if negative { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{}", int(whole))
    } else {
        format!("{sign}{}.{fraction}", int(whole))
    }
}

/// A byte count in binary units: `1.5 MiB`.
pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_signs() {
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(int(-1000), "-1,000");
        assert_eq!(float(-71234.56, 1), "-71,234.6");
        assert_eq!(float(-0.01, 1), "0.0");
        assert_eq!(float(999.999, 2), "1,000.00");
        assert_eq!(float(12.0, 0), "12");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
