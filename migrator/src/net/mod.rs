//! Network settings from the old system, turned into NetworkManager keyfiles
//! for resinOS (`resin-boot/system-connections/NAME`).
//!
//! Sources, in the order they win when the same SSID appears twice: existing
//! NetworkManager keyfiles, connman saved services and provisioning files
//! (resin-wifi-connect's too), wpa_supplicant.conf, ifupdown interfaces,
//! resinOS 1.x config.json. Output is deterministic: UUIDs derive from the SSID.

mod connman;
mod ifupdown;
mod keyfile;
mod nm;
mod resin;
mod warning;
mod wifi;
mod wpa;

pub use warning::Warning;

use nm::NmConnection;
use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use wifi::{Psk, Security, Wifi};

/// A NetworkManager keyfile to place in `system-connections/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyfile {
    /// Plain ASCII name, safe on FAT (`[A-Za-z0-9._-]`).
    pub file_name: String,
    pub contents: String,
}

impl Keyfile {
    /// NetworkManager ignores keyfiles readable by others.
    pub const MODE: u32 = 0o600;
}

/// The result of a conversion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversion {
    pub keyfiles: Vec<Keyfile>,
    pub warnings: Vec<Warning>,
}

/// Where to look. Missing paths are skipped silently; unreadable ones warn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// The old root, to resolve absolute paths named inside files (`wpa-conf`).
    pub root: Option<PathBuf>,
    /// Directories of NetworkManager keyfiles.
    pub nm_dirs: Vec<PathBuf>,
    /// connman state directories (`<service>/settings` and `*.config` inside).
    pub connman_dirs: Vec<PathBuf>,
    /// Extra connman provisioning files (resin-wifi-connect's `network.config`).
    pub connman_configs: Vec<PathBuf>,
    pub wpa_supplicant: Vec<PathBuf>,
    /// ifupdown interfaces files (`interfaces`, `interfaces.d/*`).
    pub interfaces: Vec<PathBuf>,
    /// resinOS 1.x config.json files.
    pub config_json: Vec<PathBuf>,
}

impl Sources {
    /// The usual places on an Ubuntu/Debian root or a resinOS 1.x root mounted at `root`.
    pub fn for_root(root: &Path) -> Sources {
        let at = |p: &str| root.join(p);
        let mut interfaces = vec![at("etc/network/interfaces")];
        interfaces.extend(
            sorted_entries(&at("etc/network/interfaces.d")).into_iter().filter(|p| p.is_file()),
        );
        Sources {
            root: Some(root.to_path_buf()),
            nm_dirs: vec![at("etc/NetworkManager/system-connections")],
            connman_dirs: vec![at("var/lib/connman")],
            connman_configs: Vec::new(),
            wpa_supplicant: vec![
                at("etc/wpa_supplicant/wpa_supplicant.conf"),
                at("etc/wpa_supplicant.conf"),
            ],
            interfaces,
            config_json: Vec::new(),
        }
    }

    fn on_root(&self, path: &Path) -> PathBuf {
        match (&self.root, path.strip_prefix("/")) {
            (Some(root), Ok(relative)) => root.join(relative),
            _ => path.to_path_buf(),
        }
    }
}

enum Found {
    Nm(NmConnection),
    Wifi(Wifi),
}

impl Found {
    fn dedupe_key(&self) -> Vec<u8> {
        match self {
            Found::Nm(c) => match &c.ssid {
                Some(ssid) => [b"ssid:".as_slice(), ssid].concat(),
                None => [b"id:".as_slice(), c.id.as_bytes()].concat(),
            },
            Found::Wifi(w) => [b"ssid:".as_slice(), &w.ssid].concat(),
        }
    }

    fn secret(&self) -> Option<String> {
        match self {
            Found::Nm(c) => c.secret(),
            Found::Wifi(w) => match &w.security {
                Security::Open => None,
                Security::WpaPsk(Psk::Passphrase(s) | Psk::Raw(s)) | Security::Sae(s) => {
                    Some(s.clone())
                }
                Security::Wep { key, .. } => Some(key.clone()),
            },
        }
    }

    fn label(&self) -> String {
        match self {
            Found::Nm(c) => c.id.clone(),
            Found::Wifi(w) => w.display_ssid(),
        }
    }

    fn source(&self) -> Option<&Path> {
        match self {
            Found::Nm(_) => None,
            Found::Wifi(w) => Some(&w.source),
        }
    }
}

/// Read every source and convert what can be converted.
pub fn collect(sources: &Sources) -> Conversion {
    let mut warnings = Vec::new();
    let mut found: Vec<(PathBuf, Found)> = Vec::new();
    let push_wifi = |found: &mut Vec<(PathBuf, Found)>, list: Vec<Wifi>| {
        found.extend(list.into_iter().map(|w| (w.source.clone(), Found::Wifi(w))));
    };

    for dir in &sources.nm_dirs {
        for path in sorted_entries(dir).into_iter().filter(|p| p.is_file()) {
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(text) = read_source(&path, &mut warnings) {
                if let Some(conn) = nm::normalise(&name, &text, &path, &mut warnings) {
                    found.push((path.clone(), Found::Nm(conn)));
                }
            }
        }
    }
    for dir in &sources.connman_dirs {
        for entry in sorted_entries(dir) {
            let settings = entry.join("settings");
            if entry.is_dir() && settings.is_file() {
                if let Some(text) = read_source(&settings, &mut warnings) {
                    push_wifi(&mut found, connman::parse_settings(&text, &settings, &mut warnings));
                }
            } else if entry.extension().is_some_and(|e| e == "config") && entry.is_file() {
                if let Some(text) = read_source(&entry, &mut warnings) {
                    push_wifi(&mut found, connman::parse_config(&text, &entry, &mut warnings));
                }
            }
        }
    }
    for path in &sources.connman_configs {
        if let Some(text) = read_source(path, &mut warnings) {
            push_wifi(&mut found, connman::parse_config(&text, path, &mut warnings));
        }
    }
    let mut interfaces = Vec::new();
    let mut wpa_files: Vec<PathBuf> = sources.wpa_supplicant.clone();
    for path in &sources.interfaces {
        if let Some(text) = read_source(path, &mut warnings) {
            let stanzas = ifupdown::parse(&text, path, &mut warnings);
            wpa_files.extend(stanzas.wpa_confs.iter().map(|p| sources.on_root(p)));
            interfaces.extend(stanzas.networks);
        }
    }
    let mut seen_files = BTreeSet::new();
    for path in wpa_files {
        if seen_files.insert(path.clone()) {
            if let Some(text) = read_source(&path, &mut warnings) {
                push_wifi(&mut found, wpa::parse(&text, &path, &mut warnings));
            }
        }
    }
    push_wifi(&mut found, interfaces);
    for path in &sources.config_json {
        if let Some(text) = read_source(path, &mut warnings) {
            push_wifi(&mut found, resin::parse(&text, path, &mut warnings));
        }
    }

    let kept = dedupe(found, &mut warnings);
    let keyfiles = name_keyfiles(kept);
    for w in &warnings {
        log::warn!("network settings: {w}");
    }
    Conversion { keyfiles, warnings }
}

/// Drop networks NetworkManager would reject, then keep the first of each SSID.
fn dedupe(found: Vec<(PathBuf, Found)>, warnings: &mut Vec<Warning>) -> Vec<Found> {
    let mut kept: Vec<(PathBuf, Found)> = Vec::new();
    for (path, item) in found {
        if let Found::Wifi(w) = &item {
            if let Some(problem) = w.problem() {
                warnings.push(Warning::new(
                    &path,
                    &format!("network {:?}: {problem}; not converted", w.display_ssid()),
                ));
                continue;
            }
        }
        let key = item.dedupe_key();
        match kept.iter().find(|(_, k)| k.dedupe_key() == key) {
            None => kept.push((path, item)),
            Some((first_path, first)) => {
                if first.secret() != item.secret() {
                    warnings.push(Warning::new(
                        item.source().unwrap_or(&path),
                        &format!(
                            "network {:?} is also configured in {} with a different secret; kept that one",
                            item.label(),
                            first_path.display()
                        ),
                    ));
                } else {
                    log::info!(
                        "network {:?} from {} duplicates {}",
                        item.label(),
                        path.display(),
                        first_path.display()
                    );
                }
            }
        }
    }
    kept.into_iter().map(|(_, f)| f).collect()
}

fn name_keyfiles(kept: Vec<Found>) -> Vec<Keyfile> {
    let mut taken = BTreeSet::new();
    let mut out = Vec::new();
    for item in kept {
        let (wanted, uuid, contents) = match &item {
            Found::Nm(c) => {
                (safe_file_name(&c.file_name), c.uuid.clone(), keyfile::render(&c.groups))
            }
            Found::Wifi(w) => (
                format!("resin-wifi-{}", safe_file_name(&w.display_ssid())),
                w.uuid(),
                w.to_keyfile(),
            ),
        };
        let file_name = if taken.contains(&wanted.to_ascii_lowercase()) {
            format!("{wanted}-{}", &uuid[..8])
        } else {
            wanted
        };
        taken.insert(file_name.to_ascii_lowercase());
        out.push(Keyfile { file_name, contents });
    }
    out
}

/// A file name safe on FAT and for NetworkManager: `[A-Za-z0-9._-]`, no leading dot.
fn safe_file_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(48)
        .collect();
    let trimmed = mapped.trim_start_matches('.');
    if trimmed.is_empty() {
        "connection".to_string()
    } else {
        trimmed.to_string()
    }
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    entries.sort();
    entries
}

fn read_source(path: &Path, warnings: &mut Vec<Warning>) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => Some(String::from_utf8(bytes).unwrap_or_else(|e| {
            warnings.push(Warning::new(path, "not valid UTF-8; read with replacement characters"));
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        })),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            warnings.push(Warning::new(
                path,
                &format!("cannot read ({e}); its settings were not migrated"),
            ));
            None
        }
    }
}

/// Write keyfiles into `dir` (created if needed) with mode 0600, each fsynced.
pub fn write_keyfiles(dir: &Path, keyfiles: &[Keyfile]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for k in keyfiles {
        let path = dir.join(&k.file_name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(Keyfile::MODE)
            .open(&path)?;
        file.set_permissions(std::fs::Permissions::from_mode(Keyfile::MODE))?;
        file.write_all(k.contents.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::File::open(dir)?.sync_all()
}
