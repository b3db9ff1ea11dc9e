//! Sizes on the command line: `1536MiB`, `2G`, `4096` (bytes). Units are binary.

use plan::Bytes;

pub fn parse(text: &str) -> Result<Bytes, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write e.g. 512MiB, 2GiB or 4096"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit `{other}`; use KiB, MiB, GiB or TiB")),
    };
    number.checked_mul(factor).map(Bytes).ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_units() {
        assert_eq!(parse("1536MiB"), Ok(Bytes::from_mib(1536).unwrap()));
        assert_eq!(parse("2G"), Ok(Bytes::from_gib(2).unwrap()));
        assert_eq!(parse("4096"), Ok(Bytes(4096)));
        assert!(parse("2GB").is_err());
        assert!(parse("lots").is_err());
        assert!(parse("99999999999T").is_err());
    }
}
