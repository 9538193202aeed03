//! The public API's guard: with a cluster secret, mutating requests (POST: rerun,
//! notify, cancel, repos) need `Authorization: Bearer <token>`, where the token is
//! `hex(HMAC(secret, "eventide-api-token"))` (`eventide-node token` prints it); with
//! `--private-api`, reads need it too. The secret store (`/api/v1/secrets`) needs it for
//! every request. 401 without a token, 403 with a wrong one.
//! Without a secret everything is open.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eventide_consensus::auth::Secret;
use tracing::warn;

use super::ApiError;

/// What the guard checks against.
pub struct ApiAuth {
    pub secret: Option<Secret>,
    /// Reads need the token too.
    pub private: bool,
}

/// The routes that need the token for every method, reads included.
const ALWAYS_PRIVATE: &str = "/api/v1/secrets";

/// Whether a request to `method` on `path` needs the token.
fn needs_token(auth: &ApiAuth, method: &Method, path: &str) -> bool {
    let always = path
        .strip_prefix(ALWAYS_PRIVATE)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    auth.secret.is_some()
        && (auth.private || always || !matches!(*method, Method::GET | Method::HEAD))
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Checks the token of one request; `Ok` when it may go on.
fn check(auth: &ApiAuth, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(secret) = auth.secret.as_ref().filter(|_| needs_token(auth, method, path)) else {
        return Ok(());
    };
    match bearer(headers) {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this request needs the API token: Authorization: Bearer <token> (see eventide-node token)",
        )),
        Some(token) if secret.is_api_token(token) => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::FORBIDDEN, "wrong API token")),
    }
}

/// Middleware for the public routes.
pub async fn require_token(
    State(auth): State<Arc<ApiAuth>>,
    request: Request,
    next: Next,
) -> Response {
    match check(&auth, request.method(), request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            warn!(
                path = request.uri().path(),
                method = %request.method(),
                status = error.status.as_u16(),
                "refused public api request without a valid token"
            );
            error.into_response()
        }
    }
}

/// Adds the API token to a request this node makes to another node's public API.
pub fn with_token(
    builder: reqwest::RequestBuilder,
    secret: Option<&Secret>,
) -> reqwest::RequestBuilder {
    match secret {
        Some(secret) => builder.bearer_auth(secret.api_token()),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn secret() -> Secret {
        Secret::try_new(b"a cluster secret of some length").expect("valid")
    }

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).expect("value"));
        }
        headers
    }

    fn status(auth: &ApiAuth, method: Method, authorization: Option<&str>) -> u16 {
        status_of(auth, method, "/api/v1/jobs", authorization)
    }

    fn status_of(auth: &ApiAuth, method: Method, path: &str, authorization: Option<&str>) -> u16 {
        check(auth, &method, path, &headers(authorization))
            .map_or_else(|e| e.status.as_u16(), |()| 200)
    }

    #[test]
    fn the_secret_store_needs_the_token_even_for_reads() {
        let auth = ApiAuth { secret: Some(secret()), private: false };
        let good = format!("Bearer {}", secret().api_token());
        for path in ["/api/v1/secrets", "/api/v1/secrets/", "/api/v1/secrets/DEPLOY_KEY"] {
            assert_eq!(status_of(&auth, Method::GET, path, None), 401, "{path}");
            assert_eq!(status_of(&auth, Method::GET, path, Some("Bearer 00")), 403, "{path}");
            assert_eq!(status_of(&auth, Method::GET, path, Some(&good)), 200, "{path}");
            assert_eq!(status_of(&auth, Method::DELETE, path, None), 401, "{path}");
        }
        assert_eq!(status_of(&auth, Method::GET, "/api/v1/secretsx", None), 200);
        let open = ApiAuth { secret: None, private: false };
        assert_eq!(
            status_of(&open, Method::GET, "/api/v1/secrets", None),
            200,
            "the handler answers 409"
        );
    }

    #[test]
    fn without_a_secret_everything_is_open() {
        let auth = ApiAuth { secret: None, private: false };
        assert_eq!(status(&auth, Method::POST, None), 200);
        assert_eq!(status(&auth, Method::GET, Some("Bearer junk")), 200);
    }

    #[test]
    fn writes_need_the_token_reads_do_not() {
        let auth = ApiAuth { secret: Some(secret()), private: false };
        let good = format!("Bearer {}", secret().api_token());
        assert_eq!(status(&auth, Method::GET, None), 200);
        assert_eq!(status(&auth, Method::POST, None), 401);
        assert_eq!(status(&auth, Method::POST, Some("Bearer 00")), 403);
        assert_eq!(status(&auth, Method::POST, Some("Basic abc")), 401);
        assert_eq!(status(&auth, Method::POST, Some(&good)), 200);
        assert_eq!(status(&auth, Method::POST, Some(&good.to_lowercase())), 200);
    }

    #[test]
    fn a_private_api_needs_the_token_for_reads() {
        let auth = ApiAuth { secret: Some(secret()), private: true };
        let good = format!("Bearer {}", secret().api_token());
        assert_eq!(status(&auth, Method::GET, None), 401);
        assert_eq!(status(&auth, Method::GET, Some("Bearer 0011")), 403);
        assert_eq!(status(&auth, Method::GET, Some(&good)), 200);
    }
}
