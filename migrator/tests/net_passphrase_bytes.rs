//! WPA passphrases are 8..63 *bytes* for wpa_supplicant and NetworkManager alike: a UTF-8
//! passphrase that is not ASCII is carried with its exact bytes, and only passphrases
//! NetworkManager truly rejects (too short or too long in bytes) are left out with a warning.

use migrator::net::{collect, Conversion, Sources};

fn psk_of(c: &Conversion, ssid: &str) -> Option<String> {
    let keyfile = c.keyfiles.iter().find(|k| k.contents.contains(&format!("ssid={ssid}\n")))?;
    keyfile.contents.lines().find_map(|l| l.strip_prefix("psk=")).map(str::to_string)
}

fn convert(networks: &[(&str, &str)]) -> Conversion {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("wpa_supplicant.conf");
    let mut text = String::from("ctrl_interface=/run/wpa_supplicant\n");
    for (ssid, psk) in networks {
        text.push_str(&format!("network={{\n\tssid=\"{ssid}\"\n\tpsk=\"{psk}\"\n}}\n"));
    }
    std::fs::write(&conf, text).unwrap();
    collect(&Sources { wpa_supplicant: vec![conf], ..Sources::default() })
}

#[test]
fn a_non_ascii_passphrase_of_8_to_63_bytes_is_carried_byte_for_byte() {
    // 7 characters but 10 bytes: fine for NetworkManager, which counts bytes.
    let short_in_chars = "ünïcöd1";
    assert_eq!((short_in_chars.chars().count(), short_in_chars.len()), (7, 10));
    // 40 characters, 63 bytes: the longest passphrase there is.
    let longest = format!("{}{}", "é".repeat(23), "x".repeat(17));
    assert_eq!(longest.len(), 63);
    let c =
        convert(&[("Unicode", "ünïcödé-pässwörd"), ("Short", short_in_chars), ("Long", &longest)]);
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    assert_eq!(psk_of(&c, "Unicode").as_deref(), Some("ünïcödé-pässwörd"));
    assert_eq!(psk_of(&c, "Short").as_deref(), Some(short_in_chars));
    assert_eq!(psk_of(&c, "Long"), Some(longest));
}

#[test]
fn only_passphrases_out_of_8_to_63_bytes_are_warnings() {
    // 6 characters of 2 bytes = 12 bytes (carried); 64 bytes of "é" (32 characters) and 7
    // ASCII bytes are what NetworkManager rejects.
    let too_long = "é".repeat(32);
    let c = convert(&[("Fine", "éééééé"), ("TooLong", &too_long), ("TooShort", "1234567")]);
    assert_eq!(psk_of(&c, "Fine").as_deref(), Some("éééééé"));
    assert!(psk_of(&c, "TooLong").is_none() && psk_of(&c, "TooShort").is_none());
    let warnings: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("\"TooLong\": WPA passphrase must be 8..63 bytes, found 64")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("\"TooShort\": WPA passphrase must be 8..63 bytes, found 7")),
        "{warnings:#?}"
    );
}
