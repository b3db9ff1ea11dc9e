//! Reading the resinOS stand-in's verdict from its console output.

use crate::fixture::{Entry, Manifest};
use anyhow::{Context, Result};
use serde::Deserialize;

/// The summary line the stand-in prints last.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub config_json: bool,
    pub nm_files: u32,
    pub data_files: u32,
    pub migration_log: bool,
    /// The image's preloaded supervisor (under resin-data's `docker/`) is there and intact.
    /// Not part of `ok`: the tests that migrate onto the 2.x stand-in assert it themselves.
    #[serde(default)]
    pub preloaded_supervisor: bool,
    pub ok: bool,
}

/// Everything the stand-in reported.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub summary: Summary,
    /// `(file name, ssid, psk)` of each NetworkManager connection on resin-boot.
    pub connections: Vec<(String, String, String)>,
    /// Entries of resin-data, keyed by path relative to its root (no leading `./`).
    pub data: Manifest,
    pub config_sha256: Option<String>,
}

pub const SUMMARY_MARKER: &str = "SWAPOVER-VERDICT ";

impl Verdict {
    /// Parses the console text of a stand-in boot.
    pub fn parse(console: &str) -> Result<Verdict> {
        let mut connections = Vec::new();
        let mut data = Manifest::new();
        let mut config_sha256 = None;
        let mut summary = None;
        for raw in console.lines() {
            let line = raw.trim_end_matches('\r');
            if let Some(rest) = line.strip_prefix("VERDICT-NM file=") {
                // `file=NAME ssid=SSID psk=PSK`; names and SSIDs may hold spaces.
                let (file, rest) = rest.split_once(" ssid=").unwrap_or((rest, ""));
                let (ssid, psk) = rest.split_once(" psk=").unwrap_or((rest, ""));
                connections.push((file.to_string(), ssid.to_string(), psk.to_string()));
            } else if let Some(rest) = line.strip_prefix("VERDICT-ENTRY ") {
                let mut parts = rest.splitn(3, ' ');
                let (kind, detail, path) = (parts.next(), parts.next(), parts.next());
                let (Some(kind), Some(detail), Some(path)) = (kind, detail, path) else { continue };
                let path = path.trim_start_matches("./").to_string();
                let entry = match kind {
                    "D" => Entry::Dir,
                    "L" => Entry::Symlink { target: detail.to_string() },
                    _ => Entry::File { sha256: detail.to_string(), size: 0 },
                };
                data.insert(path, entry);
            } else if let Some(rest) = line.strip_prefix("VERDICT-CONFIG sha256=") {
                config_sha256 = Some(rest.trim().to_string());
            } else if let Some(json) = line.strip_prefix(SUMMARY_MARKER) {
                summary = Some(
                    serde_json::from_str(json.trim())
                        .with_context(|| format!("bad verdict line: {line}"))?,
                );
            }
        }
        Ok(Verdict {
            summary: summary.context("the stand-in printed no SWAPOVER-VERDICT line")?,
            connections,
            data,
            config_sha256,
        })
    }
}

/// Compares an expected manifest (sizes are not printed by the stand-in, so only hashes,
/// link targets and kinds count) with what the stand-in found under `prefix` of resin-data.
/// Returns one line per difference; empty means identical.
pub fn differences(expected: &Manifest, found: &Manifest, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in expected {
        let key = if prefix.is_empty() { path.clone() } else { format!("{prefix}/{path}") };
        match (want, found.get(&key)) {
            (_, None) => out.push(format!("missing: {key}")),
            (Entry::File { sha256, .. }, Some(Entry::File { sha256: got, .. }))
                if sha256 != got =>
            {
                out.push(format!("content differs: {key}"))
            }
            (Entry::Symlink { target }, Some(Entry::Symlink { target: got })) if target != got => {
                out.push(format!("symlink target differs: {key}: {got} != {target}"))
            }
            (Entry::File { .. }, Some(Entry::File { .. }))
            | (Entry::Symlink { .. }, Some(Entry::Symlink { .. }))
            | (Entry::Dir, Some(Entry::Dir)) => {}
            (_, Some(other)) => out.push(format!("kind differs: {key}: {other:?}")),
        }
    }
    out
}
