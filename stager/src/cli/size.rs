//! Sizes on the command line: `1536MiB`, `2G`, `4096` (bytes). Units are binary.

use plan::Bytes;

/// Why a command-line size was refused (clap prints it after the option's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("`{0}` is not a size; write e.g. 512MiB, 2GiB or 4096")]
    NotASize(String),
    #[error("unknown size unit `{0}`; use KiB, MiB, GiB or TiB")]
    UnknownUnit(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

pub fn parse(text: &str) -> Result<Bytes, SizeError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| SizeError::NotASize(text.to_string()))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        other => return Err(SizeError::UnknownUnit(other.to_string())),
    };
    number.checked_mul(factor).map(Bytes).ok_or_else(|| SizeError::TooLarge(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_units() {
        assert_eq!(parse("1536MiB"), Ok(Bytes::from_mib(1536).unwrap()));
        assert_eq!(parse("2G"), Ok(Bytes::from_gib(2).unwrap()));
        assert_eq!(parse("4096"), Ok(Bytes(4096)));
        assert_eq!(parse("2GB"), Err(SizeError::UnknownUnit("gb".into())));
        assert_eq!(
            parse("lots").unwrap_err().to_string(),
            "`lots` is not a size; write e.g. 512MiB, 2GiB or 4096"
        );
        assert_eq!(parse("99999999999T").unwrap_err().to_string(), "`99999999999T` is too large");
    }
}
