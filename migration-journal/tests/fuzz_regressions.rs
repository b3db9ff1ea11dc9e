//! Inputs that broke the migrator's journal under `scripts/fuzz.sh` (cargo-fuzz, target
//! migrator_journal), kept byte for byte: each must now give a clean error, never a panic.

use migration_journal::{ActionKind, Journal, JournalError, LoadReport, SLOT_NAMES};
use sha2::{Digest, Sha256};

/// Journal body of the crash input (target migrator_journal, mode 3: the target appends
/// the checksum line, slot 1 absent). Hand-made for the target after reading
/// `Journal::commit`: the next write computed `seq + 1` and overflowed.
const SEQ_MAX_BODY: &str = r#"{"format":"swapover-journal/1","seq":18446744073709551615,"state":{"plan_id":"p","step":{"step":"started"},"attempts":{}}}"#;

/// One journal copy as the migrator writes it: the JSON, then its sha256 line.
fn journal_copy(body: &str) -> Vec<u8> {
    let sum: String = Sha256::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    format!("{body}\nsha256:{sum}\n").into_bytes()
}

#[test]
fn journal_at_the_largest_sequence_number_refuses_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let copy = journal_copy(SEQ_MAX_BODY);
    std::fs::write(dir.path().join(SLOT_NAMES[0]), &copy).unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.load_report(), &LoadReport::Loaded { seq: u64::MAX });
    match journal.record_attempt(ActionKind::Backup) {
        Err(JournalError::SequenceExhausted { dir: named }) => assert_eq!(named, dir.path()),
        other => panic!("expected SequenceExhausted, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(dir.path().join(SLOT_NAMES[0])).unwrap(),
        copy,
        "the good copy was touched"
    );
    assert!(
        !dir.path().join(SLOT_NAMES[1]).exists(),
        "a copy was written although the write was refused"
    );
}

#[test]
fn journal_one_below_the_largest_sequence_number_still_records() {
    let dir = tempfile::tempdir().unwrap();
    let body = SEQ_MAX_BODY.replace("18446744073709551615", "18446744073709551614");
    std::fs::write(dir.path().join(SLOT_NAMES[0]), journal_copy(&body)).unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.record_attempt(ActionKind::Backup).unwrap(), 1);
    let reopened = Journal::open(dir.path()).unwrap();
    assert_eq!(reopened.load_report(), &LoadReport::Loaded { seq: u64::MAX });
    assert_eq!(reopened.state(), journal.state());
}
