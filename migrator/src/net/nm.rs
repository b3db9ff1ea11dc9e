//! NetworkManager keyfiles already on the old system: kept, normalised for a
//! new machine (identity complete, bindings to old hardware dropped).

use super::keyfile::{decode_ssid, parse, stable_uuid, Group};
use super::warning::Warning;
use std::path::Path;

/// Group names NetworkManager accepts for each connection type (name, alias).
const TYPE_GROUPS: [(&str, &str); 6] = [
    ("wifi", "802-11-wireless"),
    ("ethernet", "802-3-ethernet"),
    ("gsm", "gsm"),
    ("cdma", "cdma"),
    ("vpn", "vpn"),
    ("bond", "bond"),
];
/// Groups whose `mac-address` binds the connection to the old machine's NIC.
const HARDWARE_GROUPS: [&str; 4] = ["wifi", "802-11-wireless", "ethernet", "802-3-ethernet"];

#[derive(Debug, Clone)]
pub(crate) struct NmConnection {
    pub file_name: String,
    pub groups: Vec<Group>,
    pub id: String,
    pub uuid: String,
    /// For WiFi connections.
    pub ssid: Option<Vec<u8>>,
}

impl NmConnection {
    pub fn secret(&self) -> Option<String> {
        let sec = self.group("wifi-security").or(self.group("802-11-wireless-security"))?;
        sec.get("psk").or(sec.get("wep-key0"))
    }

    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

pub(crate) fn normalise(
    file_name: &str,
    text: &str,
    source: &Path,
    warnings: &mut Vec<Warning>,
) -> Option<NmConnection> {
    let mut groups = parse(text);
    if !groups.iter().any(|g| g.name == "connection") {
        groups.insert(0, Group::new("connection"));
    }
    let find = |groups: &[Group], name: &str| groups.iter().position(|g| g.name == name);
    let conn = find(&groups, "connection").unwrap_or(0);
    let kind = groups[conn].get("type").or_else(|| {
        TYPE_GROUPS
            .iter()
            .find(|(name, alias)| find(&groups, name).or(find(&groups, alias)).is_some())
            .map(|(name, _)| name.to_string())
    });
    let Some(kind) = kind else {
        warnings.push(Warning::new(
            source,
            "connection type unknown (no type= and no [wifi]/[ethernet] group); not converted",
        ));
        return None;
    };
    let wifi_group = find(&groups, "wifi").or(find(&groups, "802-11-wireless"));
    let is_wifi = kind == "wifi" || kind == "802-11-wireless";
    let ssid = wifi_group.and_then(|g| groups[g].raw("ssid")).map(decode_ssid);
    if is_wifi && ssid.as_ref().is_none_or(|s| s.is_empty()) {
        warnings.push(Warning::new(source, "WiFi connection without an ssid; not converted"));
        return None;
    }
    let security = find(&groups, "wifi-security").or(find(&groups, "802-11-wireless-security"));
    let key_mgmt = security.and_then(|g| groups[g].get("key-mgmt")).unwrap_or_default();
    if find(&groups, "802-1x").is_some() || key_mgmt == "wpa-eap" || key_mgmt == "ieee8021x" {
        warnings.push(Warning::new(
            source,
            "uses WPA-Enterprise (802.1X), whose certificates and identities are not migrated; not converted",
        ));
        return None;
    }
    let id = groups[conn]
        .get("id")
        .filter(|id| !id.is_empty())
        .or_else(|| ssid.as_ref().map(|s| String::from_utf8_lossy(s).into_owned()))
        .unwrap_or_else(|| file_name.to_string());
    let uuid = match groups[conn].get("uuid").filter(|u| is_uuid(u)) {
        Some(uuid) => uuid,
        None => stable_uuid("nm", ssid.as_deref().unwrap_or(id.as_bytes())),
    };
    let c = &mut groups[conn];
    c.set("id", &id);
    c.set("uuid", &uuid);
    c.set("type", &kind);
    for key in ["interface-name", "permissions"] {
        if c.remove(key) {
            log::info!("{}: dropped connection.{key} (bound to the old system)", source.display());
        }
    }
    for group in groups.iter_mut().filter(|g| HARDWARE_GROUPS.contains(&g.name.as_str())) {
        for key in ["mac-address", "seen-bssids"] {
            if group.remove(key) {
                log::info!(
                    "{}: dropped {}.{key} (bound to the old hardware)",
                    source.display(),
                    group.name
                );
            }
        }
    }
    if let Some(sec) = security {
        let flags = groups[sec].get("psk-flags").and_then(|f| f.parse::<u32>().ok()).unwrap_or(0);
        if flags != 0 && groups[sec].raw("psk").is_none() {
            warnings.push(Warning::new(
                source,
                &format!("connection {id:?}: its secret is kept by a user agent, not in the file; enter it again on resinOS"),
            ));
        }
    }
    Some(NmConnection { file_name: file_name.to_string(), groups, id, uuid, ssid })
}

fn is_uuid(text: &str) -> bool {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}
