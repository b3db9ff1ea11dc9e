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
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not UTF-8")]
    NotUtf8,
    #[error("no final newline (torn write)")]
    NoFinalNewline,
    #[error("no checksum line (torn write)")]
    NoChecksumLine,
    #[error("checksum line malformed")]
    ChecksumLineMalformed,
    #[error("checksum mismatch")]
    ChecksumMismatch,
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown format {0:?}")]
    UnknownFormat(String),
}

pub(super) fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let text = std::str::from_utf8(bytes).map_err(|_| RecordError::NotUtf8)?;
    let text = text.strip_suffix('\n').ok_or(RecordError::NoFinalNewline)?;
    let (body, sum_line) = text.rsplit_once('\n').ok_or(RecordError::NoChecksumLine)?;
    let sum = sum_line.strip_prefix(CHECKSUM_PREFIX).ok_or(RecordError::ChecksumLineMalformed)?;
    if hex(&Sha256::digest(body.as_bytes())) != sum {
        return Err(RecordError::ChecksumMismatch);
    }
    let record: Record = serde_json::from_str(body)?;
    if record.format != FORMAT {
        return Err(RecordError::UnknownFormat(record.format));
    }
    Ok(record)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_damage_has_its_reason() {
        let good = encode(&Record::new(3, JournalState::fresh())).unwrap();
        assert_eq!(decode(&good).unwrap().seq, 3);
        let torn = &good[..good.len() - 1];
        assert!(matches!(decode(torn), Err(RecordError::NoFinalNewline)));
        let mut flipped = good.clone();
        flipped[10] ^= 1;
        let error = decode(&flipped).unwrap_err();
        assert!(matches!(error, RecordError::ChecksumMismatch), "{error:?}");
        assert_eq!(error.to_string(), "checksum mismatch");
        assert_eq!(decode(b"{}\n").unwrap_err().to_string(), "no checksum line (torn write)");
        assert!(matches!(decode(&[0xff, b'\n']), Err(RecordError::NotUtf8)));
    }
}
