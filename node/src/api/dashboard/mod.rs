//! The web dashboard at `/`: plain HTML, CSS and JavaScript compiled into the binary, so
//! that every node serves it with no build step and no network beyond the node itself.
//! The page reads the public JSON API of the node that served it (`/api/v1/...`) and
//! polls it; nothing here reads cluster state.
//!
//! Every asset is answered with an `ETag` (a hash of its bytes) and `Cache-Control:
//! no-cache`: a browser keeps its copy but revalidates it, so a node upgraded in a
//! rolling upgrade never serves a page with the previous version's script. The page
//! carries a Content-Security-Policy that allows only this node's own scripts, styles
//! and API.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The page's policy: only this origin's own files; no inline script, frames or forms.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// One embedded file and the `ETag` of its bytes.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Asset {
        Asset { body, content_type, etag: OnceLock::new() }
    }

    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            let tag = format!("\"{:016x}\"", fnv1a(self.body.as_bytes()));
            HeaderValue::from_str(&tag).expect("a quoted hex string is a valid header value")
        })
    }

    fn serve(&self, request: &HeaderMap) -> Response {
        let etag = self.etag().clone();
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
        let headers = [
            (header::CONTENT_TYPE, HeaderValue::from_static(self.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, etag),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ];
        if fresh {
            (StatusCode::NOT_MODIFIED, headers).into_response()
        } else {
            (headers, self.body).into_response()
        }
    }
}

static INDEX: Asset = Asset::new(include_str!("index.html"), "text/html; charset=utf-8");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Everything under `/ui/`, by file name. The page's script is an ES module per concern
/// (`app.js` imports the others), so each file stays small and no bundler is needed.
static FILES: [(&str, Asset); 12] = [
    ("app.js", Asset::new(include_str!("app.js"), JAVASCRIPT)),
    ("api.js", Asset::new(include_str!("api.js"), JAVASCRIPT)),
    ("builds.js", Asset::new(include_str!("builds.js"), JAVASCRIPT)),
    ("commit.js", Asset::new(include_str!("commit.js"), JAVASCRIPT)),
    ("dom.js", Asset::new(include_str!("dom.js"), JAVASCRIPT)),
    ("format.js", Asset::new(include_str!("format.js"), JAVASCRIPT)),
    ("job.js", Asset::new(include_str!("job.js"), JAVASCRIPT)),
    ("jobs.js", Asset::new(include_str!("jobs.js"), JAVASCRIPT)),
    ("log.js", Asset::new(include_str!("log.js"), JAVASCRIPT)),
    ("overview.js", Asset::new(include_str!("overview.js"), JAVASCRIPT)),
    ("style.css", Asset::new(include_str!("style.css"), "text/css; charset=utf-8")),
    ("icon.svg", Asset::new(include_str!("icon.svg"), "image/svg+xml")),
];

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    INDEX.serve(&headers)
}

/// `GET /ui/{file}`: the page's scripts, style sheet and icon.
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match FILES.iter().find(|(file, _)| *file == name) {
        Some((_, asset)) => asset.serve(&headers),
        None => ApiError::new(StatusCode::NOT_FOUND, format!("no dashboard file {name:?}"))
            .into_response(),
    }
}

/// 64-bit FNV-1a: a stable content hash for `ETag`s (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(name: &str, headers: HeaderMap) -> Response {
        file(Path(name.to_owned()), headers).await
    }

    #[tokio::test]
    async fn a_file_is_served_with_its_type_and_revalidated_by_etag() {
        let first = get("app.js", HeaderMap::new()).await;
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CONTENT_TYPE], JAVASCRIPT);
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = first.headers()[header::ETAG].clone();

        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag.clone());
        assert_eq!(get("app.js", request).await.status(), StatusCode::NOT_MODIFIED);

        let mut stale = HeaderMap::new();
        stale.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"0\""));
        assert_eq!(get("app.js", stale).await.status(), StatusCode::OK);
        assert_ne!(index(HeaderMap::new()).await.headers()[header::ETAG], etag);
        let style = get("style.css", HeaderMap::new()).await;
        assert_eq!(style.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn an_unknown_file_is_not_found() {
        for name in ["nope.js", "../mod.rs", "index.html", ""] {
            assert_eq!(get(name, HeaderMap::new()).await.status(), StatusCode::NOT_FOUND);
        }
    }

    #[test]
    fn the_page_loads_only_embedded_files() {
        let page = INDEX.body;
        for path in ["/ui/app.js", "/ui/style.css", "/ui/icon.svg"] {
            assert!(page.contains(path), "index.html refers to {path}");
        }
        assert!(!page.contains("http://") && !page.contains("https://"), "no external URL");
        for (name, asset) in FILES.iter().filter(|(name, _)| name.ends_with(".js")) {
            assert!(!asset.body.contains("innerHTML"), "{name}: API data is never parsed as HTML");
            for import in asset.body.lines().filter_map(|l| l.split("from './").nth(1)) {
                let imported = import.trim_end_matches("';");
                assert!(
                    FILES.iter().any(|(file, _)| *file == imported),
                    "{name} imports {imported}, which is not served"
                );
            }
        }
    }
}
