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

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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
static SCRIPT: Asset = Asset::new(include_str!("app.js"), "text/javascript; charset=utf-8");
static STYLE: Asset = Asset::new(include_str!("style.css"), "text/css; charset=utf-8");
static ICON: Asset = Asset::new(include_str!("icon.svg"), "image/svg+xml");

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    INDEX.serve(&headers)
}

/// `GET /ui/app.js`.
pub async fn script(headers: HeaderMap) -> Response {
    SCRIPT.serve(&headers)
}

/// `GET /ui/style.css`.
pub async fn style(headers: HeaderMap) -> Response {
    STYLE.serve(&headers)
}

/// `GET /ui/icon.svg`: the tab icon and the logo.
pub async fn icon(headers: HeaderMap) -> Response {
    ICON.serve(&headers)
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

    #[tokio::test]
    async fn an_asset_is_served_with_its_type_and_revalidated_by_etag() {
        let first = script(HeaderMap::new()).await;
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = first.headers()[header::ETAG].clone();

        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag.clone());
        assert_eq!(script(request).await.status(), StatusCode::NOT_MODIFIED);

        let mut stale = HeaderMap::new();
        stale.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"0\""));
        assert_eq!(script(stale).await.status(), StatusCode::OK);
        assert_ne!(index(HeaderMap::new()).await.headers()[header::ETAG], etag);
    }

    #[test]
    fn the_page_loads_only_embedded_files() {
        let page = INDEX.body;
        for path in ["/ui/app.js", "/ui/style.css", "/ui/icon.svg"] {
            assert!(page.contains(path), "index.html refers to {path}");
        }
        assert!(!page.contains("http://") && !page.contains("https://"), "no external URL");
        assert!(!SCRIPT.body.contains("innerHTML"), "API data is never parsed as HTML");
    }
}
