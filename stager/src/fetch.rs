//! Fetching the resinOS image over HTTPS (rustls) or from a local path, with resume and sha256.
