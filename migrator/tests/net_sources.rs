//! NetworkManager keyfiles from each kind of old network configuration, on the
//! fixture roots under tests/fixtures/net (an Ubuntu root and a resinOS 1.x root).

use migrator::net::{collect, write_keyfiles, Conversion, Keyfile, Sources};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/net").join(rel)
}

/// What NetworkManager would read: (group, key) → unescaped value.
fn read_keyfile(k: &Keyfile) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut group = String::new();
    for line in k.contents.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group = name.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            let value = value.replace("\\s", " ").replace("\\\\", "\\");
            assert!(
                out.insert((group.clone(), key.to_string()), value).is_none(),
                "duplicate {key} in {}",
                k.contents
            );
        }
    }
    out
}

fn get<'a>(kf: &'a BTreeMap<(String, String), String>, group: &str, key: &str) -> Option<&'a str> {
    kf.get(&(group.to_string(), key.to_string())).map(String::as_str)
}

/// The keyfile whose [wifi] ssid is `ssid`.
fn by_ssid<'a>(c: &'a Conversion, ssid: &str) -> BTreeMap<(String, String), String> {
    let found: Vec<&'a Keyfile> =
        c.keyfiles.iter().filter(|k| get(&read_keyfile(k), "wifi", "ssid") == Some(ssid)).collect();
    assert_eq!(found.len(), 1, "ssid {ssid:?} in {:#?}", c.keyfiles);
    read_keyfile(found[0])
}

fn assert_psk(kf: &BTreeMap<(String, String), String>, psk: &str) {
    assert_eq!(get(kf, "wifi-security", "key-mgmt"), Some("wpa-psk"));
    assert_eq!(get(kf, "wifi-security", "psk"), Some(psk));
    assert_eq!(get(kf, "connection", "type"), Some("wifi"));
    assert_eq!(get(kf, "wifi", "mode"), Some("infrastructure"));
}

fn warned(c: &Conversion, needle: &str) -> bool {
    c.warnings.iter().any(|w| w.to_string().contains(needle))
}

fn ssids(c: &Conversion) -> Vec<String> {
    c.keyfiles
        .iter()
        .filter_map(|k| get(&read_keyfile(k), "wifi", "ssid").map(str::to_string))
        .collect()
}

#[test]
fn wpa_supplicant_blocks_become_keyfiles() {
    let c = collect(&Sources {
        wpa_supplicant: vec![fixture("ubuntu-root/etc/wpa_supplicant/wpa_supplicant.conf")],
        ..Sources::default()
    });
    let plain = by_ssid(&c, "Plain Net");
    assert_psk(&plain, "plain passphrase");
    assert_eq!(get(&plain, "connection", "id"), Some("Plain Net"));
    assert_eq!(get(&plain, "connection", "autoconnect-priority"), Some("5"));

    // Hex-encoded SSID, raw 64-hex key (lowercased as NM writes it).
    let cafe = by_ssid(&c, "Café");
    assert_psk(&cafe, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");

    let open = by_ssid(&c, "Open Cafe");
    assert_eq!(get(&open, "wifi-security", "key-mgmt"), None, "open network has no security group");
    assert_eq!(get(&open, "wifi", "hidden"), Some("true"));

    // P"..." SSID with a ';': written in NM's byte-list form.
    let semi: String = "semi;colon!".bytes().map(|b| format!("{b};")).collect();
    assert_psk(&by_ssid(&c, &semi), "semi-colon-pass");

    assert!(warned(&c, "\"Eduroam\": WPA-Enterprise"), "{:#?}", c.warnings);
    assert_eq!(c.keyfiles.len(), 5, "{:?}", ssids(&c));
}

#[test]
fn ifupdown_stanzas_become_keyfiles_and_follow_wpa_conf() {
    let root = fixture("ubuntu-root");
    let c = collect(&Sources {
        root: Some(root.clone()),
        interfaces: vec![
            root.join("etc/network/interfaces"),
            root.join("etc/network/interfaces.d/wlan2"),
        ],
        ..Sources::default()
    });
    let home = by_ssid(&c, "Home Net");
    assert_psk(&home, "home pass 123");
    assert_eq!(get(&home, "ipv4", "method"), Some("manual"));
    assert_eq!(get(&home, "ipv4", "address1"), Some("10.0.0.20/24,10.0.0.1"));
    assert_eq!(get(&home, "ipv4", "dns"), Some("10.0.0.1;8.8.8.8;"));

    assert_psk(&by_ssid(&c, "Garage"), "garage-pass-1");

    let legacy = by_ssid(&c, "Legacy");
    assert_eq!(get(&legacy, "wifi-security", "key-mgmt"), Some("none"));
    assert_eq!(get(&legacy, "wifi-security", "wep-key0"), Some("abcde"));
    assert_eq!(get(&legacy, "wifi-security", "wep-key-type"), Some("1"));

    assert!(warned(&c, "wlan3: network \"Staff\" uses WPA-Enterprise"), "{:#?}", c.warnings);
    assert_eq!(c.keyfiles.len(), 3, "{:?}", ssids(&c));
}

#[test]
fn existing_networkmanager_keyfiles_are_kept_and_normalised() {
    let c = collect(&Sources {
        nm_dirs: vec![fixture("ubuntu-root/etc/NetworkManager/system-connections")],
        ..Sources::default()
    });
    let names: Vec<&str> = c.keyfiles.iter().map(|k| k.file_name.as_str()).collect();
    assert_eq!(names, vec!["Office_WiFi", "Wired_static"]);

    let office = by_ssid(&c, "Office WiFi");
    assert_psk(&office, "office-secret-1");
    let uuid = get(&office, "connection", "uuid").unwrap();
    assert_eq!(uuid.len(), 36);
    assert_eq!(uuid.as_bytes()[14], b'8', "version-8 name-derived uuid: {uuid}");
    for (group, key) in [
        ("connection", "interface-name"),
        ("connection", "permissions"),
        ("wifi", "mac-address"),
        ("wifi", "seen-bssids"),
    ] {
        assert_eq!(get(&office, group, key), None, "{group}.{key} must be dropped");
    }
    assert_eq!(get(&office, "connection", "timestamp"), Some("1500000000"), "other keys are kept");

    let wired = read_keyfile(&c.keyfiles[1]);
    assert_eq!(
        get(&wired, "connection", "uuid"),
        Some("5d3a7e4c-2f1b-4c3a-9e8d-7f6a5b4c3d2e"),
        "a valid uuid is kept"
    );
    assert_eq!(get(&wired, "ethernet", "mac-address"), None);
    assert_eq!(get(&wired, "ipv4", "address1"), Some("192.168.10.5/24,192.168.10.1"));

    assert!(warned(&c, "Corp: uses WPA-Enterprise"), "{:#?}", c.warnings);
}

#[test]
fn connman_services_and_provisioning_files_become_keyfiles() {
    let c = collect(&Sources {
        connman_dirs: vec![fixture("resin1-root/var/lib/connman")],
        ..Sources::default()
    });
    assert_psk(&by_ssid(&c, "HomeWiFi"), "connman-home-pass");
    let cafe = by_ssid(&c, "CafeFree");
    assert_eq!(get(&cafe, "wifi-security", "key-mgmt"), None);
    assert_eq!(get(&cafe, "ipv4", "address1"), Some("192.168.5.9/24,192.168.5.1"));
    assert_eq!(get(&cafe, "ipv4", "dns"), Some("192.168.5.1;"));
    assert_psk(&by_ssid(&c, "ProvisionedNet"), "provisioned-pass");
    assert!(warned(&c, "\"Uni\" uses WPA-Enterprise"), "{:#?}", c.warnings);
    assert_eq!(c.keyfiles.len(), 3, "ethernet services are not WiFi: {:?}", ssids(&c));
}

#[test]
fn resin_wifi_connect_settings_become_a_keyfile() {
    let c = collect(&Sources {
        connman_configs: vec![fixture("resin1-root/resin-data/1234/network.config")],
        ..Sources::default()
    });
    assert_eq!(ssids(&c), vec!["ConnectNet"]);
    assert_psk(&by_ssid(&c, "ConnectNet"), "connect-pass-77");
    assert_eq!(c.keyfiles[0].file_name, "resin-wifi-ConnectNet");
}

#[test]
fn resinos_1x_config_json_wifi_fields_and_files_become_keyfiles() {
    let c = collect(&Sources {
        config_json: vec![fixture("resin1-root/boot/config.json")],
        ..Sources::default()
    });
    assert_psk(&by_ssid(&c, "ConfigNet"), "config-key-99");
    assert_psk(&by_ssid(&c, "FilesNet"), "files-pass-1");
    assert_eq!(c.keyfiles.len(), 2);
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
}

#[test]
fn a_whole_ubuntu_root_dedupes_by_ssid_keeping_networkmanager_first() {
    let sources = Sources::for_root(&fixture("ubuntu-root"));
    let c = collect(&sources);
    let all = ssids(&c);
    let office: Vec<_> = all.iter().filter(|s| *s == "Office WiFi").collect();
    assert_eq!(office.len(), 1, "{all:?}");
    assert_psk(&by_ssid(&c, "Office WiFi"), "office-secret-1");
    assert!(warned(&c, "\"Office WiFi\" is also configured in"), "{:#?}", c.warnings);
    for ssid in ["Plain Net", "Café", "Open Cafe", "Home Net", "Garage", "Legacy"] {
        assert!(all.iter().any(|s| s == ssid), "{ssid} missing from {all:?}");
    }
    // Garage is named by wpa-conf and nowhere else: reached through the root.
    // 2 NetworkManager files + 7 more WiFi networks (Office WiFi only once).
    assert_eq!(c.keyfiles.len(), 2 + 7, "{all:?}");
    let mut names: Vec<_> = c.keyfiles.iter().map(|k| k.file_name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), c.keyfiles.len(), "file names are unique");
    assert!(
        names.iter().all(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))),
        "{names:?}"
    );
}

#[test]
fn a_resinos_1x_root_converts_every_1x_source() {
    let root = fixture("resin1-root");
    let mut sources = Sources::for_root(&root);
    sources.config_json.push(root.join("boot/config.json"));
    sources.connman_configs.push(root.join("resin-data/1234/network.config"));
    let c = collect(&sources);
    let mut all = ssids(&c);
    all.sort();
    assert_eq!(
        all,
        ["CafeFree", "ConfigNet", "ConnectNet", "FilesNet", "HomeWiFi", "ProvisionedNet"]
    );
}

#[test]
fn output_is_deterministic_and_uuids_follow_the_ssid() {
    let sources = Sources::for_root(&fixture("ubuntu-root"));
    assert_eq!(collect(&sources), collect(&sources));
    // The same SSID from two different sources gets the same UUID.
    let a = collect(&Sources {
        connman_configs: vec![fixture("resin1-root/resin-data/1234/network.config")],
        ..Sources::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("wpa.conf");
    std::fs::write(&conf, "network={\n ssid=\"ConnectNet\"\n psk=\"other-pass-123\"\n}\n").unwrap();
    let b = collect(&Sources { wpa_supplicant: vec![conf], ..Sources::default() });
    let uuid = |c: &Conversion| {
        get(&read_keyfile(&c.keyfiles[0]), "connection", "uuid").unwrap().to_string()
    };
    assert_eq!(uuid(&a), uuid(&b));
    let other = collect(&Sources {
        config_json: vec![fixture("resin1-root/boot/config.json")],
        ..Sources::default()
    });
    assert_ne!(uuid(&a), uuid(&other));
}

#[test]
fn networks_networkmanager_would_reject_are_warnings_not_files() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("wpa.conf");
    std::fs::write(
        &conf,
        "network={\n ssid=\"Short\"\n psk=\"1234567\"\n}\nnetwork={\n ssid=\"BadHex\"\n psk=abcd\n}\nnetwork={\n ssid=\"Off\"\n psk=\"long-enough\"\n disabled=1\n}\nnetwork={\n ssid=\"Good\"\n psk=\"long-enough\"\n}\n",
    )
    .unwrap();
    let c = collect(&Sources { wpa_supplicant: vec![conf], ..Sources::default() });
    assert_eq!(ssids(&c), vec!["Good"]);
    assert!(warned(&c, "\"Short\": WPA passphrase must be 8..63"), "{:#?}", c.warnings);
    assert!(warned(&c, "\"BadHex\": a raw WPA key must be 64 hex digits"), "{:#?}", c.warnings);
    assert!(warned(&c, "\"Off\": disabled"), "{:#?}", c.warnings);
}

#[test]
fn spaces_at_the_ends_of_values_survive_keyfile_escaping() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("config.json");
    std::fs::write(&json, r#"{"wifiSsid": " Lead", "wifiKey": "trailing pass "}"#).unwrap();
    let c = collect(&Sources { config_json: vec![json], ..Sources::default() });
    assert!(c.keyfiles[0].contents.contains("ssid=\\sLead\n"), "{}", c.keyfiles[0].contents);
    assert!(
        c.keyfiles[0].contents.contains("psk=trailing pass\\s\n"),
        "{}",
        c.keyfiles[0].contents
    );
    assert_psk(&by_ssid(&c, " Lead"), "trailing pass ");
    assert_eq!(c.keyfiles[0].file_name, "resin-wifi-_Lead");
}

#[test]
fn missing_sources_are_silent_and_config_json_garbage_warns() {
    let dir = tempfile::tempdir().unwrap();
    let c = collect(&Sources::for_root(dir.path()));
    assert_eq!(c, Conversion::default());
    let json = dir.path().join("config.json");
    std::fs::write(&json, "{\"wifiSsid\": ").unwrap();
    let c = collect(&Sources { config_json: vec![json], ..Sources::default() });
    assert!(c.keyfiles.is_empty());
    assert!(warned(&c, "not valid JSON"), "{:#?}", c.warnings);
}

#[test]
fn keyfiles_are_written_with_mode_0600() {
    let c = collect(&Sources::for_root(&fixture("ubuntu-root")));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("system-connections");
    write_keyfiles(&out, &c.keyfiles).unwrap();
    for k in &c.keyfiles {
        let path = out.join(&k.file_name);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), k.contents);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            k.file_name
        );
    }
}

/// Ubuntu 14.04 ships NetworkManager 0.9.8: long group names and byte-list SSIDs.
#[test]
fn networkmanager_0_9_keyfiles_from_ubuntu_14_04_are_understood() {
    let dir = tempfile::tempdir().unwrap();
    let nm = dir.path().join("system-connections");
    std::fs::create_dir(&nm).unwrap();
    let ssid_list: String = "Shop AP".bytes().map(|b| format!("{b};")).collect();
    std::fs::write(
        nm.join("Shop AP"),
        format!(
            "[connection]\nid=Shop AP\nuuid=not-a-uuid\ntype=802-11-wireless\n\n[802-11-wireless]\nssid={ssid_list}\nmode=infrastructure\nmac-address=00:11:22:33:44:77\nsecurity=802-11-wireless-security\n\n[802-11-wireless-security]\nkey-mgmt=wpa-psk\npsk=shop-secret-9\n\n[ipv4]\nmethod=auto\n"
        ),
    )
    .unwrap();
    let c = collect(&Sources { nm_dirs: vec![nm], ..Sources::default() });
    assert_eq!(c.keyfiles.len(), 1, "{:#?}", c.warnings);
    let kf = read_keyfile(&c.keyfiles[0]);
    assert_eq!(
        get(&kf, "802-11-wireless", "ssid"),
        Some(ssid_list.as_str()),
        "SSID kept as NM wrote it"
    );
    assert_eq!(get(&kf, "802-11-wireless", "mac-address"), None);
    assert_eq!(get(&kf, "802-11-wireless-security", "psk"), Some("shop-secret-9"));
    assert_eq!(get(&kf, "connection", "type"), Some("802-11-wireless"));
    let uuid = get(&kf, "connection", "uuid").unwrap();
    assert_ne!(uuid, "not-a-uuid", "an invalid uuid is replaced");
    assert_eq!(uuid.len(), 36);
    assert_eq!(c.keyfiles[0].file_name, "Shop_AP");

    // The same network in wpa_supplicant.conf is recognised as a duplicate by SSID.
    let conf = dir.path().join("wpa.conf");
    std::fs::write(&conf, "network={\n ssid=\"Shop AP\"\n psk=\"shop-secret-9\"\n}\n").unwrap();
    let both = collect(&Sources {
        nm_dirs: vec![dir.path().join("system-connections")],
        wpa_supplicant: vec![conf],
        ..Sources::default()
    });
    assert_eq!(both.keyfiles.len(), 1);
    assert!(both.warnings.is_empty(), "same secret: no warning {:#?}", both.warnings);
}

/// A resinOS 1.x plan (`network.config_json_network`) reads WiFi from the config.json staged
/// next to the staging directory, where `stage-1x` copied the device's config.json; without
/// the flag it is not read.
#[test]
fn a_1x_plan_reads_wifi_from_the_staged_config_json() {
    let tmp = tempfile::tempdir().unwrap();
    let staging_root = tmp.path().join("staging");
    let staging_dir = staging_root.join("swapover");
    std::fs::create_dir_all(&staging_dir).unwrap();
    let mut plan = plan::Plan::stem_example();
    plan.staging.dir = "/swapover".into();
    plan.config_json.staged_at = "/swapover/config.json".into();
    std::fs::copy(fixture("resin1-root/boot/config.json"), staging_dir.join("config.json"))
        .unwrap();
    let old_root = tmp.path().join("old-root");
    std::fs::create_dir_all(&old_root).unwrap();
    plan.network.config_json_network = true;
    let sources = migrator::steps::backup_data::network_sources(&plan, &old_root, &staging_dir);
    assert_eq!(sources.config_json, vec![staging_dir.join("config.json")]);
    let c = collect(&sources);
    assert_psk(&by_ssid(&c, "ConfigNet"), "config-key-99");
    assert_psk(&by_ssid(&c, "FilesNet"), "files-pass-1");
    plan.network.config_json_network = false;
    assert!(migrator::steps::backup_data::network_sources(&plan, &old_root, &staging_dir)
        .config_json
        .is_empty());
}
