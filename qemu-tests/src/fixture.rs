//! The customer's data on the legacy host, and what a migration must deliver of it.
//!
//! Deterministic: the same tree (names, contents, modes) on every build, so that images are
//! cacheable and the expected manifest can be compared with what resinOS finds.

use anyhow::Result;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// Directories on the host that the demo's backup set names (absolute paths on the host).
pub const BACKUP_PATHS: &[&str] = &["/home/stem", "/var/lib/stem-app"];

/// The WiFi network the host knows through NetworkManager.
pub const NM_WIFI_SSID: &str = "STEM-Plant-WiFi";
pub const NM_WIFI_PSK: &str = "correct horse battery staple";
/// The WiFi network the host knows only through wpa_supplicant.
pub const WPA_WIFI_SSID: &str = "STEM Backup AP";
pub const WPA_WIFI_PSK: &str = "s3cond-netw0rk!";

/// Size of the large incompressible file in the customer data.
pub const LARGE_FILE_BYTES: usize = 50 * 1024 * 1024;

/// One entry of the expected manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File { sha256: String, size: u64 },
    Symlink { target: String },
}

/// Path (relative to `/`, e.g. `home/stem/notes.txt`) → entry.
pub type Manifest = BTreeMap<String, Entry>;

/// Small deterministic pseudo-random bytes (xorshift64*): incompressible test data.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write(root: &Path, rel: &str, data: &[u8], mode: u32) -> Result<()> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, data)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Writes the customer data and network settings into the host's root tree `root`.
pub fn write_customer_data(root: &Path) -> Result<()> {
    write(root, "home/stem/notes.txt", b"Line 4 calibration done 2016-03-02\n", 0o644)?;
    write(
        root,
        "home/stem/Reports 2016/Q1 summary.csv",
        b"month,units\njan,120\nfeb,131\nmar,127\n",
        0o640,
    )?;
    write(
        root,
        "home/stem/Reports 2016/Übersicht März – ñandú.txt",
        "Grüße aus der Fabrik\n".as_bytes(),
        0o644,
    )?;
    write(root, "home/stem/.config/stem/app.ini", b"[app]\nline=4\n", 0o600)?;
    write(
        root,
        "var/lib/stem-app/db/measurements.bin",
        &pseudo_random(7, LARGE_FILE_BYTES),
        0o644,
    )?;
    write(root, "var/lib/stem-app/db/schema.sql", b"CREATE TABLE m (t INTEGER, v REAL);\n", 0o644)?;
    write(root, "var/lib/stem-app/empty.flag", b"", 0o644)?;
    std::fs::create_dir_all(root.join("var/lib/stem-app/spool"))?;
    symlink("db/measurements.bin", root.join("var/lib/stem-app/current"))?;

    let nm = format!(
        "[connection]\nid={NM_WIFI_SSID}\nuuid=6c1c9e5c-1f5d-4c1e-9d4e-3f0a5b7c2d11\ntype=802-11-wireless\n\n\
         [802-11-wireless]\nssid={NM_WIFI_SSID}\nmode=infrastructure\nmac-address=52:54:00:12:34:56\n\n\
         [802-11-wireless-security]\nkey-mgmt=wpa-psk\npsk={NM_WIFI_PSK}\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n"
    );
    write(
        root,
        &format!("etc/NetworkManager/system-connections/{NM_WIFI_SSID}"),
        nm.as_bytes(),
        0o600,
    )?;
    let wpa = format!(
        "ctrl_interface=/var/run/wpa_supplicant\nupdate_config=1\n\nnetwork={{\n\tssid=\"{WPA_WIFI_SSID}\"\n\tpsk=\"{WPA_WIFI_PSK}\"\n\tkey_mgmt=WPA-PSK\n}}\n"
    );
    write(root, "etc/wpa_supplicant/wpa_supplicant.conf", wpa.as_bytes(), 0o600)?;
    Ok(())
}

/// The manifest of everything under [`BACKUP_PATHS`] in `root`, as the migration must deliver it.
pub fn manifest(root: &Path) -> Result<Manifest> {
    let mut out = Manifest::new();
    for top in BACKUP_PATHS {
        walk(root, &root.join(top.trim_start_matches('/')), &mut out)?;
    }
    Ok(out)
}

fn walk(root: &Path, path: &Path, out: &mut Manifest) -> Result<()> {
    let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)?.to_string_lossy().into_owned();
        out.insert(rel, Entry::Symlink { target });
    } else if meta.is_dir() {
        out.insert(rel, Entry::Dir);
        let mut children: Vec<_> = std::fs::read_dir(path)?.collect::<std::io::Result<Vec<_>>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            walk(root, &child.path(), out)?;
        }
    } else {
        let data = std::fs::read(path)?;
        let sha256 = crate::stamp::hex(&Sha256::digest(&data));
        out.insert(rel, Entry::File { sha256, size: data.len() as u64 });
    }
    Ok(())
}
