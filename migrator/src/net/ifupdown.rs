//! ifupdown `/etc/network/interfaces` WiFi stanzas (`wpa-ssid`, `wpa-psk`,
//! `wireless-essid`/`wireless-key`, `wpa-conf`).

use super::warning::Warning;
use super::wifi::{parse_address, Psk, Security, StaticIpv4, Wifi};
use std::path::{Path, PathBuf};

/// What an interfaces file yields: networks, and wpa_supplicant files it points at.
pub(crate) struct Stanzas {
    pub networks: Vec<Wifi>,
    /// `wpa-conf`/`wpa-roam` files, as written in the file (absolute on the old root).
    pub wpa_confs: Vec<PathBuf>,
}

struct Iface {
    name: String,
    method: String,
    options: Vec<(String, String)>,
}

impl Iface {
    fn opt(&self, key: &str) -> Option<&str> {
        self.options.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

pub(crate) fn parse(text: &str, source: &Path, warnings: &mut Vec<Warning>) -> Stanzas {
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut in_iface = false;
    for line in logical_lines(text) {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        match first {
            "iface" => {
                let name = words.next().unwrap_or_default().to_string();
                let _family = words.next();
                let method = words.next().unwrap_or_default().to_string();
                ifaces.push(Iface { name, method, options: Vec::new() });
                in_iface = true;
            }
            "auto" | "mapping" | "source" | "source-directory" | "source-dir" | "no-auto-down"
            | "no-scripts" => in_iface = false,
            first if first.starts_with("allow-") => in_iface = false,
            key if in_iface => {
                let value = line.trim_start()[key.len()..].trim().to_string();
                if let Some(iface) = ifaces.last_mut() {
                    iface.options.push((key.to_string(), value));
                }
            }
            _ => {}
        }
    }
    let mut out = Stanzas { networks: Vec::new(), wpa_confs: Vec::new() };
    for iface in &ifaces {
        for key in ["wpa-conf", "wpa-roam"] {
            if let Some(path) = iface.opt(key) {
                out.wpa_confs.push(PathBuf::from(path));
            }
        }
        if let Some(wifi) = convert(iface, source, warnings) {
            out.networks.push(wifi);
        }
    }
    out
}

/// Lines with comments removed and `\` continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        if pending.is_empty() && raw.trim_start().starts_with('#') {
            continue;
        }
        match raw.strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => {
                pending.push_str(raw);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    if !pending.is_empty() {
        out.push(pending);
    }
    out
}

fn unquote(value: &str) -> &str {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)
}

fn convert(iface: &Iface, source: &Path, warnings: &mut Vec<Warning>) -> Option<Wifi> {
    let (ssid, security) = if let Some(ssid) = iface.opt("wpa-ssid") {
        let ssid = unquote(ssid).as_bytes().to_vec();
        let key_mgmt = iface.opt("wpa-key-mgmt").unwrap_or("WPA-PSK");
        let security = match (key_mgmt, iface.opt("wpa-psk")) {
            (mgmt, _) if mgmt.contains("EAP") || mgmt.contains("IEEE8021X") => {
                warnings.push(Warning::new(
                    source,
                    &format!(
                        "{}: network {:?} uses WPA-Enterprise (EAP), whose certificates and identities are not migrated; not converted",
                        iface.name,
                        String::from_utf8_lossy(&ssid)
                    ),
                ));
                return None;
            }
            ("NONE", _) | (_, None) => Security::Open,
            (_, Some(psk)) => {
                let psk = unquote(psk);
                if psk.len() == 64 && psk.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Security::WpaPsk(Psk::Raw(psk.to_ascii_lowercase()))
                } else {
                    Security::WpaPsk(Psk::Passphrase(psk.to_string()))
                }
            }
        };
        (ssid, security)
    } else if let Some(essid) = iface.opt("wireless-essid") {
        let security = match iface.opt("wireless-key").or(iface.opt("wireless-key1")) {
            None => Security::Open,
            Some("off") => Security::Open,
            Some(key) => match key.strip_prefix("s:") {
                Some(ascii) => Security::Wep { key: ascii.to_string(), passphrase: false },
                None => Security::Wep {
                    key: key.replace('-', "").to_ascii_lowercase(),
                    passphrase: false,
                },
            },
        };
        (unquote(essid).as_bytes().to_vec(), security)
    } else {
        return None;
    };
    let mut wifi = Wifi::new(ssid, security, source.to_path_buf());
    wifi.hidden = iface.opt("wpa-scan-ssid") == Some("1");
    if iface.method == "static" {
        wifi.ipv4 = static_ipv4(iface);
        if wifi.ipv4.is_none() {
            warnings.push(Warning::new(
                source,
                &format!(
                    "{}: static address not understood; the connection uses DHCP instead",
                    iface.name
                ),
            ));
        }
    }
    Some(wifi)
}

fn static_ipv4(iface: &Iface) -> Option<StaticIpv4> {
    let (address, prefix) = parse_address(iface.opt("address")?, iface.opt("netmask"))?;
    let gateway = iface.opt("gateway").and_then(|g| g.parse().ok());
    let dns = iface
        .opt("dns-nameservers")
        .map(|list| list.split_whitespace().filter_map(|d| d.parse().ok()).collect())
        .unwrap_or_default();
    Some(StaticIpv4 { address, prefix, gateway, dns })
}
