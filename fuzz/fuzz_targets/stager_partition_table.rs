//! The disk's partition table as the stager reads it from a device or image
//! (`partition_table::read` takes a path: the input is written to a scratch file
//! each iteration), MBR with its logical chain, and GPT behind a protective MBR,
//! at both sector sizes it supports (and one it refuses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stager::host::partition_table;
use plan::Bytes;

fuzz_target!(|data: &[u8]| {
    let image = swapover_fuzz::scratch_dir("stager_partition_table").join("disk.img");
    std::fs::write(&image, data).expect("write fuzz image");
    for sector in [512u64, 4096, 1000] {
        let Ok(table) = partition_table::read(&image, Bytes(sector)) else { continue };
        for entry in &table.partitions {
            let _ = entry.end();
            let _ = table.extended_containing(entry);
            let _ = table.find_by_start(entry.start);
        }
    }
});
