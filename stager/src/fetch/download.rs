//! The resumable transfer into `DEST.part`: `Range` requests, restart on 200, bounded retries.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{StatusCode, Url};

use super::client::{classify, error_chain, RequestFailure};
use super::progress::Progress;
use super::range::{parse_content_range, range_from, ContentRange};
use super::space::ensure_room;
use super::{parent_dir, FetchError, FetchOptions};
use plan::Bytes;

const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CHUNK: usize = 256 * 1024;
/// Attempts that grow the `.part` do not use up retries, but they are bounded too.
pub const ATTEMPTS_PER_RETRY: u32 = 10;

/// Downloads `url` into `part`, resuming what is already there, until the server's full
/// length is on disk. Gives up after `opts.max_retries` failed attempts in a row that did
/// not grow the `.part`, and in any case after [`ATTEMPTS_PER_RETRY`] × (`max_retries` + 1)
/// attempts. Returns the size of the complete `.part`.
pub fn download(
    client: &Client,
    url: &Url,
    part: &Path,
    opts: &FetchOptions,
    progress: &mut Progress,
) -> Result<u64, FetchError> {
    let mut attempts: u32 = 0;
    let mut failures_in_a_row: u32 = 0;
    loop {
        attempts += 1;
        let problem = match attempt(client, url, part, progress) {
            Ok(size) => return Ok(size),
            Err(Attempt::Fatal(error)) => return Err(error),
            Err(Attempt::Retry(problem)) => problem,
        };
        if problem.gained_bytes {
            failures_in_a_row = 0;
        }
        failures_in_a_row += 1;
        let attempts_allowed =
            ATTEMPTS_PER_RETRY.saturating_mul(opts.max_retries.saturating_add(1));
        if failures_in_a_row > opts.max_retries || attempts >= attempts_allowed {
            return Err(problem.kind.into_error(url, attempts));
        }
        let delay = backoff(opts.retry_backoff, failures_in_a_row);
        log::warn!(
            "download of {url}: {}; retrying in {delay:?} (retry {failures_in_a_row} of {})",
            problem.kind.describe(),
            opts.max_retries
        );
        std::thread::sleep(delay);
    }
}

/// `initial` doubled for each failure in a row after the first, capped.
fn backoff(initial: Duration, failures_in_a_row: u32) -> Duration {
    let factor = 1u32 << failures_in_a_row.saturating_sub(1).min(16);
    initial.saturating_mul(factor).min(MAX_BACKOFF)
}

enum Attempt {
    Fatal(FetchError),
    Retry(Problem),
}

struct Problem {
    kind: ProblemKind,
    gained_bytes: bool,
}

enum ProblemKind {
    /// The body stopped before the announced length (or broke with no length announced).
    Cut {
        received: u64,
        expected: Option<u64>,
        detail: String,
    },
    Connect(String),
    Network(String),
    Status(StatusCode),
    /// The server's answer could not continue the `.part`; it was reset to start over.
    Restart(String),
}

impl ProblemKind {
    fn describe(&self) -> String {
        match self {
            ProblemKind::Cut { received, expected: Some(expected), detail } => {
                format!("transfer cut at {received} of {expected} bytes ({detail})")
            }
            ProblemKind::Cut { received, expected: None, detail } => {
                format!("transfer broke after {received} bytes ({detail})")
            }
            ProblemKind::Connect(detail) => format!("cannot connect ({detail})"),
            ProblemKind::Network(detail) | ProblemKind::Restart(detail) => detail.clone(),
            ProblemKind::Status(status) => format!("server answered HTTP {status}"),
        }
    }

    fn into_error(self, url: &Url, attempts: u32) -> FetchError {
        let url_text = url.to_string();
        match self {
            ProblemKind::Cut { received, expected: Some(expected), .. } => {
                FetchError::Truncated { url: url_text, received, expected, attempts }
            }
            ProblemKind::Connect(detail) => FetchError::Connect {
                host: url.host_str().unwrap_or("the server").to_owned(),
                detail,
            },
            other => FetchError::Transfer { url: url_text, attempts, detail: other.describe() },
        }
    }
}

fn retry(kind: ProblemKind, gained_bytes: bool) -> Attempt {
    Attempt::Retry(Problem { kind, gained_bytes })
}

fn io_fatal<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Attempt + 'a {
    move |e| Attempt::Fatal(FetchError::io(action, path, e))
}

/// One request: asks for the rest of the `.part` and appends the answer to it.
fn attempt(
    client: &Client,
    url: &Url,
    part: &Path,
    progress: &mut Progress,
) -> Result<u64, Attempt> {
    let offset = existing_len(part).map_err(io_fatal("read", part))?;
    let mut request = client.get(url.clone());
    if offset > 0 {
        log::info!("resuming {url} from byte {offset}");
        request = request.header(RANGE, range_from(offset));
    }
    let response = request.send().map_err(|e| match classify(&e, url) {
        RequestFailure::Fatal(error) => Attempt::Fatal(error),
        RequestFailure::Connect(detail) => retry(ProblemKind::Connect(detail), false),
        RequestFailure::Network(detail) => retry(ProblemKind::Network(detail), false),
    })?;
    let status = response.status();
    match status {
        StatusCode::PARTIAL_CONTENT => match content_range(&response) {
            Some(ContentRange::Span { first, last, total }) if first == offset => {
                receive(response, part, offset, offset, Some(total.unwrap_or(last + 1)), progress)
            }
            other => {
                reset(part)?;
                let detail =
                    format!("server answered byte {offset} on with {other:?}; starting over");
                Err(retry(ProblemKind::Restart(detail), false))
            }
        },
        StatusCode::OK => {
            if offset > 0 {
                log::info!("server ignored the resume request (HTTP 200); downloading {url} from the start");
            }
            let total = response.content_length();
            receive(response, part, offset, 0, total, progress)
        }
        StatusCode::RANGE_NOT_SATISFIABLE => match content_range(&response) {
            Some(ContentRange::Unsatisfied { total }) if total == offset => {
                progress.set_total(Some(total));
                progress.set_position(total);
                Ok(offset)
            }
            _ => {
                reset(part)?;
                let detail =
                    format!("server cannot resume from byte {offset} (HTTP 416); starting over");
                Err(retry(ProblemKind::Restart(detail), false))
            }
        },
        StatusCode::NOT_FOUND => Err(Attempt::Fatal(FetchError::NotFound { url: url.to_string() })),
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
            Err(retry(ProblemKind::Status(status), false))
        }
        _ if status.is_server_error() => Err(retry(ProblemKind::Status(status), false)),
        _ => Err(Attempt::Fatal(FetchError::HttpStatus {
            url: url.to_string(),
            status: status.as_u16(),
        })),
    }
}

/// Writes the body at `start` in the `.part` (which held `had` bytes before this attempt);
/// `total` is the full file's length if known.
fn receive(
    mut response: Response,
    part: &Path,
    had: u64,
    start: u64,
    total: Option<u64>,
    progress: &mut Progress,
) -> Result<u64, Attempt> {
    // The `.part` keeps its `had` bytes (or is cut to `start` and grows to `total`):
    // either way the file system must find `total - had` more.
    let to_write = total.map(|total| Bytes(total.saturating_sub(had)));
    ensure_room(parent_dir(part), to_write).map_err(Attempt::Fatal)?;
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(io_fatal("create", part))?;
    file.set_len(start).map_err(io_fatal("truncate", part))?;
    file.seek(SeekFrom::Start(start)).map_err(io_fatal("seek in", part))?;
    progress.set_total(total);
    progress.set_position(start);

    let mut done = start;
    let mut buffer = vec![0u8; CHUNK];
    let broke = loop {
        match response.read(&mut buffer) {
            Ok(0) => break None,
            Ok(count) => {
                file.write_all(&buffer[..count]).map_err(io_fatal("write", part))?;
                done += count as u64;
                progress.set_position(done);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(error_chain(&e)),
        }
    };
    file.sync_data().map_err(io_fatal("fsync", part))?;

    let short = total.is_some_and(|total| done < total);
    match broke {
        None if !short => Ok(done),
        broke => {
            let detail = broke.unwrap_or_else(|| "connection closed early".to_owned());
            Err(retry(ProblemKind::Cut { received: done, expected: total, detail }, done > had))
        }
    }
}

fn content_range(response: &Response) -> Option<ContentRange> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    parse_content_range(value)
}

fn existing_len(part: &Path) -> std::io::Result<u64> {
    match std::fs::metadata(part) {
        Ok(metadata) => Ok(metadata.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn reset(part: &Path) -> Result<(), Attempt> {
    match std::fs::remove_file(part) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Attempt::Fatal(FetchError::io("delete", part, e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let initial = Duration::from_millis(500);
        assert_eq!(backoff(initial, 1), Duration::from_millis(500));
        assert_eq!(backoff(initial, 2), Duration::from_secs(1));
        assert_eq!(backoff(initial, 3), Duration::from_secs(2));
        assert_eq!(backoff(initial, 40), MAX_BACKOFF);
    }
}
