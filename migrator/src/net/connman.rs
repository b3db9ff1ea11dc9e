//! connman: saved services (`/var/lib/connman/<service>/settings`) and
//! provisioning files (`*.config`, also written by resin-wifi-connect and
//! carried in resinOS 1.x config.json `files`).

use super::keyfile::{from_hex, parse as parse_keyfile, Group};
use super::warning::Warning;
use super::wifi::{parse_address, Psk, Security, StaticIpv4, Wifi};
use std::path::Path;

/// A saved service's `settings` file: one group named like
/// `wifi_<mac>_<hex ssid>_managed_<security>`.
pub(crate) fn parse_settings(text: &str, source: &Path, warnings: &mut Vec<Warning>) -> Vec<Wifi> {
    parse_keyfile(text)
        .iter()
        .filter(|g| g.name.starts_with("wifi_"))
        .filter_map(|g| {
            let security = g.name.rsplit('_').next().unwrap_or_default();
            service(g, security, source, warnings)
        })
        .collect()
}

/// A provisioning file: `[service_*]` groups with `Type = wifi`.
pub(crate) fn parse_config(text: &str, source: &Path, warnings: &mut Vec<Warning>) -> Vec<Wifi> {
    parse_keyfile(text)
        .iter()
        .filter(|g| g.name.starts_with("service_") && g.get("Type").as_deref() == Some("wifi"))
        .filter_map(|g| {
            let security = match (g.get("Security"), g.get("Passphrase")) {
                (Some(s), _) => s,
                (None, Some(_)) => "psk".to_string(),
                (None, None) => "none".to_string(),
            };
            service(g, &security, source, warnings)
        })
        .collect()
}

fn service(
    group: &Group,
    security: &str,
    source: &Path,
    warnings: &mut Vec<Warning>,
) -> Option<Wifi> {
    let ssid = match (group.get("SSID").and_then(|hex| from_hex(&hex)), group.get("Name")) {
        (Some(bytes), _) => bytes,
        (None, Some(name)) if !name.is_empty() => name.into_bytes(),
        _ => {
            warnings.push(Warning::new(
                source,
                &format!("[{}] has neither SSID nor Name; skipped", group.name),
            ));
            return None;
        }
    };
    let name = String::from_utf8_lossy(&ssid).into_owned();
    let passphrase = group.get("Passphrase").filter(|p| !p.is_empty());
    let security = match (security, passphrase) {
        ("none", _) => Security::Open,
        ("psk" | "wpa" | "rsn", Some(p)) => {
            if p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()) {
                Security::WpaPsk(Psk::Raw(p.to_ascii_lowercase()))
            } else {
                Security::WpaPsk(Psk::Passphrase(p))
            }
        }
        ("wep", Some(p)) => Security::Wep { key: p, passphrase: false },
        ("ieee8021x", _) => {
            warnings.push(Warning::new(
                source,
                &format!("network {name:?} uses WPA-Enterprise (802.1X), whose certificates and identities are not migrated; not converted"),
            ));
            return None;
        }
        (other, None) => {
            warnings.push(Warning::new(
                source,
                &format!("network {name:?} ({other}) has no stored passphrase; not converted, enter it again on resinOS"),
            ));
            return None;
        }
        (other, Some(_)) => {
            warnings.push(Warning::new(
                source,
                &format!("network {name:?}: unknown security {other:?}; not converted"),
            ));
            return None;
        }
    };
    let mut wifi = Wifi::new(ssid, security, source.to_path_buf());
    wifi.hidden = group.get("Hidden").is_some_and(|h| h.eq_ignore_ascii_case("true"));
    wifi.ipv4 = ipv4(group);
    Some(wifi)
}

/// Static IPv4 from either form: provisioning `IPv4 = addr/mask/gw`, or saved
/// `IPv4.method=manual` with `IPv4.local_address` etc.
fn ipv4(group: &Group) -> Option<StaticIpv4> {
    let dns = || {
        group
            .get("Nameservers")
            .map(|list| list.split([',', ';']).filter_map(|d| d.trim().parse().ok()).collect())
            .unwrap_or_default()
    };
    if let Some(spec) = group.get("IPv4") {
        let mut parts = spec.split('/');
        let address = parts.next()?;
        let (address, prefix) = parse_address(address, parts.next())?;
        let gateway = parts.next().and_then(|g| g.parse().ok());
        return Some(StaticIpv4 { address, prefix, gateway, dns: dns() });
    }
    if group.get("IPv4.method").as_deref() == Some("manual") {
        let prefix = group.get("IPv4.netmask_prefixlen");
        let (address, prefix) =
            parse_address(&group.get("IPv4.local_address")?, prefix.as_deref())?;
        let gateway = group.get("IPv4.gateway").and_then(|g| g.parse().ok());
        return Some(StaticIpv4 { address, prefix, gateway, dns: dns() });
    }
    None
}
