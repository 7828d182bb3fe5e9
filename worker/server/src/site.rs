//! The built page served like a site: files compressed once at build time
//! (`precompress`, run by `./dev` after trunk) and sent as brotli or gzip to
//! clients that accept them; content-hashed files cached for good, the rest
//! (index.html, the favicon) revalidated on every load so a new build is
//! seen at once.

use std::io::Write;
use std::path::Path;

use axum::extract::Request;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::services::ServeDir;

/// What is worth compressing; images (PNG) are compressed already.
const COMPRESSIBLE: &[&str] = &["wasm", "js", "css", "html", "svg", "ico", "json", "txt"];

/// For files whose name changes with their content.
const FOREVER: &str = "public, max-age=31536000, immutable";
/// For the rest: use the cached copy only after asking whether it changed.
const REVALIDATE: &str = "no-cache";

/// The page's files from `dist`, with their compressed copies and cache
/// headers.
pub fn page(dist: &Path) -> axum::Router {
    let files = ServeDir::new(dist).precompressed_br().precompressed_gzip();
    axum::Router::new()
        .fallback_service(files)
        .layer(axum::middleware::from_fn(cache_headers))
}

async fn cache_headers(request: Request, next: Next) -> Response {
    let policy = cache_policy(request.uri().path());
    let mut response = next.run(request).await;
    if response.status().is_success() || response.status().is_redirection() {
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

fn cache_policy(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or_default();
    if is_content_hashed(name) {
        FOREVER
    } else {
        REVALIDATE
    }
}

/// Whether trunk named the file after its content: `NAME-HASH.EXT`, the
/// wasm `NAME-HASH_bg.wasm`. The hash is a 64-bit number in hexadecimal
/// without leading zeros, so one build in sixteen has 15 digits or fewer;
/// 10 to 16 digits are taken as a hash (fewer is one build in 16^6).
pub fn is_content_hashed(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default();
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        (10..=16).contains(&hash.len()) && hash.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// Writes `FILE.br` and `FILE.gz` beside every compressible file under
/// `dist` (best compression: it runs once per build). Returns the bytes
/// before and after brotli, for the log.
pub fn precompress(dist: &Path) -> std::io::Result<(u64, u64)> {
    let (mut plain, mut compressed) = (0, 0);
    for entry in std::fs::read_dir(dist)? {
        let path = entry?.path();
        if path.is_dir() {
            let (p, c) = precompress(&path)?;
            (plain, compressed) = (plain + p, compressed + c);
            continue;
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if !COMPRESSIBLE.contains(&extension) {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let brotli = brotli_of(&bytes)?;
        std::fs::write(with_suffix(&path, "br"), &brotli)?;
        std::fs::write(with_suffix(&path, "gz"), gzip_of(&bytes)?)?;
        plain += bytes.len() as u64;
        compressed += brotli.len() as u64;
    }
    Ok((plain, compressed))
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    name.into()
}

fn brotli_of(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        // Quality 11 (the best), a 4 MiB window.
        let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 22);
        writer.write_all(bytes)?;
    }
    Ok(out)
}

fn gzip_of(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_cached_for_good_and_the_rest_revalidated() {
        assert_eq!(
            cache_policy("/lens-frontend-9f86d081884c7d65_bg.wasm"),
            FOREVER
        );
        assert_eq!(cache_policy("/lens-frontend-9f86d081884c7d65.js"), FOREVER);
        assert_eq!(cache_policy("/style-0123456789abcdef.css"), FOREVER);
        assert_eq!(
            cache_policy("/lens-frontend-f86d081884c7d65_bg.wasm"),
            FOREVER,
            "a hash with a leading zero is written with 15 digits"
        );
        assert_eq!(cache_policy("/"), REVALIDATE);
        assert_eq!(cache_policy("/index.html"), REVALIDATE);
        assert_eq!(cache_policy("/favicon.ico"), REVALIDATE);
        assert_eq!(
            cache_policy("/lens-frontend.js"),
            REVALIDATE,
            "no hash, may change"
        );
        assert_eq!(
            cache_policy("/my-photo-settings.css"),
            REVALIDATE,
            "a word is not a hash"
        );
    }

    #[test]
    fn compressed_copies_decompress_to_the_file() {
        use std::io::Read;
        let dist = std::env::temp_dir().join(format!("lens-precompress-{}", std::process::id()));
        std::fs::create_dir_all(dist.join("snippets")).unwrap();
        let script = "function f() { return 1; }\n".repeat(500);
        std::fs::write(dist.join("snippets/app.js"), &script).unwrap();
        std::fs::write(dist.join("photo.png"), [0u8; 64]).unwrap();
        let (plain, compressed) = precompress(&dist).unwrap();
        assert_eq!(plain, script.len() as u64);
        assert!(compressed * 10 < plain, "{compressed} of {plain}");
        assert!(!dist.join("photo.png.br").exists(), "PNG is left alone");

        let mut from_brotli = String::new();
        brotli::Decompressor::new(
            &std::fs::read(dist.join("snippets/app.js.br")).unwrap()[..],
            4096,
        )
        .read_to_string(&mut from_brotli)
        .unwrap();
        assert_eq!(from_brotli, script);
        let mut from_gzip = String::new();
        flate2::read::GzDecoder::new(&std::fs::read(dist.join("snippets/app.js.gz")).unwrap()[..])
            .read_to_string(&mut from_gzip)
            .unwrap();
        assert_eq!(from_gzip, script);
        std::fs::remove_dir_all(dist).unwrap();
    }
}
