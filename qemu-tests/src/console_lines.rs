//! Reading a payload's `SWAPOVER-T <key>=<value>` and `SWAPOVER-T <marker> <text>` lines out
//! of a VM's console.

/// The console text as lines, without the serial console's carriage returns. The last line
/// is dropped when it is not complete (a power-off may cut it).
pub fn complete_lines(text: &str) -> Vec<String> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete.lines().map(|l| l.trim_end_matches('\r').to_string()).collect()
}

/// The value of the first `SWAPOVER-T <key>=<value>` line; panics naming the key if none.
pub fn value<'a>(lines: &'a [String], key: &str) -> &'a str {
    after(lines, &format!("SWAPOVER-T {key}="))
}

/// The text after `marker` on the first line holding it, trimmed; panics naming the marker
/// if none does.
pub fn after<'a>(lines: &'a [String], marker: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.split_once(marker).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no `{marker}` line in:\n{}", lines.join("\n")))
}

/// The text after `SWAPOVER-T <marker> ` of every such line, in order.
pub fn with_marker(lines: &[String], marker: &str) -> Vec<String> {
    let prefix = format!("SWAPOVER-T {marker} ");
    lines.iter().filter_map(|l| l.split_once(&prefix).map(|(_, v)| v.to_string())).collect()
}
