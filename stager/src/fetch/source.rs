//! Where the image comes from: a URL or a local path, as given on the command line.

use std::fmt;
use std::path::PathBuf;

use reqwest::Url;

use super::FetchError;

/// The `--image` argument, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// An `https://` (or, when allowed, `http://`) URL.
    Url(Url),
    /// A file on this machine.
    Path(PathBuf),
}

impl ImageSource {
    /// `https://…` and `http://…` become URLs (plain http is refused later unless allowed),
    /// `file://…` and anything without a scheme become paths, other schemes are refused.
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let invalid = || FetchError::InvalidSource { source_text: text.to_owned() };
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            let url = Url::parse(text).map_err(|_| invalid())?;
            return Ok(ImageSource::Url(url));
        }
        if lower.starts_with("file://") {
            let url = Url::parse(text).map_err(|_| invalid())?;
            return url.to_file_path().map(ImageSource::Path).map_err(|()| invalid());
        }
        if text.is_empty() || text.contains("://") {
            return Err(invalid());
        }
        Ok(ImageSource::Path(PathBuf::from(text)))
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Url(url) => write!(f, "{url}"),
            ImageSource::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_urls_and_paths() {
        assert!(
            matches!(ImageSource::parse("https://h/x.img").unwrap(), ImageSource::Url(u) if u.scheme() == "https")
        );
        assert!(
            matches!(ImageSource::parse("HTTP://h/x.img").unwrap(), ImageSource::Url(u) if u.scheme() == "http")
        );
        assert_eq!(
            ImageSource::parse("/tmp/x.img").unwrap(),
            ImageSource::Path("/tmp/x.img".into())
        );
        assert_eq!(ImageSource::parse("x.img").unwrap(), ImageSource::Path("x.img".into()));
        assert_eq!(
            ImageSource::parse("file:///tmp/x.img").unwrap(),
            ImageSource::Path("/tmp/x.img".into())
        );
    }

    #[test]
    fn refuses_other_schemes_and_empty() {
        let err = ImageSource::parse("ftp://h/x.img").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot use image source \"ftp://h/x.img\": give an https:// URL or the path of an image file"
        );
        assert!(ImageSource::parse("").is_err());
        assert!(ImageSource::parse("https://").is_err());
    }
}
