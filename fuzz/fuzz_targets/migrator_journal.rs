//! The migrator's journal loaded from corrupt copies (`Journal::open`). The input
//! holds the two slots (split at the first 0xff byte, see `split_two`); the first
//! byte's low bit asks for valid checksums to be appended, so that the JSON
//! decoding behind the checksum is reached too, and its second bit leaves slot 1
//! out when it is empty. When a journal loads, one more write must succeed and
//! read back as the same state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migration_journal::{ActionKind, Journal, SLOT_NAMES};
use sha2::{Digest, Sha256};
use swapover_fuzz::{fresh_dir, scratch_dir, split_two};

fn with_checksum(body: &[u8]) -> Vec<u8> {
    let sum: String = Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
    let mut out = body.to_vec();
    out.extend_from_slice(format!("\nsha256:{sum}\n").as_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let dir = scratch_dir("migrator_journal").join("journal");
    fresh_dir(&dir);
    let (first, second) = split_two(rest);
    for (name, slot) in SLOT_NAMES.iter().zip([first, second]) {
        if mode & 2 != 0 && slot.is_empty() {
            continue;
        }
        let bytes = if mode & 1 != 0 { with_checksum(slot) } else { slot.to_vec() };
        std::fs::write(dir.join(name), bytes).expect("write journal slot");
    }
    let Ok(mut journal) = Journal::open(&dir) else { return };
    let _ = journal.load_report();
    let _ = journal.newest_slot();
    if journal.record_attempt(ActionKind::Backup).is_err() {
        return;
    }
    let reopened = Journal::open(&dir).expect("a journal just written must load");
    assert_eq!(reopened.state(), journal.state(), "journal state changed across write/open");
});
