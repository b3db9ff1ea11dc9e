//! Board profiles: `Profile::from_toml_str`, and for every profile it accepts,
//! `to_toml` must parse back to an equal profile.
#![no_main]

use board_profiles::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(profile) = Profile::from_toml_str("fuzz", text) else { return };
    let _ = profile.requirements.min_ram();
    let _ = profile.requirements.min_disk();
    let _ = profile.backup_limit();
    let written = profile.to_toml().expect("an accepted profile must serialise");
    let reread = Profile::from_toml_str("fuzz", &written).expect("a written profile must read back");
    assert_eq!(reread, profile, "profile changed across to_toml/from_toml_str");
});
