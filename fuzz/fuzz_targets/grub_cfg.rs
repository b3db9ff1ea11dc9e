//! grub.cfg inspection: `grub::cfg_inspect::inspect` and what the stager asks of
//! its report, on arbitrary text.
#![no_main]

use grub::cfg_inspect::{PartitionTable, StagingFs, StagingFsType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let report = grub::inspect(&text);
    let _ = report.resolve_default();
    for entry in &report.entries {
        if let Some(id) = &entry.id {
            assert!(report.has_entry_id(id));
        }
    }
    for table in [None, Some(PartitionTable::Msdos), Some(PartitionTable::Gpt)] {
        let staging = StagingFs { uuid: "0a1b2c3d-4e5f".into(), fs: StagingFsType::Ext4, table };
        let _ = report.staging_entry_needs(&staging);
    }
    let _ = stager::host::grub::cfg_uses_next_entry(&text);
    let _ = stager::host::grub::cfg_sources_custom_cfg(&text);
});
