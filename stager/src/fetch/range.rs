//! Reading the server's answer to a `Range` request (pure parsing, no I/O).

/// A `Content-Range` header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes FIRST-LAST/TOTAL` (TOTAL `*` when the server does not know it).
    Span { first: u64, last: u64, total: Option<u64> },
    /// `bytes */TOTAL`, sent with 416 when the requested start is past the end.
    Unsatisfied { total: u64 },
}

/// Parses a `Content-Range` value; `None` when it is malformed.
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        digits => Some(digits.parse::<u64>().ok()?),
    };
    if span.trim() == "*" {
        return total.map(|total| ContentRange::Unsatisfied { total });
    }
    let (first, last) = span.trim().split_once('-')?;
    let first = first.parse::<u64>().ok()?;
    let last = last.parse::<u64>().ok()?;
    if last < first || total.is_some_and(|total| last >= total) {
        return None;
    }
    Some(ContentRange::Span { first, last, total })
}

/// The `Range` header asking for everything from `offset` on.
pub fn range_from(offset: u64) -> String {
    format!("bytes={offset}-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spans_and_unsatisfied() {
        assert_eq!(
            parse_content_range("bytes 100-999/1000"),
            Some(ContentRange::Span { first: 100, last: 999, total: Some(1000) })
        );
        assert_eq!(
            parse_content_range("bytes 0-9/*"),
            Some(ContentRange::Span { first: 0, last: 9, total: None })
        );
        assert_eq!(
            parse_content_range("bytes */1000"),
            Some(ContentRange::Unsatisfied { total: 1000 })
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "bytes",
            "items 0-9/10",
            "bytes 9-0/10",
            "bytes 0-10/10",
            "bytes a-9/10",
            "bytes */*",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn range_header() {
        assert_eq!(range_from(4096), "bytes=4096-");
    }
}
