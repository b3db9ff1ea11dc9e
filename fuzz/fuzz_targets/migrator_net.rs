//! Network settings conversion (`migrator::net::collect`). Its parsers are private,
//! so each iteration writes the input as one source file into a fresh tree; the
//! first byte picks the format: NetworkManager keyfile, connman service settings,
//! connman provisioning file, wpa_supplicant.conf, ifupdown interfaces, resinOS 1.x
//! config.json. The keyfiles it produces, read back as NetworkManager keyfiles,
//! must come out unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migrator::net::{collect, write_keyfiles, Sources};
use swapover_fuzz::{fresh_dir, scratch_dir};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let tree = scratch_dir("migrator_net").join("tree");
    fresh_dir(&tree);
    let write = |relative: &str| {
        let path = tree.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        path
    };
    let mut sources = Sources { root: Some(tree.clone()), ..Sources::default() };
    match selector % 6 {
        0 => {
            write("etc/NetworkManager/system-connections/Fuzz conn");
            sources.nm_dirs.push(tree.join("etc/NetworkManager/system-connections"));
        }
        1 => {
            write("var/lib/connman/wifi_001122334455_46757a7a_managed_psk/settings");
            sources.connman_dirs.push(tree.join("var/lib/connman"));
        }
        2 => {
            write("var/lib/connman/fuzz.config");
            sources.connman_dirs.push(tree.join("var/lib/connman"));
        }
        3 => sources.wpa_supplicant.push(write("etc/wpa_supplicant/wpa_supplicant.conf")),
        4 => sources.interfaces.push(write("etc/network/interfaces")),
        _ => sources.config_json.push(write("boot/config.json")),
    }
    let first = collect(&sources);

    let out = scratch_dir("migrator_net").join("out");
    fresh_dir(&out);
    write_keyfiles(&out, &first.keyfiles).expect("write keyfiles to scratch");
    let second = collect(&Sources { nm_dirs: vec![out], ..Sources::default() });
    let mut before: Vec<&str> = first.keyfiles.iter().map(|k| k.contents.as_str()).collect();
    let mut after: Vec<&str> = second.keyfiles.iter().map(|k| k.contents.as_str()).collect();
    before.sort_unstable();
    after.sort_unstable();
    assert_eq!(after, before, "converted keyfiles change when read back as NetworkManager keyfiles");
});
