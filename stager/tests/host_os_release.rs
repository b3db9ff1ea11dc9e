//! os-release parsing on real files from each supported release.

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use fixture_host::{read_fixture, FixtureHost};
use stager::host::os_release::{self, OsVersion};
use stager::host::HostRoot;

fn parsed(name: &str) -> os_release::OsRelease {
    os_release::parse(&read_fixture(&format!("os-release/{name}")))
}

#[test]
fn ubuntu_lts_releases_have_id_and_numeric_version() {
    for (name, major, pretty) in [
        ("ubuntu-12.04", 12, "Ubuntu precise (12.04.5 LTS)"),
        ("ubuntu-14.04", 14, "Ubuntu 14.04.6 LTS"),
        ("ubuntu-16.04", 16, "Ubuntu 16.04.7 LTS"),
        ("ubuntu-18.04", 18, "Ubuntu 18.04.6 LTS"),
        ("ubuntu-20.04", 20, "Ubuntu 20.04.6 LTS"),
        ("ubuntu-22.04", 22, "Ubuntu 22.04.4 LTS"),
    ] {
        let release = parsed(name);
        assert_eq!(release.id, "ubuntu", "{name}");
        assert_eq!(release.id_like, vec!["debian"], "{name}");
        assert_eq!(release.version(), Some(OsVersion { major, minor: 4 }), "{name}");
        assert_eq!(release.pretty_name.as_deref(), Some(pretty), "{name}");
    }
    assert_eq!(parsed("ubuntu-14.04").version_codename, None);
    assert_eq!(parsed("ubuntu-22.04").version_codename.as_deref(), Some("jammy"));
}

#[test]
fn versions_order_numerically() {
    let v = |name| parsed(name).version().unwrap();
    assert!(v("ubuntu-12.04") < v("ubuntu-14.04"));
    assert!(v("ubuntu-14.04") < v("ubuntu-22.04"));
    assert_eq!(v("ubuntu-14.04").to_string(), "14.04");
}

#[test]
fn debian_12_has_a_major_only_version() {
    let release = parsed("debian-12");
    assert_eq!(release.id, "debian");
    assert!(release.id_like.is_empty());
    assert_eq!(release.version(), Some(OsVersion { major: 12, minor: 0 }));
    assert!(release.is_like("debian"));
    assert_eq!(release.display_name(), "Debian GNU/Linux 12 (bookworm)");
}

#[test]
fn derivatives_list_ubuntu_in_id_like() {
    let mint = parsed("linuxmint-21");
    assert_eq!(mint.id, "linuxmint");
    assert!(mint.is_like("ubuntu") && mint.is_like("debian"));
    let fedora = parsed("fedora-39");
    assert_eq!(fedora.id, "fedora");
    assert!(!fedora.is_like("debian"));
    assert_eq!(fedora.version_codename.as_deref(), Some(""));
}

#[test]
fn reader_falls_back_to_usr_lib_and_names_the_missing_file() {
    let host = FixtureHost::empty();
    let err = os_release::read(&HostRoot::new(host.root())).unwrap_err();
    assert!(err.to_string().contains("etc/os-release"), "{err}");
    host.copy_fixture("/usr/lib/os-release", "os-release/ubuntu-20.04");
    let release = os_release::read(&HostRoot::new(host.root())).unwrap();
    assert_eq!(release.version_id.as_deref(), Some("20.04"));
}
