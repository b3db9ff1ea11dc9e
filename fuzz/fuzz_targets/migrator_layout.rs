//! The image's MBR as the migrator reads it: `PartitionTable::from_head` (the
//! held-back first MiB) and `PartitionTable::read` through a Cursor (logical
//! partitions included). For every table read, the finalize path runs too: the
//! grown table written with `write_growth` must read back as the computed one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use disk_layout::units::Sectors;
use disk_layout::{final_table, write_growth, DataGrowth, HeadOverlay, PartitionTable};
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = PartitionTable::from_head(data) {
        let _ = head.end();
        let _ = head.extended();
    }
    let Ok(table) = PartitionTable::read(&mut Cursor::new(data)) else { return };
    for p in table.all() {
        assert_eq!(table.partition(p.number).map(|q| q.number), Some(p.number));
    }
    // A disk a little larger than the image reaches, as at finalize.
    let disk_size = Sectors(table.end().0.saturating_add(u64::from(data.len() as u32 & 0xffff)));
    let Ok(grown) = final_table(&table, disk_size, DataGrowth::OverStaging) else { return };
    if grown.growth.is_none() {
        assert_eq!(grown.table, table, "no growth but the table changed");
        return;
    }
    let mut head = data[..data.len().min(512)].to_vec();
    let mut disk = Cursor::new(data.to_vec());
    if write_growth(&grown, &mut head, &mut disk).is_err() {
        return;
    }
    let disk = disk.into_inner();
    let reread = PartitionTable::read(&mut HeadOverlay::new(&head, Cursor::new(&disk)))
        .expect("a table the migrator wrote must read back");
    assert_eq!(reread, grown.table, "written growth reads back differently");
});
