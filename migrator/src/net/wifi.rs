//! A WiFi network as every source describes it, and its NetworkManager keyfile.

use super::keyfile::{encode_ssid, escape, render, stable_uuid, Group};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The secret of a WPA-Personal network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Psk {
    /// 8..=63 bytes (wpa_supplicant and NetworkManager count bytes, so a UTF-8 passphrase of
    /// fewer characters is fine).
    Passphrase(String),
    /// The derived key, 64 hex digits.
    Raw(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Security {
    Open,
    WpaPsk(Psk),
    /// WPA3-Personal.
    Sae(String),
    /// WEP key: `passphrase` false means a 5/13 character or 10/26 hex-digit key.
    Wep {
        key: String,
        passphrase: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaticIpv4 {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wifi {
    pub ssid: Vec<u8>,
    pub security: Security,
    pub hidden: bool,
    pub priority: Option<i32>,
    pub ipv4: Option<StaticIpv4>,
    pub source: PathBuf,
}

/// Why NetworkManager would reject a WPA passphrase: it takes 8..=63 *bytes*
/// (`nm_utils_wpa_psk_valid`, as wpa_supplicant's own parser), whatever their encoding; a
/// NUL byte cannot be stored in the keyfile.
fn passphrase_problem(p: &str) -> Option<String> {
    if !(8..=63).contains(&p.len()) {
        return Some(format!("WPA passphrase must be 8..63 bytes, found {}", p.len()));
    }
    p.contains('\0').then(|| "WPA passphrase contains a NUL byte".to_string())
}

impl Wifi {
    pub fn new(ssid: Vec<u8>, security: Security, source: PathBuf) -> Wifi {
        Wifi { ssid, security, hidden: false, priority: None, ipv4: None, source }
    }

    pub fn display_ssid(&self) -> String {
        String::from_utf8_lossy(&self.ssid).into_owned()
    }

    /// Why NetworkManager would reject this network, if it would.
    pub fn problem(&self) -> Option<String> {
        if self.ssid.is_empty() || self.ssid.len() > 32 {
            return Some(format!("SSID must be 1..32 bytes, found {}", self.ssid.len()));
        }
        match &self.security {
            Security::WpaPsk(Psk::Passphrase(p)) | Security::Sae(p) => passphrase_problem(p),
            Security::WpaPsk(Psk::Raw(k)) => {
                let ok = k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit());
                (!ok).then(|| "a raw WPA key must be 64 hex digits".to_string())
            }
            Security::Wep { key, passphrase: false } => {
                let hex =
                    key.bytes().all(|b| b.is_ascii_hexdigit()) && matches!(key.len(), 10 | 26);
                let ascii = matches!(key.len(), 5 | 13);
                (!hex && !ascii)
                    .then(|| "a WEP key must be 5/13 characters or 10/26 hex digits".to_string())
            }
            Security::Wep { key, passphrase: true } => {
                key.is_empty().then(|| "empty WEP passphrase".to_string())
            }
            Security::Open => None,
        }
    }

    pub fn uuid(&self) -> String {
        stable_uuid("wifi", &self.ssid)
    }

    /// The keyfile body for this network.
    pub fn to_keyfile(&self) -> String {
        let mut connection = Group::new("connection");
        connection.set("id", &self.display_ssid());
        connection.set("uuid", &self.uuid());
        connection.set("type", "wifi");
        if let Some(priority) = self.priority {
            connection.set("autoconnect-priority", &priority.clamp(-999, 999).to_string());
        }
        let mut wifi = Group::new("wifi");
        wifi.set("mode", "infrastructure");
        wifi.set_raw("ssid", encode_ssid(&self.ssid));
        if self.hidden {
            wifi.set("hidden", "true");
        }
        let mut groups = vec![connection, wifi];
        if let Some(security) = self.security_group() {
            groups.push(security);
        }
        groups.push(self.ipv4_group());
        let mut ipv6 = Group::new("ipv6");
        ipv6.set("addr-gen-mode", "stable-privacy");
        ipv6.set("method", "auto");
        groups.push(ipv6);
        render(&groups)
    }

    fn security_group(&self) -> Option<Group> {
        let mut g = Group::new("wifi-security");
        match &self.security {
            Security::Open => return None,
            Security::WpaPsk(psk) => {
                g.set("key-mgmt", "wpa-psk");
                let (Psk::Passphrase(secret) | Psk::Raw(secret)) = psk;
                g.set_raw("psk", escape(secret));
            }
            Security::Sae(secret) => {
                g.set("key-mgmt", "sae");
                g.set_raw("psk", escape(secret));
            }
            Security::Wep { key, passphrase } => {
                g.set("key-mgmt", "none");
                g.set("wep-key-type", if *passphrase { "2" } else { "1" });
                g.set_raw("wep-key0", escape(key));
                g.set("wep-tx-keyidx", "0");
            }
        }
        Some(g)
    }

    fn ipv4_group(&self) -> Group {
        let mut g = Group::new("ipv4");
        match &self.ipv4 {
            None => g.set("method", "auto"),
            Some(ip) => {
                g.set("method", "manual");
                let gateway = ip.gateway.map(|gw| format!(",{gw}")).unwrap_or_default();
                g.set("address1", &format!("{}/{}{gateway}", ip.address, ip.prefix));
                if !ip.dns.is_empty() {
                    let dns: String = ip.dns.iter().map(|d| format!("{d};")).collect();
                    g.set("dns", &dns);
                }
            }
        }
        g
    }
}

/// Prefix length of a dotted netmask (`255.255.255.0` → 24), if contiguous.
pub(crate) fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let prefix = bits.leading_ones();
    (bits.checked_shl(prefix).unwrap_or(0) == 0).then_some(prefix as u8)
}

/// `a.b.c.d/nn` or `a.b.c.d` plus an optional netmask, as (address, prefix).
pub(crate) fn parse_address(address: &str, netmask: Option<&str>) -> Option<(Ipv4Addr, u8)> {
    if let Some((addr, prefix)) = address.split_once('/') {
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        return Some((addr.parse().ok()?, prefix));
    }
    let prefix = match netmask {
        Some(mask) if mask.contains('.') => netmask_prefix(mask.parse().ok()?)?,
        Some(bits) => bits.parse().ok().filter(|p| *p <= 32)?,
        None => 24,
    };
    Some((address.parse().ok()?, prefix))
}
