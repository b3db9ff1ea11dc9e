//! On-disk form of one journal copy: JSON, then a line with its sha256.
//!
//! ```text
//! {"format":"swapover-journal/1","seq":7,"state":{...}}
//! sha256:0f1e...
//! ```

use super::JournalState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const FORMAT: &str = "swapover-journal/1";
const CHECKSUM_PREFIX: &str = "sha256:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Record {
    pub format: String,
    pub seq: u64,
    pub state: JournalState,
}

impl Record {
    pub fn new(seq: u64, state: JournalState) -> Record {
        Record { format: FORMAT.to_string(), seq, state }
    }
}

pub(super) fn encode(record: &Record) -> Result<Vec<u8>, serde_json::Error> {
    let body = serde_json::to_string(record)?;
    let sum = hex(&Sha256::digest(body.as_bytes()));
    Ok(format!("{body}\n{CHECKSUM_PREFIX}{sum}\n").into_bytes())
}

/// Why a copy was rejected (for the log and the load report).
pub(super) fn decode(bytes: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let text = text.strip_suffix('\n').ok_or("no final newline (torn write)")?;
    let (body, sum_line) = text.rsplit_once('\n').ok_or("no checksum line (torn write)")?;
    let sum = sum_line.strip_prefix(CHECKSUM_PREFIX).ok_or("checksum line malformed")?;
    if hex(&Sha256::digest(body.as_bytes())) != sum {
        return Err("checksum mismatch".to_string());
    }
    let record: Record = serde_json::from_str(body).map_err(|e| format!("bad JSON: {e}"))?;
    if record.format != FORMAT {
        return Err(format!("unknown format {:?}", record.format));
    }
    Ok(record)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
