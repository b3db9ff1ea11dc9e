//! Supervisor versions as resin writes them (`v6.1.2`, `6.1.2`, `v1.7.0-a1b2c3`), ordered
//! by their numbers: the device is marked for an update only when the target's is newer.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SupervisorVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a supervisor version (vMAJOR.MINOR.PATCH, e.g. v6.1.2)")]
pub struct NotAVersion(pub String);

impl SupervisorVersion {
    /// Reads `[v]MAJOR[.MINOR[.PATCH]]`, ignoring anything after the numbers (`-sha`,
    /// `+rev1`, `_logstream`); missing parts count as 0.
    pub fn parse(text: &str) -> Result<SupervisorVersion, NotAVersion> {
        let trimmed = text.trim();
        let digits = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let end = digits.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(digits.len());
        let numbers: Vec<&str> = digits[..end].trim_end_matches('.').split('.').collect();
        if numbers.len() > 3 || numbers.iter().any(|n| n.is_empty()) {
            return Err(NotAVersion(text.to_string()));
        }
        let mut parts = [0u32; 3];
        for (slot, number) in parts.iter_mut().zip(&numbers) {
            *slot = number.parse().map_err(|_| NotAVersion(text.to_string()))?;
        }
        Ok(SupervisorVersion { major: parts[0], minor: parts[1], patch: parts[2] })
    }
}

impl fmt::Display for SupervisorVersion {
    /// As the API names supervisor releases: `v6.1.2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> SupervisorVersion {
        SupervisorVersion::parse(text).unwrap()
    }

    #[test]
    fn reads_the_forms_resin_writes() {
        assert_eq!(v("v6.1.2"), SupervisorVersion { major: 6, minor: 1, patch: 2 });
        assert_eq!(v("6.1.2"), v("v6.1.2"));
        assert_eq!(v(" v1.7.0-a1b2c3 "), SupervisorVersion { major: 1, minor: 7, patch: 0 });
        assert_eq!(v("v2.8"), SupervisorVersion { major: 2, minor: 8, patch: 0 });
        assert_eq!(v("v6.3.5_logstream").to_string(), "v6.3.5");
        for bad in ["", "v", "latest", "v.1", "1..2", "1.2.3.4", "@TARGET_TAG@"] {
            assert!(SupervisorVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn orders_by_number_not_text() {
        assert!(v("v6.10.0") > v("v6.9.9"));
        assert!(v("v10.0.0") > v("v9.99.99"));
        assert!(v("v2.8.3") < v("v6.1.2"));
        assert_eq!(v("v6.1.2").cmp(&v("6.1.2-abc")), std::cmp::Ordering::Equal);
    }
}
