//! The profiles shipped inside the binary (from `board-profiles/profiles/`).

/// (name, TOML text) of every shipped profile. Adding a board: add its file
/// under `profiles/` and a line here; the tests then parse and validate it.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    ("intel-nuc", include_str!("../profiles/intel-nuc.toml")),
    ("genericx86-64", include_str!("../profiles/genericx86-64.toml")),
    ("resinos1x-intel-nuc", include_str!("../profiles/resinos1x-intel-nuc.toml")),
    ("resinos1x-raspberry-pi", include_str!("../profiles/resinos1x-raspberry-pi.toml")),
    ("resinos1x-raspberry-pi2", include_str!("../profiles/resinos1x-raspberry-pi2.toml")),
    ("resinos1x-raspberrypi3", include_str!("../profiles/resinos1x-raspberrypi3.toml")),
    ("resinos1x-beaglebone-black", include_str!("../profiles/resinos1x-beaglebone-black.toml")),
];
