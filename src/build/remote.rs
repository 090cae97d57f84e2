//! `ADD https://…`: the file is downloaded by rcompose (on the host's network, as BuildKit's
//! daemon does), checked against `--checksum` when given, and then copied like a context file:
//! named after the URL's last path segment (or the `Content-Disposition` file name), mode 0600,
//! its time the `Last-Modified` header's, never extracted.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use super::BuildError;

/// The largest file `ADD` downloads.
pub const MAX_BYTES: u64 = 8 << 30;

pub struct Fetched {
    /// The file name in `dir`.
    pub name: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
}

fn err(url: &str, e: impl std::fmt::Display) -> BuildError {
    BuildError::Invalid(format!("cannot download {url}: {e}"))
}

/// An http(s) URL that is not a git repository: a context to download
/// ([`context_from_download`]).
pub fn url_context(s: &str) -> Option<String> {
    ((s.starts_with("http://") || s.starts_with("https://")) && super::git::parse(s).is_none())
        .then(|| s.to_string())
}

/// Makes the downloaded `file` a build context in the empty directory `dir`, as docker does
/// with a URL: a tar archive is extracted there (safely: nothing lands outside `dir`), any
/// other file is its Dockerfile.
pub fn context_from_download(file: &Path, dir: &Path) -> Result<(), BuildError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let (Some(parent), Some(name)) = (file.parent(), file.file_name()) else {
        return Err(BuildError::Invalid(format!(
            "{} is not a downloaded file",
            file.display()
        )));
    };
    let tree = super::context::Context::open_dir_without_ignore(parent)?;
    let sources = tree.resolve(&[name.to_string_lossy().into_owned()], &[])?;
    let Some(source) = sources.first() else {
        return Err(BuildError::Invalid(format!(
            "{} was not downloaded",
            file.display()
        )));
    };
    if super::context::is_archive(source)? {
        let root = crate::runtime::inroot::open_root(dir).map_err(io("open", dir))?;
        super::context::extract_archive_into(
            std::os::fd::AsFd::as_fd(&root),
            source,
            "/",
            &super::context::CopyOptions {
                workdir: "/".into(),
                ..Default::default()
            },
        )?;
        return Ok(());
    }
    let dockerfile = dir.join("Dockerfile");
    std::fs::copy(file, &dockerfile).map_err(io("write", &dockerfile))?;
    Ok(())
}

/// Downloads `url` into `dir`.
pub fn fetch(url: &str, dir: &Path, checksum: Option<&str>) -> Result<Fetched, BuildError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| err(url, e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(url, e))?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| err(url, e))?;
    rt.block_on(async {
        let resp = client
            .get(parsed.clone())
            .send()
            .await
            .map_err(|e| err(url, e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(err(url, format!("the server answered {status}")));
        }
        let name = disposition_name(resp.headers())
            .or_else(|| {
                parsed
                    .path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_string))
                    .filter(|s| !s.is_empty())
            })
            .filter(|n| crate::paths::is_component(n))
            .unwrap_or_else(|| "__unnamed__".to_string());
        let modified = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let path = dir.join(&name);
        let mut file = std::fs::File::create(&path).map_err(|e| err(url, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| err(url, e))?;
            size += chunk.len() as u64;
            if size > MAX_BYTES {
                return Err(err(url, format!("larger than {MAX_BYTES} bytes")));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(|e| err(url, e))?;
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if let Some(want) = checksum {
            if want != digest {
                return Err(err(
                    url,
                    format!("checksum mismatch: --checksum is {want}, the content is {digest}"),
                ));
            }
        }
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| err(url, e))?;
        if let Some(t) = modified {
            let _ = file.set_modified(t);
        }
        Ok(Fetched { name, digest })
    })
}

fn disposition_name(h: &reqwest::header::HeaderMap) -> Option<String> {
    let v = h.get(reqwest::header::CONTENT_DISPOSITION)?.to_str().ok()?;
    v.split(';').find_map(|p| {
        p.trim()
            .strip_prefix("filename=")
            .map(|n| n.trim_matches('"').to_string())
    })
}

/// RFC 7231's IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), what servers send.
fn parse_http_date(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| x == month)? as i64 + 1;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    let [hh, mm, ss] = hms.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            784_111_777
        );
        assert!(parse_http_date("yesterday").is_none());
    }
}
