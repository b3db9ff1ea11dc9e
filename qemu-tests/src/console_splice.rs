//! The serial console as the tests read it: kernel messages moved out of the lines they were
//! printed into.
//!
//! On a serial console the kernel writes its messages straight to the UART, between two FIFO
//! loads of whatever user space is writing through the tty, so a message can land in the
//! middle of a line: `SWAPOVER-STEP fla[    9.474180] random: crng init done\r\nsh done`.
//! A test waiting for `SWAPOVER-STEP flash done` would then wait forever. Seen in our logs:
//! `random: crng init done` arrives at a different moment in every boot, often during the
//! migrator's flash, and once in the middle of the stager's progress line.
//!
//! [`CleanConsole`] keeps a copy of the console in which such a kernel record, found where a
//! line did not just begin, is taken out and put after the end of that line. Nothing is
//! dropped; the raw console still goes to the log file unchanged.

/// What starts at a position of the console, as far as it has arrived.
#[derive(Debug, PartialEq, Eq)]
enum Record {
    /// A whole kernel record `[ seconds.micros] text\n` of this many bytes.
    Whole(usize),
    /// Could still become one: wait for more bytes.
    Partial,
    /// Not a kernel record.
    No,
}

/// Whether `bytes` starts with a kernel printk record: `[`, spaces, seconds, `.`, six digits,
/// `]`, then text up to and including `\n`.
fn record_at(bytes: &[u8]) -> Record {
    match bytes.first() {
        None => return Record::Partial,
        Some(b'[') => {}
        Some(_) => return Record::No,
    }
    let mut i = 1;
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    let seconds = i;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == bytes.len() {
        return Record::Partial;
    }
    if i == seconds || bytes[i] != b'.' {
        return Record::No;
    }
    i += 1;
    let micros = i;
    while i - micros < 6 {
        match bytes.get(i) {
            None => return Record::Partial,
            Some(b) if b.is_ascii_digit() => i += 1,
            Some(_) => return Record::No,
        }
    }
    match bytes.get(i) {
        None => return Record::Partial,
        Some(b']') => i += 1,
        Some(_) => return Record::No,
    }
    match bytes[i..].iter().position(|b| *b == b'\n') {
        Some(end) => Record::Whole(i + end + 1),
        None => Record::Partial,
    }
}

/// The console with kernel records moved out of the middle of lines.
#[derive(Debug, Default)]
pub struct CleanConsole {
    /// The cleaned text so far.
    pub text: Vec<u8>,
    /// How much of the raw console has been looked at.
    raw_done: usize,
    /// Kernel records taken out of the current line, to follow its end.
    moved: Vec<u8>,
}

impl CleanConsole {
    fn at_line_start(&self) -> bool {
        self.text.last().is_none_or(|b| *b == b'\n')
    }

    /// Take in what `raw` (the whole console so far) added since the last call. With
    /// `closed`, nothing more will come: a partial record is taken as text.
    pub fn update(&mut self, raw: &[u8], closed: bool) {
        while self.raw_done < raw.len() {
            let rest = &raw[self.raw_done..];
            if rest[0] == b'[' && !self.at_line_start() {
                match record_at(rest) {
                    Record::Whole(len) => {
                        self.moved.extend_from_slice(&rest[..len]);
                        self.raw_done += len;
                        continue;
                    }
                    Record::Partial if !closed => return,
                    Record::Partial | Record::No => {}
                }
            }
            let byte = rest[0];
            self.text.push(byte);
            self.raw_done += 1;
            if byte == b'\n' && !self.moved.is_empty() {
                self.text.append(&mut self.moved);
            }
        }
        if closed && !self.moved.is_empty() {
            self.text.push(b'\n');
            self.text.append(&mut self.moved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(raw: &[u8]) -> String {
        let mut c = CleanConsole::default();
        c.update(raw, false);
        String::from_utf8_lossy(&c.text).into_owned()
    }

    #[test]
    fn a_record_inside_a_marker_goes_after_its_line() {
        let raw = b"SWAPOVER-STEP fla[    9.474180] random: crng init done\r\nsh done\nnext\n";
        assert_eq!(
            clean(raw),
            "SWAPOVER-STEP flash done\n[    9.474180] random: crng init done\r\nnext\n"
        );
    }

    #[test]
    fn records_at_a_line_start_and_user_brackets_stay_where_they_are() {
        let raw =
            b"[    0.000000] Linux version\n[    5.147] INFO  journal\nbar [=====>   ] 3 MiB\n";
        assert_eq!(clean(raw), String::from_utf8_lossy(raw));
    }

    #[test]
    fn a_record_split_over_two_reads_is_waited_for() {
        let mut c = CleanConsole::default();
        let mut raw = b"SWAPOVER-VERDICT {\"ok\":[   12.00".to_vec();
        c.update(&raw, false);
        assert_eq!(c.text, b"SWAPOVER-VERDICT {\"ok\":");
        raw.extend_from_slice(b"0001] ata1: link up\ntrue}\n");
        c.update(&raw, false);
        assert_eq!(
            String::from_utf8_lossy(&c.text),
            "SWAPOVER-VERDICT {\"ok\":true}\n[   12.000001] ata1: link up\n"
        );
    }

    #[test]
    fn what_only_looked_like_a_record_is_kept_and_a_closed_console_is_flushed() {
        let mut c = CleanConsole::default();
        c.update(b"x [   1.5] y\nz [  2.0000", false);
        assert_eq!(c.text, b"x [   1.5] y\nz ");
        c.update(b"x [   1.5] y\nz [  2.0000", true);
        assert_eq!(c.text, b"x [   1.5] y\nz [  2.0000");
    }

    #[test]
    fn the_stager_progress_line_seen_in_a_log() {
        let raw = b"preparing the image [=====>   ] 60.00 MiB/328.00 MiB eta 8m   [   43.971413] random: crng init done\r\n\x1b[1A\x1b[2Kpreparing the image [=====>   ] 61.00 MiB\nSWAPOVER-E2E-STAGE exit=0\n";
        let text = clean(raw);
        assert!(text.contains("61.00 MiB\n[   43.971413] random: crng init done\r\nSWAPOVER-E2E"));
    }
}
